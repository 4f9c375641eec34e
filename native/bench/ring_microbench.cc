// A single-thread microbenchmark of the data path: the loopback port moving frames (64 B by default) between
// a split or packed TX ring and RX ring that a driver loop in this thread refills, with no second
// CPU, no eventfd and no front-end process. What it measures is the device's own work per frame
// (ring walk, checks, copy, used entries), the part a change to native/ can make slower; on these
// noisy 2-CPU machines it tells a few per cent apart where the testpmd benchmark cannot.
// With `capture` (trees that have net/capture.h) every frame is also captured into a 4 MiB ring that
// this thread empties after each round without reading it, as a pcap writer on another CPU that keeps
// up would: the device's own cost of capture. run.sh --capture compares the two.
// With `switch` (trees that have net/switch/forwarder.h) the frames go through the switch's Forwarder
// instead of the loopback: from one port's TX ring to another port's RX ring by a learnt destination MAC
// (learning, lookup, one copy, publish): the switch's own cost per frame beside the loopback's.
// Built and run by native/bench/run.sh (A/B of two source trees); not part of the addon.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/guest_memory.h"
#include "core/virtqueue.h"
#include "net/port.h"
#include "net/ports/registry.h"
#include "net/virtio_net.h"

#if __has_include("net/switch/forwarder.h")
#include "net/switch/forwarder.h"
#define HAVE_SWITCH 1
#endif

#if __has_include("net/capture.h")
#include "net/capture.h"
#define HAVE_CAPTURE 1
#endif

using namespace vhost;

namespace {

constexpr uint64_t kMemSize = 8 << 20;
constexpr uint64_t kUser = 0x40000000;
constexpr uint32_t kRing = 256;
constexpr uint32_t kBurst = 32;
constexpr uint32_t kHdr = 12;
// Guest-physical layout: TX ring, RX ring, then buffers.
constexpr uint64_t kTxDesc = 0x0000, kTxAvail = 0x1000, kTxUsed = 0x2000;
constexpr uint64_t kRxDesc = 0x4000, kRxAvail = 0x5000, kRxUsed = 0x6000;
constexpr uint64_t kTxBufs = 0x10000, kRxBufs = 0x100000;
constexpr uint32_t kRxBufLen = 2048;

struct Guest {
  GuestMemory mem;
  uint8_t* base = nullptr;
  explicit Guest() {
    int fd = memfd_create("microbench", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, kMemSize) != 0) abort();
    std::string err;
    if (mem.Add(RegionSpec{0, kMemSize, kUser, 0}, fd, &err) != 0) abort();
    base = mem.GpaToHost(0, kMemSize);
  }
  void Desc(uint64_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t a, uint16_t b) {
    uint8_t* d = base + table + 16u * i;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &a, 2);
    memcpy(d + 14, &b, 2);
  }
  uint16_t* U16(uint64_t gpa) { return reinterpret_cast<uint16_t*>(base + gpa); }
};

// The driver of a split ring: descriptor i always holds buffer i; each round makes the next kBurst
// available by moving avail->idx (the device has taken every earlier one by then).
struct SplitDriver {
  Guest& g;
  uint64_t desc, avail;
  uint16_t idx = 0;
  void Init(uint64_t bufs, uint32_t len, bool writable) {
    for (uint32_t i = 0; i < kRing; i++) {
      g.Desc(desc, i, bufs + uint64_t{kRxBufLen} * i, len, writable ? 2 : 0, 0);
      g.U16(avail + 4)[i] = static_cast<uint16_t>(i);
    }
  }
  void Post() {
    idx = static_cast<uint16_t>(idx + kBurst);
    __atomic_store_n(g.U16(avail + 2), idx, __ATOMIC_RELEASE);
  }
};

// The driver of a packed ring: re-writes the next kBurst descriptors with this lap's AVAIL/USED bits.
struct PackedDriver {
  Guest& g;
  uint64_t desc;
  uint64_t bufs = 0;
  uint32_t len = 0;
  bool writable = false;
  uint32_t next = 0;
  bool wrap = true;
  void Init(uint64_t b, uint32_t l, bool w) {
    bufs = b;
    len = l;
    writable = w;
  }
  void Post() {
    for (uint32_t k = 0; k < kBurst; k++) {
      uint16_t flags = static_cast<uint16_t>((writable ? 2 : 0) | (wrap ? 1 << 7 : 1 << 15));
      g.Desc(desc, next, bufs + uint64_t{kRxBufLen} * next, len, static_cast<uint16_t>(next), flags);
      if (++next == kRing) {
        next = 0;
        wrap = !wrap;
      }
    }
  }
};

