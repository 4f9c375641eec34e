// Unit checks of dirty-page logging (core/dirty_log.h). First the log itself: ShadowLog marks and
// flushes against a plain bitmap model (ranges across pages and words, the log's last bit, beyond
// it), DirtyLog::Map's refusals (unsealed, past the file, not a file) and a log at an odd offset.
// Then the oracle: the loopback port and the switch's forwarder run bursts over split and packed
// rings (small frames, and frames over two mergeable buffers) with logging on, and every page whose
// bytes the burst changed must be marked in the log, and no page marked but RX buffers and the
// rings' device-written parts. The negative control runs the same oracle with the RX queue's
// marks left out and requires it to fail. Built and run by native/test/run.sh.
#include "core/dirty_log.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "net/port.h"
#include "net/ports/registry.h"
#include "net/switch/forwarder.h"
#include "net/virtio_net.h"
#include "test/check.h"
#include "test/ring_driver.h"

using namespace vhost;
using namespace vhost_test;

namespace {

constexpr uint64_t kPage = 4096;

// ShadowLog + DirtyLog against a vector<bool> of pages, over random ranges.
void ShadowAgainstModel() {
  const size_t words = 5;  // 320 pages
  std::unique_ptr<DirtyLog> log = DirtyLog::Anonymous(words * 8);
  ShadowLog shadow(words);
  std::vector<bool> model(words * 64, false);
  srand(7);
  for (int round = 0; round < 200; round++) {
    for (int m = 0; m < 1 + rand() % 6; m++) {
      const uint64_t gpa = static_cast<uint64_t>(rand()) % (words * 64 * kPage);
      const uint64_t len = rand() % 4 == 0 ? 0 : 1 + static_cast<uint64_t>(rand()) % (3 * kPage);
      shadow.Mark(gpa, len);
      for (uint64_t p = gpa / kPage; len && p <= (gpa + len - 1) / kPage && p < model.size(); p++) model[p] = true;
    }
    shadow.Flush(*log);
    for (size_t w = 0; w < words; w++) {
      const uint64_t got = log->Take(w);
      for (int b = 0; b < 64; b++) {
        CHECK(((got >> b) & 1) == model[w * 64 + b], "round %d page %zu: log %d, model %d", round, w * 64 + b,
              static_cast<int>((got >> b) & 1), static_cast<int>(model[w * 64 + b]));
        model[w * 64 + b] = false;
      }
    }
  }
  // The last page, a range across the end, and beyond: marked up to the end, the rest counted.
  shadow.Mark(words * 64 * kPage - 1, 1);
  CHECK(shadow.Flush(*log), "the last page marks");
  CHECK(log->Take(words - 1) == 1ull << 63, "the last page is the last bit");
  const uint64_t beyond = shadow.beyond();  // random ranges ran past the end too
  shadow.Mark(words * 64 * kPage - kPage, 3 * kPage);
  CHECK(shadow.beyond() == beyond + 1, "a range past the end counted once, got %llu",
        static_cast<unsigned long long>(shadow.beyond() - beyond));
  CHECK(shadow.Flush(*log) && log->Take(words - 1) == 1ull << 63, "its part inside the log marked");
  CHECK(!ShadowLog(words).Flush(*log), "an empty shadow flushes nothing");
}

int SealedMemfd(uint64_t size, bool seal) {
  int fd = memfd_create("dirty-log-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) abort();
  if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0) abort();
  return fd;
}

void MapChecks() {
  std::string err;
  CHECK(!DirtyLog::Map(SealedMemfd(4096, false), 4096, 0, &err), "an unsealed log is refused");
  CHECK(err.find("not sealed against shrinking") != std::string::npos, "says why: %s", err.c_str());
  CHECK(!DirtyLog::Map(SealedMemfd(4096, true), 4096, 8, &err), "a log past its file is refused");
  CHECK(err.find("runs past its file") != std::string::npos, "says why: %s", err.c_str());
  CHECK(!DirtyLog::Map(SealedMemfd(4096, true), 0, 0, &err), "an empty log is refused");
  CHECK(!DirtyLog::Map(eventfd(0, EFD_CLOEXEC), 8, 0, &err), "an eventfd is refused");
  CHECK(err.find("not a regular file") != std::string::npos, "says why: %s", err.c_str());
  // At an odd offset, with a size that is not whole words: bytes land where the front-end reads them.
  const int fd = SealedMemfd(4096, true);
  const int mine = dup(fd);
  std::unique_ptr<DirtyLog> log = DirtyLog::Map(fd, 13, 3, &err);
  CHECK(log && log->words() == 2 && log->covers() == 13 * 8 * kPage, "an odd log maps: %s", err.c_str());
  ShadowLog shadow(log->words());
  shadow.Mark(9 * kPage, 1);    // byte 1, bit 1
  shadow.Mark(100 * kPage, 1);  // byte 12, bit 4: the last byte of the log
  CHECK(shadow.Flush(*log), "marked");
  auto* view = static_cast<uint8_t*>(mmap(nullptr, 4096, PROT_READ, MAP_SHARED, mine, 0));
  CHECK(view != MAP_FAILED && view[3 + 1] == 2 && view[3 + 12] == 16 && view[3 + 13] == 0, "bits at the offset");
  munmap(view, 4096);
  close(mine);
}

// One device-written area of the pair, for "nothing marked but what the device writes".
struct Area {
  uint64_t gpa, len;
};

// Runs `rounds` bursts of `mover` with logging on (the RX queue's marks off when `break_rx`) and
// returns how many changed pages the log missed; *stray counts marked pages outside `allowed`.
template <typename Driver>
int Oracle(bool packed, uint32_t frame, uint32_t rx_len, bool via_switch, bool break_rx, int* stray) {
  Guest g;
  DevicePair pair(g, packed);
  Queue &rx = pair.rx, &tx = pair.tx;
  NetSettings& settings = pair.settings;
  uint64_t(&stats)[2][kStatsPerQueue] = pair.stats;
  std::unique_ptr<DirtyLog> log = DirtyLog::Anonymous(kMemSize / kPage / 8);
  ShadowLog rx_shadow(log->words()), tx_shadow(log->words());
  for (auto [q, shadow, desc, used] :
       {std::tuple{&rx, &rx_shadow, kRxDesc, kRxUsed}, std::tuple{&tx, &tx_shadow, kTxDesc, kTxUsed}}) {
    q->addr_set = true;
    q->num = kRing;
    q->desc_ua = kUser + desc;
    q->used_ua = kUser + used;
    q->SetLogRanges(g.mem);
    q->log = shadow;
    q->dirty_log = log.get();
  }
  if (break_rx) rx.log = nullptr;
  Driver txd{g, kTxDesc, kTxAvail}, rxd{g, kRxDesc, kRxAvail};
  txd.Init(kTxBufs, kHdr + frame, false);
  rxd.Init(kRxBufs, rx_len, true);
  const uint32_t rx_per_frame = (kHdr + frame + rx_len - 1) / rx_len;  // mergeable buffers a frame takes
  // Frames from 02:..:00 to 02:..:01 (learnt behind the forwarder's port 1), payload varying per round.
  static const uint8_t kMacs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0};
  for (uint32_t i = 0; i < kRing; i++) memcpy(g.base + kTxBufs + uint64_t{kBufLen} * i + kHdr, kMacs, 12);
  Reporter report = [](const std::string& why) { fprintf(stderr, "%s\n", why.c_str()); };
  std::function<bool()> never = [] { return false; };
  PairContext c{g.mem, settings, rx, tx, false, never, report};
  std::function<void()> move;
  PortOptions options;
  PortError port_err;
  std::shared_ptr<Port> loopback = CreatePort("loopback", options, &port_err);
  Forwarder forwarder(64, 300);
  Forwarder::Port ports[2];
  for (int i = 0; i < 2; i++) {
    ports[i].number = i;
    forwarder.Add(&ports[i]);
  }
  forwarder.table().Tick(1);
  forwarder.table().Learn(kMacs, 1, 1);
  ports[1].rx = PairRx{&c.mem, &c.settings, &c.rx, &c.report, nullptr};
  if (via_switch) move = [&] { forwarder.Forward(ports[0], c); };
  else move = [&] { loopback->Service(c); };
  // Allowed: the RX buffers, the used rings (split) or descriptor rings and device areas (packed).
  std::vector<Area> allowed = {{kRxBufs, uint64_t{kRing} * kBufLen}};
  for (const Queue* q : {&rx, &tx})
    for (const Queue::LogRange& r : q->log_ring) allowed.push_back({r.gpa, r.len});
  std::vector<uint8_t> before(kMemSize);
  int missed = 0;
  const int rounds = rx_per_frame == 1 ? 40 : 3;  // with two buffers a frame, the RX ring laps in 4
  for (int round = 0; round < rounds; round++) {
    for (uint32_t k = 0; k < rx_per_frame; k++) rxd.Post();
    for (uint32_t i = 0; i < kRing; i++)
      g.base[kTxBufs + uint64_t{kBufLen} * i + kHdr + 12] = static_cast<uint8_t>(round);
    txd.Post();
    memcpy(before.data(), g.base, kMemSize);
    move();
    std::vector<uint64_t> words(log->words());
    for (size_t w = 0; w < words.size(); w++) words[w] = log->Take(w);  // read and cleared, as QEMU does
    for (uint64_t page = 0; page < kMemSize / kPage; page++) {
      const bool marked = (words[page / 64] >> (page % 64)) & 1;
      const bool changed = memcmp(before.data() + page * kPage, g.base + page * kPage, kPage) != 0;
      if (changed && !marked) missed++;
      bool inside = false;
      for (const Area& a : allowed) inside = inside || (page * kPage < a.gpa + a.len && a.gpa < (page + 1) * kPage);
      if (marked && !inside) (*stray)++;
    }
  }
  CHECK(stats[0][kStatPackets] == uint64_t{kBurst} * rounds || break_rx, "moved %llu frames",
        static_cast<unsigned long long>(stats[0][kStatPackets]));
  return missed;
}

}  // namespace

