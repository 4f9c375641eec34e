// libFuzzer target: the device side of the data path — descriptor-chain walking (split and packed
// rings, direct and indirect), receive-buffer reservation (mergeable or not), virtio-net header
// handling and the ports that touch guest memory (loopback copy, sink, source, js), the switch's
// forwarding (learning, lookups, flooding into a shared RX ring; a VXLAN datagram checked by the uplink's
// parser and its inner frame injected), the user port's
// software offloads, the per-frame counters and, when a header bit says so, capture into a small ring
// (wrapping and full) whose records are checked after each input, and the dirty-page log (always on,
// over a log that covers less than the memory: every page it marks must be guest memory) — run on a synthetic guest
// memory whose every byte (rings and buffers) comes from the fuzzer; for the js port, the indexes and descriptors a
// program writes into its rings come from the fuzzer too. Built with ASan/UBSan by native/fuzz/run.sh; any
// out-of-bounds access is a crash.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "core/dirty_log.h"
#include "core/guest_memory.h"
#include "core/virtqueue.h"
#include "net/capture.h"
#include "net/frame_rings.h"
#include "net/port.h"
#include "net/ports/registry.h"
#include "net/software_offload.h"
#include "net/switch/forwarder.h"
#include "net/virtio_net.h"
#include "net/vxlan_header.h"

using namespace vhost;

