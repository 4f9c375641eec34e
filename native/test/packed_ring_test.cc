// Unit checks of PackedRing that no front-end reaches on demand: a driver simulated in this thread
// writes the ring, the device side is called directly, and each check looks at what the device wrote.
// Built and run by native/test/run.sh (test/native-rings.test.ts); exits 1 on the first failed check.
#include "core/packed_ring.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/guest_memory.h"
#include "test/check.h"

using namespace vhost;

namespace {

constexpr uint64_t kMemSize = 1 << 20, kUser = 0x40000000;
constexpr uint64_t kRing = 0, kDriverArea = 0x80000, kDeviceArea = 0x80010, kBuffers = 0x90000;
constexpr uint16_t kAvail = 1 << 7, kUsed = 1 << 15, kWrite = 2;

// Guest memory with one ring, and the driver's hand on it.
struct Driver {
  GuestMemory mem;
  uint8_t* base = nullptr;
  PackedRing ring;
  uint32_t num;

  Driver(uint32_t n, bool event_idx, bool in_order) : num(n) {
    int fd = memfd_create("packed-ring-test", MFD_CLOEXEC);
    std::string err;
    if (fd < 0 || ftruncate(fd, kMemSize) != 0 || mem.Add(RegionSpec{0, kMemSize, kUser, 0}, fd, &err) != 0) abort();
    base = mem.GpaToHost(0, kMemSize);
    ring.set_event_idx(event_idx);
    ring.set_in_order(in_order);
    Attach();
  }
  void Attach() {
    std::string err;
    if (!ring.Attach(mem, num, kUser + kRing, kUser + kDriverArea, kUser + kDeviceArea, &err)) {
      fprintf(stderr, "attach: %s\n", err.c_str());
      abort();
    }
  }
  // Makes slot i available in the lap of `wrap` as a one-descriptor buffer with id `id`.
  void Offer(uint32_t i, uint16_t id, bool wrap, bool writable) {
    uint8_t* d = base + kRing + 16u * i;
    uint64_t addr = kBuffers + 256u * i;
    uint32_t len = 128;
    uint16_t flags = static_cast<uint16_t>((writable ? kWrite : 0) | (wrap ? kAvail : kUsed));
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &id, 2);
    __atomic_store_n(reinterpret_cast<uint16_t*>(d + 14), flags, __ATOMIC_RELEASE);
  }
  uint16_t Flags(uint32_t i) const { return *reinterpret_cast<const uint16_t*>(base + kRing + 16u * i + 14); }
  uint16_t Id(uint32_t i) const { return *reinterpret_cast<const uint16_t*>(base + kRing + 16u * i + 12); }
  uint32_t Len(uint32_t i) const { return *reinterpret_cast<const uint32_t*>(base + kRing + 16u * i + 8); }
  void DriverEvent(uint16_t off_wrap, uint16_t flags) {
    memcpy(base + kDriverArea, &off_wrap, 2);
    memcpy(base + kDriverArea + 2, &flags, 2);
  }
  // Takes one chain (the device's Available + Pop).
  Chain Take(bool device_writes, ChainError* err) {
    Segment segs[4];
    Chain c;
    bool broken = false;
    if (ring.Available(&broken) == 0) {
      fprintf(stderr, "nothing available\n");
      exit(1);
    }
    ring.Pop(mem, device_writes, segs, 4, &c, err);
    return c;
  }
};