int main() {
  ShadowAgainstModel();
  MapChecks();
  for (bool via_switch : {false, true})
    for (bool packed : {false, true})
      for (auto [frame, rx_len] : {std::pair{64u, kBufLen}, std::pair{1500u, kBufLen}, std::pair{1500u, 1024u}}) {
        int stray = 0;
        const int missed = packed ? Oracle<PackedDriver>(true, frame, rx_len, via_switch, false, &stray)
                                  : Oracle<SplitDriver>(false, frame, rx_len, via_switch, false, &stray);
        CHECK(missed == 0 && stray == 0,
              "%s %s %u B in %u B buffers: %d changed pages not logged, %d logged that the device does not write",
              via_switch ? "switch" : "loopback", packed ? "packed" : "split", frame, rx_len, missed, stray);
        // The negative control: the RX queue's marks left out, the oracle must see the pages missed.
        int ignored = 0;
        const int broken = packed ? Oracle<PackedDriver>(true, frame, rx_len, via_switch, true, &ignored)
                                  : Oracle<SplitDriver>(false, frame, rx_len, via_switch, true, &ignored);
        CHECK(broken > 0, "the oracle missed a log without RX marks (%s %s %u B)", via_switch ? "switch" : "loopback",
              packed ? "packed" : "split", frame);
      }
  printf("dirty log: %d checks passed\n", vhost_test::checks);
  return 0;
}