namespace {

constexpr uint64_t kRegionSize = 32 * 1024;
constexpr uint64_t kUser0 = 0x10000000, kUser1 = 0x20000000;
constexpr uint64_t kGpa1 = 0x100000;  // a hole between the regions, as below/above 4 GiB
// Small slots above region 0 (past a hole), so that mutated addresses reach the binary search over
// many regions: pairs of adjacent ones (a buffer may span both) with a hole after each pair.
// Zeroed for every input; rings and the seeds' buffers stay in region 0.
constexpr int kSlots = 16;
constexpr uint64_t kSlotGpa = 0x10000, kSlotStride = 0x1000, kUserSlots = 0x30000000;
constexpr uint64_t kJsProgram = 0x1c00;      // 8 + 64 * 8 bytes
constexpr uint64_t kVxlanDatagram = 0x1e10;  // past the js program: a length, a byte of the frame limit, a datagram
constexpr uint64_t SlotSize(int k) { return k % 2 == 0 ? kSlotStride : kSlotStride / 2; }

struct World {
  GuestMemory mem;
  uint8_t* host[2];
  uint8_t* slot_host[kSlots];
  int kick_fd;
  // A ring small enough to wrap and fill within one input; a snaplen that cuts most frames.
  static constexpr uint32_t kSnaplen = 200;
  std::unique_ptr<Capture> capture;
  // Bits for region 0, the slots and half of region 1: pages beyond it are counted, not marked.
  static constexpr uint64_t kLogBytes = (kGpa1 + kRegionSize / 2) >> (kLogPageShift + 3);
  std::unique_ptr<DirtyLog> log = DirtyLog::Anonymous(kLogBytes);
  World() {
    std::string err;
    for (int i = 0; i < 2; i++) {
      int fd = memfd_create("fuzz-guest", MFD_CLOEXEC);
      if (fd < 0 || ftruncate(fd, 2 * kRegionSize) != 0) abort();
      RegionSpec spec{i == 0 ? 0 : kGpa1, kRegionSize, i == 0 ? kUser0 : kUser1, i * kRegionSize};
      if (mem.Add(spec, fd, &err) != 0) abort();
    }
    host[0] = mem.GpaToHost(0, kRegionSize);
    host[1] = mem.GpaToHost(kGpa1, kRegionSize);
    int slots_fd = memfd_create("fuzz-slots", MFD_CLOEXEC);
    if (slots_fd < 0 || ftruncate(slots_fd, kSlots * kSlotStride) != 0) abort();
    // Added out of order: the table sorts them.
    for (int i = 0; i < kSlots; i++) {
      int k = (i * 7) % kSlots;
      RegionSpec spec{kSlotGpa + k * kSlotStride, SlotSize(k), kUserSlots + k * kSlotStride, k * kSlotStride};
      if (mem.Add(spec, dup(slots_fd), &err) != 0) abort();
    }
    close(slots_fd);
    if (!host[0] || !host[1]) abort();
    for (int k = 0; k < kSlots; k++) {
      slot_host[k] = mem.GpaToHost(kSlotGpa + k * kSlotStride, SlotSize(k));
      if (!slot_host[k]) abort();
    }
    kick_fd = eventfd(0, EFD_NONBLOCK);
    int e = 0;
    capture = Capture::Create(1, 4096, kSnaplen, &e, &err);
    if (!capture) abort();
  }
};

// The js port's rings as a program left them: the ring from JS (head and every descriptor) and the
// tail of the ring toward JS from region 0 at kJsProgram (past the seeds' buffers, within -max_len),
// the consumer flag from the port byte.
void GiveJsRings(Port& port, uint8_t port_byte, const uint8_t* program) {
  static std::shared_ptr<FrameRings> rings = [] {
    int err_no = 0;
    std::string err;
    auto r = FrameRings::Create(1, FrameRings::kMinSlots, FrameRings::kMinSlotSize, &err_no, &err);
    if (!r) abort();
    return r;
  }();
  std::string err;
  if (port.OnFrameRings(rings, 0, &err) != 0) abort();  // every index back to 0
  FrameRing from = rings->ring(0, true), to = rings->ring(0, false);
  memcpy(&from.header().head, program, 4);
  memcpy(&to.header().tail, program + 4, 4);
  for (uint32_t i = 0; i < rings->slots(); i++) memcpy(&from.desc(i), program + 8 + 8 * i, 8);
  rings->flags().consumer = (port_byte >> 2) & 1;
}

// The user port's software offloads (net/software_offload.h) over bytes of guest memory laid out as
// a TX buffer holds them: a virtio-net header, then the frame (copied out first, as the port does).
// The frame's length is the header's hdr_len field (a hint the port does not read). Whatever the
// header claims, every segment stays inside the buffers, and a frame makes one segment per gso_size
// bytes of payload at most.
void FuzzOffloads(const uint8_t* bytes, size_t len) {
  static std::vector<uint8_t> frame(65536 + 18), segment(65536);
  if (len < 10) return;
  const NetOffload o = NetOffload::Parse(bytes);
  const size_t hint = bytes[2] | bytes[3] << 8;
  const size_t n = hint < len - 10 ? hint : len - 10;
  memcpy(frame.data(), bytes + 10, n);
  if (o.gso_type == kGsoNone) {
    if (o.flags & kNetHdrNeedsCsum) CompleteChecksum(frame.data(), n, o.csum_start, o.csum_offset);
    return;
  }
  TcpSegmenter segmenter;
  if (!segmenter.Start(frame.data(), n, o) || !segmenter.Fits(segment.size())) return;
  size_t count = 0;
  while (segmenter.Next(segment.data(), segment.size()) > 0) {
    if (++count > n / o.gso_size + 1) abort();
  }
  if (count == 0) abort();
}

// The VXLAN uplink's check of a received datagram (net/vxlan_header.h) over bytes of the input at
// kVxlanDatagram (a length byte pair, then the datagram), VNI 42, the longest inner frame from the
// input too. What it accepts must be what the RFC allows; the header we write must pass it. Returns
// the inner frame it accepted (copied out, as the uplink's buffer holds it) or null.
const uint8_t* FuzzVxlan(const uint8_t* region, size_t n, uint32_t* frame_len) {
  static uint8_t datagram[0x2000];
  constexpr uint32_t kVni = 42;
  if (n < kVxlanDatagram + 3) return nullptr;
  const uint8_t* at = region + kVxlanDatagram;
  const size_t room = n - kVxlanDatagram - 3;
  const size_t claimed = at[0] | at[1] << 8;
  const size_t len = claimed < room ? claimed : room;
  const uint32_t max_frame = 14 + 4 * at[2];
  memcpy(datagram, at + 3, len);
  const VxlanVerdict v = ParseVxlan(datagram, len, kVni, max_frame);
  const uint32_t vni = len >= 7 ? (uint32_t{datagram[4]} << 16) | (uint32_t{datagram[5]} << 8) | datagram[6] : 0;
  if (v == VxlanVerdict::kOk &&
      (len < kVxlanHeader + 14 || !(datagram[0] & kVxlanFlagI) || vni != kVni || len - kVxlanHeader > max_frame))
    abort();
  uint8_t ours[kVxlanHeader + 14] = {};
  WriteVxlanHeader(ours, vni);
  if (ParseVxlan(ours, sizeof ours, vni, 14) != VxlanVerdict::kOk || ours[1] | ours[2] | ours[3] | ours[7]) abort();
  if (v != VxlanVerdict::kOk) return nullptr;
  *frame_len = static_cast<uint32_t>(len - kVxlanHeader);
  return datagram + kVxlanHeader;
}

// The switch's forwarding (net/switch/forwarder.h) instead of a port: the TX ring is one port's, the
// RX ring two others' (a flood delivers into it twice, as to two devices sharing one memory file).
// Their VLANs come from the port byte, two MACs learnt behind them in advance from the input (so
// that unicast reaches them), the rest is learnt from the frames. Then the inner frame of a VXLAN
// datagram the uplink accepted (if any) enters as from an uplink on port 0.
void FuzzSwitch(PairContext& c, Queue& rx, uint8_t port_byte, const uint8_t* macs, const uint8_t* inner,
                uint32_t inner_len) {
  Forwarder f(8, 300);  // a small table: full after a few frames, refusals taken
  f.table().Tick(1);
  const PairRx to{&c.mem, &c.settings, &rx, &c.report, c.capture};
  Forwarder::Port ports[3];
  for (int i = 0; i < 3; i++) {
    ports[i].number = i;
    ports[i].vlan = i == 0 ? 1 : 1 + ((port_byte >> (1 + i)) & 1);
    if (i > 0) ports[i].rx = to;
    f.Add(&ports[i]);
  }
  f.table().Learn(macs, ports[1].vlan, 1);
  f.table().Learn(macs + 6, ports[2].vlan, 2);
  for (int burst = 0; burst < 4 && f.Forward(ports[0], c) > 0; burst++) {
  }
  if (inner) {
    f.Inject(ports[0], const_cast<uint8_t*>(inner), inner_len);
    f.EndInjected();
  }
  for (Forwarder::Port& p : ports) f.Remove(&p);
  if (f.table().size() != 0) abort();  // every port's MACs forgotten with it
}

// Reads what the capture ring holds (every record of one input) and checks its framing and counts.
void DrainCapture(Capture& capture, uint64_t captured_before) {
  CaptureRing& ring = capture.ring(0);
  std::vector<uint8_t> bytes;
  for (int piece = 0; piece < 2; piece++) {
    uint64_t offset = 0, length = 0;
    ring.Readable(&offset, &length);
    bytes.insert(bytes.end(), capture.data() + offset, capture.data() + offset + length);
    ring.Consume(length);
  }
  uint64_t records = 0;
  for (size_t at = 0; at < bytes.size(); records++) {
    uint32_t h[4];
    if (at + sizeof h > bytes.size()) abort();
    memcpy(h, bytes.data() + at, sizeof h);
    if (h[1] >= 1000000000 || h[2] > World::kSnaplen || h[2] > h[3] || (h[2] < World::kSnaplen && h[2] != h[3]))
      abort();
    at += sizeof h + h[2];
    if (at > bytes.size()) abort();
  }
  if (records != ring.frames() - captured_before) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* w = new World();
  if (size < 4) return 0;
  // Header bytes: ring sizes, negotiated features, the port (and the source's frame size).
  uint64_t features = 0;
  if (data[2] & 1) features |= 1ull << kFeatureMrgRxbuf;
  if (data[2] & 2) features |= 1ull << kFeatureIndirectDesc;
  if (data[2] & 4) features |= 1ull << kFeatureEventIdx;
  if (data[2] & 8) features |= 1ull << kFeatureVersion1;
  if (data[2] & 16) features |= 1ull << kFeatureRingPacked;
  if (data[2] & 32) features |= 1ull << kFeatureInOrder;
  // Small rings keep the layout dense: split 1..16 (powers of two), packed any size 1..16.
  const bool packed = (data[2] & 16) != 0;
  uint32_t tx_num = packed ? 1 + data[0] % 16 : 1u << (data[0] % 5);
  uint32_t rx_num = packed ? 1 + data[1] % 16 : 1u << (data[1] % 5);
  const uint8_t port_byte = data[3];
  const bool capture = (data[2] & 64) != 0;
  const bool via_switch = (data[2] & 128) != 0;
  data += 4;
  size -= 4;
  // The rest is guest memory: region 0 then region 1; untouched bytes stay zero.
  memset(w->host[0], 0, kRegionSize);
  memset(w->host[1], 0, kRegionSize);
  for (int k = 0; k < kSlots; k++) memset(w->slot_host[k], 0, SlotSize(k));
  size_t n0 = size < kRegionSize ? size : kRegionSize;
  memcpy(w->host[0], data, n0);
  if (size > n0) memcpy(w->host[1], data + n0, size - n0 < kRegionSize ? size - n0 : kRegionSize);

  NetSettings settings = NetSettings::FromFeatures(features);
  uint64_t stats[2][kStatsPerQueue] = {};
  Queue rx, tx;
  rx.stats = stats[0];
  tx.stats = stats[1];
  std::string err;
  // Rings at the start of region 0, most decisive fields first, so that short inputs reach deep:
  // avail rings (packed: the driver's event areas), descriptor tables (packed: the rings), used
  // rings (packed: our event areas); buffers from 0x400 on.
  for (Queue* q : {&rx, &tx}) q->SetRingFeatures(features);  // the layout first
  if (!tx.ring.Attach(w->mem, tx_num, kUser0 + 0x080, kUser0 + 0x000, kUser0 + 0x280, &err)) abort();
  if (!rx.ring.Attach(w->mem, rx_num, kUser0 + 0x180, kUser0 + 0x040, kUser0 + 0x310, &err)) abort();
  ShadowLog rx_log(w->log->words()), tx_log(w->log->words());
  for (auto [q, shadow, desc, used, num] :
       {std::tuple{&rx, &rx_log, 0x180, 0x310, rx_num}, std::tuple{&tx, &tx_log, 0x080, 0x280, tx_num}}) {
    q->enabled = true;
    q->kick_fd = w->kick_fd;  // never signalled: only Ready() looks at it
    q->addr_set = true;
    q->num = num;
    q->desc_ua = kUser0 + desc;
    q->used_ua = kUser0 + used;
    q->SetLogRanges(w->mem);
    q->log = shadow;
    q->dirty_log = w->log.get();
  }
  // Made through the registry, as the addon makes them; 60 is the source's smallest frame.
  static const char* const kPorts[] = {"loopback", "sink", "source", "js"};
  PortOptions options;
  options.Set("frameSize", int64_t{60 + (port_byte >> 2) * 23});
  PortError port_err;
  std::unique_ptr<Port> made = CreatePort(kPorts[port_byte & 3], options, &port_err);
  if (!made) abort();
  Port& port = *made;
  if ((port_byte & 3) == 3) GiveJsRings(port, port_byte, w->host[0] + kJsProgram);
  int rounds = 0;
  std::function<bool()> stop = [&] { return ++rounds > 64; };
  Reporter report = [](const std::string&) {};
  // Both idle behaviours: arming kicks (event-driven) and suppressing them (busy-polling).
  PairContext c{w->mem, settings, rx, tx, (features & 1) == 0, stop, report};
  const uint64_t captured_before = w->capture->ring(0).frames();
  if (capture) c.capture = &w->capture->ring(0);
  uint32_t inner_len = 0;
  const uint8_t* inner = FuzzVxlan(w->host[0], n0, &inner_len);
  if (via_switch) FuzzSwitch(c, rx, port_byte, w->host[1], inner, inner_len);
  else port.Service(c);
  DrainCapture(*w->capture, captured_before);
  // Every frame counted is in one size bin; captured or not captured, never both.
  for (const uint64_t* q : {stats[0], stats[1]}) {
    uint64_t binned = 0;
    for (int b = kStatUndersize; b <= kStatSize1519ToMax; b++) binned += q[b];
    if (binned != q[kStatPackets] || q[kStatMulticast] + q[kStatBroadcast] > q[kStatPackets]) abort();
  }
  const uint64_t observed = stats[0][kStatPackets] + stats[1][kStatPackets];
  const uint64_t not_captured = stats[0][kStatCaptureDrops] + stats[1][kStatCaptureDrops];
  if (capture && w->capture->ring(0).frames() - captured_before + not_captured != observed) abort();
  if (!capture && (w->capture->ring(0).frames() != captured_before || not_captured != 0)) abort();
  // What a burst left in the shadows is flushed at the next publish; flush it here, then every
  // marked page must be one the guest memory has (read and cleared, as the front-end does).
  for (Queue* q : {&rx, &tx}) q->FlushLog();
  for (size_t word = 0; word < w->log->words(); word++) {
    const uint64_t bits = w->log->Take(word);
    for (int b = 0; b < 64; b++)
      if ((bits >> b) & 1 && !w->mem.GpaToHost((word * 64 + b) << kLogPageShift, 1)) abort();
  }
  FuzzOffloads(w->host[0] + 0x400, n0 > 0x400 ? n0 - 0x400 : 0);
  rx.kick_fd = tx.kick_fd = -1;
  return 0;
}
