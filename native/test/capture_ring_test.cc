// Unit checks of the capture rings (net/capture.h) and the per-frame counters (net/frame_observer.h):
// records across the ring's end, a full ring dropping and counting rather than waiting, what the
// reader sees only after a burst ends, the bell that wakes a sleeping writer, size bins and MAC
// classes at their edges. Built and run by native/test/run.sh; exits 1 on the first failed check.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/virtqueue.h"
#include "net/capture.h"
#include "net/frame_observer.h"
#include "test/check.h"

using namespace vhost;

namespace {

std::unique_ptr<Capture> Make(uint64_t ring, uint32_t snaplen, int pairs = 1) {
  int e = 0;
  std::string err;
  std::unique_ptr<Capture> c = Capture::Create(pairs, ring, snaplen, &e, &err);
  CHECK(c != nullptr, "Create: %s", err.c_str());
  return c;
}

// Everything the reader can take now, in order, consumed.
std::vector<uint8_t> Drain(Capture& c, int pair = 0) {
  std::vector<uint8_t> out;
  for (int piece = 0; piece < 2; piece++) {
    uint64_t offset = 0, length = 0;
    c.ring(pair).Readable(&offset, &length);
    out.insert(out.end(), c.data() + c.ring_bytes() * pair + offset,
               c.data() + c.ring_bytes() * pair + offset + length);
    c.ring(pair).Consume(length);
  }
  return out;
}

struct Record {
  uint32_t caplen, len;
  std::vector<uint8_t> data;
};

std::vector<Record> Parse(const std::vector<uint8_t>& bytes) {
  std::vector<Record> out;
  for (size_t at = 0; at < bytes.size();) {
    uint32_t h[4];
    CHECK(at + 16 <= bytes.size(), "truncated header at %zu", at);
    memcpy(h, bytes.data() + at, 16);
    CHECK(h[1] < 1000000000u, "nanoseconds %u", h[1]);
    CHECK(at + 16 + h[2] <= bytes.size(), "truncated record at %zu", at);
    out.push_back(Record{h[2], h[3], std::vector<uint8_t>(bytes.begin() + at + 16, bytes.begin() + at + 16 + h[2])});
    at += 16 + h[2];
  }
  return out;
}

std::vector<uint8_t> Frame(uint32_t len, uint8_t seed) {
  std::vector<uint8_t> f(len);
  for (uint32_t i = 0; i < len; i++) f[i] = static_cast<uint8_t>(seed + i * 7);
  return f;
}

// Records cross the ring's end whole, snaplen cuts, the reader sees nothing before EndBurst.
void RecordsAcrossTheWrap() {
  std::unique_ptr<Capture> c = Make(4096, 100);
  CaptureRing& r = c->ring(0);
  uint64_t sent = 0;
  for (int round = 0; round < 50; round++) {
    std::vector<std::vector<uint8_t>> frames;
    for (int k = 0; k < 3; k++) {
      frames.push_back(Frame(60 + (round * 37 + k * 11) % 90, static_cast<uint8_t>(round + k)));
      CHECK(r.Put(frames.back().data(), static_cast<uint32_t>(frames.back().size())), "round %d frame %d", round, k);
    }
    CHECK(Drain(*c).empty(), "records visible before the burst ended");
    r.EndBurst();
    std::vector<Record> got = Parse(Drain(*c));
    CHECK(got.size() == 3, "round %d: %zu records", round, got.size());
    for (int k = 0; k < 3; k++) {
      const uint32_t len = static_cast<uint32_t>(frames[k].size());
      CHECK(got[k].len == len && got[k].caplen == (len < 100 ? len : 100), "lengths %u/%u", got[k].caplen, got[k].len);
      CHECK(memcmp(got[k].data.data(), frames[k].data(), got[k].caplen) == 0, "round %d record %d bytes", round, k);
    }
    sent += 3;
  }
  CHECK(r.frames() == sent && r.dropped() == 0, "frames %lu dropped %lu", r.frames(), r.dropped());
}

// A ring the reader does not empty fills, then drops and counts; room again once it reads.
void FullRingDrops() {
  std::unique_ptr<Capture> c = Make(4096, 2048);
  CaptureRing& r = c->ring(0);
  std::vector<uint8_t> f = Frame(1000, 1);
  int put = 0;
  for (int k = 0; k < 10; k++) put += r.Put(f.data(), 1000) ? 1 : 0;
  r.EndBurst();
  CHECK(put == 4, "4 records of 1016 bytes fit in 4096, %d did", put);
  CHECK(r.frames() == 4 && r.dropped() == 6, "frames %lu dropped %lu", r.frames(), r.dropped());
  CHECK(Parse(Drain(*c)).size() == 4, "the 4 records read back");
  CHECK(r.Put(f.data(), 1000), "room again after the reader consumed");
}

// A frame in pieces (the virtio-net header skipped) is captured and counted like the same bytes in one.
void PiecesAsOne() {
  std::unique_ptr<Capture> c = Make(8192, 4096);
  std::vector<uint8_t> whole = Frame(12 + 300, 9);
  whole[12] = 0x01;  // multicast destination
  Segment segs[4] = {
      {whole.data(), 0, 5}, {whole.data() + 5, 0, 10}, {whole.data() + 15, 0, 1}, {whole.data() + 16, 0, 296}};
  uint64_t stats[kStatsStride] = {};
  Queue q;
  q.stats = stats;
  ObserveFrame(q, &c->ring(0), segs, 4, 12, 300);
  ObserveFrame(q, &c->ring(0), whole.data() + 12, 300);
  c->ring(0).EndBurst();
  std::vector<Record> got = Parse(Drain(*c));
  CHECK(got.size() == 2 && got[0].data == got[1].data, "pieces and whole differ");
  CHECK(memcmp(got[0].data.data(), whole.data() + 12, 300) == 0, "bytes");
  CHECK(stats[kStatPackets] == 2 && stats[kStatBytes] == 600 && stats[kStatMulticast] == 2 &&
            stats[kStatSize256To511] == 2,
        "counters %lu %lu %lu %lu", stats[kStatPackets], stats[kStatBytes], stats[kStatMulticast],
        stats[kStatSize256To511]);
}

// The bell rings once when a ring passes a quarter full while the writer sleeps, not while it is awake.
void BellWakesASleepingWriter() {
  std::unique_ptr<Capture> c = Make(4096, 2048);
  CaptureRing& r = c->ring(0);
  std::vector<uint8_t> f = Frame(600, 3);
  uint64_t n = 0;
  r.Put(f.data(), 600);
  r.Put(f.data(), 600);
  r.EndBurst();  // 1232 bytes: past a quarter, but the writer is awake
  CHECK(read(c->wake_fd(), &n, sizeof n) < 0, "rang for a writer that is awake");
  Drain(*c);
  c->WriterSleeps();
  r.Put(f.data(), 600);
  r.EndBurst();  // 616 bytes: under a quarter
  CHECK(read(c->wake_fd(), &n, sizeof n) < 0, "rang under a quarter");
  r.Put(f.data(), 600);
  r.EndBurst();
  CHECK(read(c->wake_fd(), &n, sizeof n) == sizeof n && n == 1, "did not ring at a quarter");
  r.Put(f.data(), 600);
  r.EndBurst();
  CHECK(read(c->wake_fd(), &n, sizeof n) < 0, "rang twice for one sleep");
}

// DPDK's bins at their edges, and the MAC classes.
void SizeBinsAndMacClasses() {
  const struct {
    uint32_t len;
    int bin;
  } cases[] = {{0, 0},   {63, 0},  {64, 1},   {65, 2},   {127, 2},  {128, 3},  {255, 3}, {256, 4},
               {511, 4}, {512, 5}, {1023, 5}, {1024, 6}, {1518, 6}, {1519, 7}, {9000, 7}};
  for (const auto& k : cases) CHECK(SizeBin(k.len) == k.bin, "SizeBin(%u) = %d, want %d", k.len, SizeBin(k.len), k.bin);
  uint64_t stats[kStatsStride] = {};
  Queue q;
  q.stats = stats;
  const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mcast[6] = {0x33, 0x33, 0, 0, 0, 1},
                ucast[6] = {0x52, 0x54, 0, 0, 0, 1}, almost[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
  CountFrame(q, bcast, 64);
  CountFrame(q, mcast, 64);
  CountFrame(q, almost, 64);  // group bit set, not all ones: multicast
  CountFrame(q, ucast, 64);
  CountFrame(q, nullptr, 4);  // no MAC: neither
  CHECK(stats[kStatBroadcast] == 1 && stats[kStatMulticast] == 2, "broadcast %lu multicast %lu", stats[kStatBroadcast],
        stats[kStatMulticast]);
  CHECK(stats[kStatPackets] == 5 && stats[kStatSize64] == 4 && stats[kStatUndersize] == 1, "packets %lu",
        stats[kStatPackets]);
  CHECK(stats[kStatPackets] == 5, "a second flush added %lu", stats[kStatPackets] - 5);
}

}  // namespace

int main() {
  RecordsAcrossTheWrap();
  FullRingDrops();
  PiecesAsOne();
  BellWakesASleepingWriter();
  SizeBinsAndMacClasses();
  printf("capture ring and counters: %d checks passed\n", vhost_test::checks);
  return 0;
}