// More than a lap used between two publishes: the driver's event slot was passed, so it is called.
void CallAfterMoreThanALap() {
  Driver d(300, true, false);
  for (uint32_t i = 0; i < 300; i++) d.Offer(i, static_cast<uint16_t>(i), true, false);
  ChainError err;
  for (uint32_t k = 0; k < 400; k++) {
    Chain c = d.Take(false, &err);
    CHECK(err == ChainError::kNone, "chain %u refused: %s", k, ChainErrorName(err));
    d.ring.PushUsed(c, 0);
    if (k == 256) {  // the shadow went out at the 257th push: the driver saw 0..255 and refilled
      for (uint32_t i = 0; i < 100; i++) d.Offer(i, static_cast<uint16_t>(i), false, false);
      d.DriverEvent(256 | 0x8000, 2);  // call me once slot 256 of the first lap is used
    }
  }
  CHECK(d.ring.PublishUsed() == Published::kCall, "no call after 400 used descriptors on a 300-slot ring");
}

// The call decision within a lap follows the driver's event slot and wrap counter.
void CallDecisionWithinALap() {
  Driver d(8, true, false);
  for (uint32_t i = 0; i < 8; i++) d.Offer(i, static_cast<uint16_t>(i), true, false);
  ChainError err;
  d.DriverEvent(5 | 0x8000, 2);  // slot 5, first lap
  for (int k = 0; k < 3; k++) d.ring.PushUsed(d.Take(false, &err), 0);
  CHECK(d.ring.PublishUsed() == Published::kQuiet, "called before slot 5 was used (slots 0..2)");
  for (int k = 0; k < 3; k++) d.ring.PushUsed(d.Take(false, &err), 0);
  CHECK(d.ring.PublishUsed() == Published::kCall, "not called once slot 5 was used (slots 3..5)");
  d.DriverEvent(0, 1);  // DISABLE
  d.ring.PushUsed(d.Take(false, &err), 0);
  CHECK(d.ring.PublishUsed() == Published::kQuiet, "called with calls disabled");
  CHECK(d.ring.PublishUsed() == Published::kNone, "called with nothing new");
}

// Entries a fault left in the shadow are dropped at re-attach with the used position put back, so
// the next used entry lands on the slot the driver waits on.
void ReattachDropsTheShadow() {
  Driver d(8, false, false);
  for (uint32_t i = 0; i < 8; i++) d.Offer(i, static_cast<uint16_t>(i), true, false);
  ChainError err;
  d.ring.PushUsed(d.Take(false, &err), 0);
  d.ring.PushUsed(d.Take(false, &err), 0);
  CHECK(d.ring.GetBase() >> 16 == 0x8000, "GET_VRING_BASE counts unwritten used entries: %#x", d.ring.GetBase());
  d.Attach();
  d.ring.PushUsed(d.Take(false, &err), 0);
  d.ring.PublishUsed();
  CHECK(d.Flags(0) == (kAvail | kUsed) && d.Id(0) == 2, "slot 0: flags %#x id %u", d.Flags(0), d.Id(0));
  CHECK(d.ring.GetBase() == 0x80018003, "base %#x", d.ring.GetBase());
}

// An id the device holds is refused, and a rewind with nothing taken releases nothing.
void HeldIdsStayHeld() {
  Driver d(8, false, false);
  d.Offer(0, 5, true, true);
  d.Offer(1, 5, true, true);
  ChainError err;
  RingPos before = d.ring.Position();
  Chain first = d.Take(true, &err);
  CHECK(err == ChainError::kNone && first.head == 5, "first chain: %s id %u", ChainErrorName(err), first.head);
  RingPos after = d.ring.Position();
  d.ring.Rewind(after);  // nothing taken since: a no-op
  Chain second = d.Take(true, &err);
  CHECK(err == ChainError::kIdInUse && !second.returnable(), "second chain with the held id: %s", ChainErrorName(err));
  d.ring.Rewind(before);  // both given back: id 5 is free, and the ring is at slot 0 again
  Chain again = d.Take(true, &err);
  CHECK(err == ChainError::kNone && again.head == 5, "after the rewind: %s id %u", ChainErrorName(err), again.head);
}

