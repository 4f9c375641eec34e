// The driver's side of a queue pair, for native programs that run the data path without a
// front-end: one memfd of guest memory with a TX ring, an RX ring and their buffers at fixed
// guest-physical addresses, and drivers that make kBurst more buffers available per round (split:
// descriptor i always holds buffer i; packed: the next kBurst descriptors rewritten for this lap).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/guest_memory.h"
#include "core/virtqueue.h"
#include "net/virtio_net.h"

namespace vhost_test {

using vhost::GuestMemory;
using vhost::RegionSpec;

constexpr uint64_t kMemSize = 8 << 20;
constexpr uint64_t kUser = 0x40000000;
constexpr uint32_t kRing = 256;
constexpr uint32_t kBurst = 32;
constexpr uint32_t kHdr = 12;
// Guest-physical layout: TX ring, RX ring, then buffers.
constexpr uint64_t kTxDesc = 0x0000, kTxAvail = 0x1000, kTxUsed = 0x2000;
constexpr uint64_t kRxDesc = 0x4000, kRxAvail = 0x5000, kRxUsed = 0x6000;
constexpr uint64_t kTxBufs = 0x10000, kRxBufs = 0x100000;
constexpr uint32_t kBufLen = 2048;

struct Guest {
  GuestMemory mem;
  uint8_t* base = nullptr;
  Guest() {
    int fd = memfd_create("ring-driver", MFD_CLOEXEC);
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

struct SplitDriver {
  Guest& g;
  uint64_t desc, avail;
  uint16_t idx = 0;
  SplitDriver(Guest& guest, uint64_t d, uint64_t a) : g(guest), desc(d), avail(a) {}
  void Init(uint64_t bufs, uint32_t len, bool writable) {
    for (uint32_t i = 0; i < kRing; i++) {
      g.Desc(desc, i, bufs + uint64_t{kBufLen} * i, len, writable ? 2 : 0, 0);
      g.U16(avail + 4)[i] = static_cast<uint16_t>(i);
    }
  }
  void Post() {
    idx = static_cast<uint16_t>(idx + kBurst);
    __atomic_store_n(g.U16(avail + 2), idx, __ATOMIC_RELEASE);
  }
};

// A packed ring has no avail ring: the address is unused.
struct PackedDriver {
  Guest& g;
  uint64_t desc;
  uint64_t bufs = 0;
  uint32_t len = 0;
  bool writable = false;
  uint32_t next = 0;
  bool wrap = true;
  PackedDriver(Guest& guest, uint64_t d, uint64_t) : g(guest), desc(d) {}
  void Init(uint64_t b, uint32_t l, bool w) {
    bufs = b;
    len = l;
    writable = w;
  }
  void Post() {
    for (uint32_t k = 0; k < kBurst; k++) {
      uint16_t flags = static_cast<uint16_t>((writable ? 2 : 0) | (wrap ? 1 << 7 : 1 << 15));
      g.Desc(desc, next, bufs + uint64_t{kBufLen} * next, len, static_cast<uint16_t>(next), flags);
      if (++next == kRing) {
        next = 0;
        wrap = !wrap;
      }
    }
  }
};

// The device's TX and RX queues over the drivers' rings, attached with `features`, ready to serve.
inline void AttachPair(Guest& g, uint64_t features, vhost::Queue& tx, vhost::Queue& rx) {
  std::string err;
  for (vhost::Queue* q : {&rx, &tx}) q->SetRingFeatures(features);
  if (!tx.ring.Attach(g.mem, kRing, kUser + kTxDesc, kUser + kTxAvail, kUser + kTxUsed, &err)) abort();
  if (!rx.ring.Attach(g.mem, kRing, kUser + kRxDesc, kUser + kRxAvail, kUser + kRxUsed, &err)) abort();
  for (vhost::Queue* q : {&rx, &tx}) {
    q->enabled = true;
    q->kick_fd = 0;  // only Ready() looks at it
  }
}

// A device's TX/RX pair over the drivers' rings, with the features these programs use (MRG_RXBUF,
// VERSION_1, EVENT_IDX; RING_PACKED when `packed`), attached, and its counters.
struct DevicePair {
  uint64_t features;
  vhost::NetSettings settings;
  uint64_t stats[2][vhost::kStatsPerQueue] = {};
  vhost::Queue rx, tx;
  DevicePair(Guest& g, bool packed)
      : features((1ull << vhost::kFeatureMrgRxbuf) | (1ull << vhost::kFeatureVersion1) | (1ull << 29) |
                 (packed ? 1ull << 34 : 0)),
        settings(vhost::NetSettings::FromFeatures(features)) {
    rx.stats = stats[0];
    tx.stats = stats[1];
    AttachPair(g, features, tx, rx);
  }
};

}  // namespace vhost_test