// What moves the frames: the loopback port, or the switch's forwarding between two ports.
std::function<void(PairContext&)> Mover(Guest& g, bool via_switch) {
  if (!via_switch) {
    PortOptions options;
    PortError port_err;
    std::shared_ptr<Port> port = CreatePort("loopback", options, &port_err);
    return [port](PairContext& c) { port->Service(c); };
  }
#ifdef HAVE_SWITCH
  // Every TX buffer carries a frame from 02:00:00:00:00:00 to 02:00:00:00:00:01, learnt on port 1.
  static const uint8_t kMacs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0};
  for (uint32_t i = 0; i < kRing; i++) memcpy(g.base + kTxBufs + uint64_t{kRxBufLen} * i + kHdr, kMacs, 12);
  auto f = std::make_shared<Forwarder>(64, 300);
  auto ports = std::make_shared<std::vector<Forwarder::Port>>(2);
  for (int i = 0; i < 2; i++) {
    (*ports)[i].number = i;
    f->Add(&(*ports)[i]);
  }
  f->table().Tick(1);
  f->table().Learn(kMacs, 1, 1);
  return [f, ports](PairContext& c) {
    (*ports)[1].rx = PairRx{&c.mem, &c.settings, &c.rx, &c.report, c.capture};
    while (f->Forward((*ports)[0], c) > 0) {
    }
  };
#else
  exit(2);
#endif
}

template <typename Driver>
double Run(Guest& g, bool packed, uint64_t rounds, uint32_t frame, bool capture, bool via_switch) {
  uint64_t features = (1ull << kFeatureMrgRxbuf) | (1ull << kFeatureVersion1) | (1ull << 29);
  if (packed) features |= 1ull << 34;
  NetSettings settings = NetSettings::FromFeatures(features);
  uint64_t stats[2][kStatsPerQueue] = {};
  Queue rx, tx;
  rx.stats = stats[0];
  tx.stats = stats[1];
  std::string err;
  for (Queue* q : {&rx, &tx}) q->SetRingFeatures(features);
  if (!tx.ring.Attach(g.mem, kRing, kUser + kTxDesc, kUser + kTxAvail, kUser + kTxUsed, &err)) abort();
  if (!rx.ring.Attach(g.mem, kRing, kUser + kRxDesc, kUser + kRxAvail, kUser + kRxUsed, &err)) abort();
  for (Queue* q : {&rx, &tx}) {
    q->SetRingFeatures(features);
    q->enabled = true;
    q->kick_fd = 0;  // only Ready() looks at it
  }
  Driver txd{g, kTxDesc, kTxAvail}, rxd{g, kRxDesc, kRxAvail};
  txd.Init(kTxBufs, kHdr + frame, false);
  rxd.Init(kRxBufs, kRxBufLen, true);
  std::function<void(PairContext&)> move = Mover(g, via_switch);
  std::function<bool()> never = [] { return false; };
  Reporter report = [](const std::string& why) { fprintf(stderr, "%s\n", why.c_str()); };
  PairContext c{g.mem, settings, rx, tx, false, never, report};
#ifdef HAVE_CAPTURE
  int cap_errno = 0;
  std::unique_ptr<Capture> cap = capture ? Capture::Create(1, 4 << 20, 262144, &cap_errno, &err) : nullptr;
  if (cap) c.capture = &cap->ring(0);
  auto drain_capture = [&] {
    for (int piece = 0; cap && piece < 2; piece++) {
      uint64_t offset = 0, length = 0;
      cap->ring(0).Readable(&offset, &length);
      cap->ring(0).Consume(length);
    }
  };
#else
  if (capture) exit(2);
  auto drain_capture = [] {};
#endif
  auto start = std::chrono::steady_clock::now();
  for (uint64_t r = 0; r < rounds; r++) {
    rxd.Post();
    txd.Post();
    move(c);
    drain_capture();
  }
  double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  if (stats[1][kStatPackets] != rounds * kBurst || stats[0][kStatPackets] != rounds * kBurst) {
    fprintf(stderr, "moved %llu frames of %llu\n", static_cast<unsigned long long>(stats[1][kStatPackets]),
            static_cast<unsigned long long>(rounds * kBurst));
    abort();
  }
  return ns / static_cast<double>(rounds * kBurst);
}

// Packed drivers write the descriptor itself; a split driver leaves the avail ring address unused.
struct PackedDriverAdapter : PackedDriver {
  PackedDriverAdapter(Guest& g, uint64_t desc, uint64_t) : PackedDriver{g, desc} {}
};

}  // namespace

// usage: ring_microbench split|packed [ROUNDS] [FRAME BYTES, 14..2000] [capture|switch] — prints ns per frame.
int main(int argc, char** argv) {
  const bool packed = argc > 1 && strcmp(argv[1], "packed") == 0;
  const uint64_t rounds = argc > 2 ? strtoull(argv[2], nullptr, 10) : 200000;
  const uint32_t frame = argc > 3 ? static_cast<uint32_t>(strtoul(argv[3], nullptr, 10)) : 64;
  const bool capture = argc > 4 && strcmp(argv[4], "capture") == 0;
  const bool via_switch = argc > 4 && strcmp(argv[4], "switch") == 0;
  if (frame < 14 || frame > kRxBufLen - kHdr) return 2;
  Guest g;
  double ns = packed ? Run<PackedDriverAdapter>(g, true, rounds, frame, capture, via_switch)
                     : Run<SplitDriver>(g, false, rounds, frame, capture, via_switch);
  printf("%.2f\n", ns);
  return 0;
}