// IN_ORDER: a burst of transmit entries is one used entry (the last id, at the first slot); receive
// entries, even empty ones, are each written.
void InOrderBatchesTransmitOnly() {
  Driver tx(8, false, true);
  for (uint32_t i = 0; i < 3; i++) tx.Offer(i, static_cast<uint16_t>(i), true, false);
  ChainError err;
  for (int k = 0; k < 3; k++) tx.ring.PushUsed(tx.Take(false, &err), 0);
  tx.ring.PublishUsed();
  CHECK(tx.Flags(0) == (kAvail | kUsed) && tx.Id(0) == 2, "TX batch: slot 0 flags %#x id %u", tx.Flags(0), tx.Id(0));
  CHECK(tx.Flags(1) == kAvail, "TX batch wrote slot 1: flags %#x", tx.Flags(1));

  Driver rx(8, false, true);
  for (uint32_t i = 0; i < 3; i++) rx.Offer(i, static_cast<uint16_t>(i), true, true);
  for (int k = 0; k < 3; k++) rx.ring.PushUsed(rx.Take(true, &err), 0);
  rx.ring.PublishUsed();
  for (uint32_t i = 0; i < 3; i++)
    CHECK(rx.Flags(i) == (kAvail | kUsed) && rx.Id(i) == i && rx.Len(i) == 0, "RX slot %u: flags %#x id %u len %u", i,
          rx.Flags(i), rx.Id(i), rx.Len(i));
}

// GET/SET_VRING_BASE: both positions with their wrap counters; DPDK's 1 << 15 start.
void BaseEncoding() {
  Driver d(8, false, false);
  d.ring.SetBase(1u << 15);
  CHECK(d.ring.GetBase() == 0x80008000, "DPDK start: %#x", d.ring.GetBase());
  d.ring.SetBase(0x00000003);  // avail 3 and used 0, both in the second lap (wrap 0)
  CHECK(d.ring.GetBase() == 0x00000003, "used (0, wrap 0) kept: %#x", d.ring.GetBase());
  d.ring.SetBase(0x80058006);
  CHECK(d.ring.GetBase() == 0x80058006, "both halves: %#x", d.ring.GetBase());
}

// A burst that ran out of receive buffers gives back what it took and arms a kick past where it
// found the ring dry. Buffers the driver added meanwhile (their kick decided while ours were off)
// must make the re-check true, not count as seen (a lost wake-up: both sides would wait).
void ArmBeyondWhereTheBurstGaveUp() {
  Driver d(8, true, false);
  for (uint32_t i = 0; i < 2; i++) d.Offer(i, static_cast<uint16_t>(i), true, true);
  ChainError err;
  RingPos start = d.ring.Position();
  d.Take(true, &err);
  d.Take(true, &err);
  bool broken = false;
  CHECK(d.ring.Available(&broken) == 0, "a third buffer before the driver made it");
  d.ring.Rewind(start);       // the frame needs three: nothing held
  d.Offer(2, 2, true, true);  // the driver adds the third before we arm
  CHECK(d.ring.ArmKickBeyondAvail(), "the buffer added after the burst gave up was counted as seen");
  // Once a chain was taken, a dry position from before is no guide: armed past what is there.
  d.Take(true, &err);
  d.Take(true, &err);
  d.Take(true, &err);
  CHECK(!d.ring.ArmKickBeyondAvail(), "armed with buffers 0..2 all taken and nothing new");
  uint16_t off_wrap;
  memcpy(&off_wrap, d.base + kDeviceArea, 2);
  CHECK(off_wrap == (3 | 0x8000), "armed at %#x, not at slot 3 of the first lap", off_wrap);
}

}  // namespace

int main() {
  CallAfterMoreThanALap();
  CallDecisionWithinALap();
  ReattachDropsTheShadow();
  HeldIdsStayHeld();
  InOrderBatchesTransmitOnly();
  BaseEncoding();
  ArmBeyondWhereTheBurstGaveUp();
  printf("packed ring: %d checks passed\n", vhost_test::checks);
  return 0;
}
