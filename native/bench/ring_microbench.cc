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
#include "test/ring_driver.h"

#if __has_include("net/switch/forwarder.h")
#include "net/switch/forwarder.h"
#define HAVE_SWITCH 1
#endif

#if __has_include("net/capture.h")
#include "net/capture.h"
#define HAVE_CAPTURE 1
#endif

using namespace vhost;
using namespace vhost_test;

namespace {

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
  for (uint32_t i = 0; i < kRing; i++) memcpy(g.base + kTxBufs + uint64_t{kBufLen} * i + kHdr, kMacs, 12);
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
  DevicePair pair(g, packed);
  Queue &rx = pair.rx, &tx = pair.tx;
  NetSettings& settings = pair.settings;
  uint64_t(&stats)[2][kStatsPerQueue] = pair.stats;
  Driver txd{g, kTxDesc, kTxAvail}, rxd{g, kRxDesc, kRxAvail};
  txd.Init(kTxBufs, kHdr + frame, false);
  rxd.Init(kRxBufs, kBufLen, true);
  std::function<void(PairContext&)> move = Mover(g, via_switch);
  std::function<bool()> never = [] { return false; };
  Reporter report = [](const std::string& why) { fprintf(stderr, "%s\n", why.c_str()); };
  PairContext c{g.mem, settings, rx, tx, false, never, report};
#ifdef HAVE_CAPTURE
  int cap_errno = 0;
  std::string err;
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

}  // namespace

// usage: ring_microbench split|packed [ROUNDS] [FRAME BYTES, 14..2000] [capture|switch] — prints ns per frame.
int main(int argc, char** argv) {
  const bool packed = argc > 1 && strcmp(argv[1], "packed") == 0;
  const uint64_t rounds = argc > 2 ? strtoull(argv[2], nullptr, 10) : 200000;
  const uint32_t frame = argc > 3 ? static_cast<uint32_t>(strtoul(argv[3], nullptr, 10)) : 64;
  const bool capture = argc > 4 && strcmp(argv[4], "capture") == 0;
  const bool via_switch = argc > 4 && strcmp(argv[4], "switch") == 0;
  if (frame < 14 || frame > kBufLen - kHdr) return 2;
  Guest g;
  double ns = packed ? Run<PackedDriver>(g, true, rounds, frame, capture, via_switch)
                     : Run<SplitDriver>(g, false, rounds, frame, capture, via_switch);
  printf("%.2f\n", ns);
  return 0;
}
