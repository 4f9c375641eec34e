// What both ring layouts hand out: a descriptor chain resolved into segments, the reasons a chain
// can be refused, and the walk of one descriptor's buffer into segments (shared by the layouts).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "core/guest_memory.h"
#include "core/segment.h"

namespace vhost {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio 1.x rings are little-endian");

// Descriptor flags, the same bits in both layouts (virtio 1.x, 2.7.5 and 2.8.1).
constexpr uint16_t kDescFlagNext = 1;
constexpr uint16_t kDescFlagWrite = 2;
constexpr uint16_t kDescFlagIndirect = 4;
constexpr uint32_t kMaxRingSize = 32768;

enum class ChainError : uint8_t {
  kNone = 0,
  kBadHead,          // head index / buffer id >= ring size (the entry cannot even be returned)
  kIdInUse,          // packed: a buffer id the device still holds (not returned: it is the holder's)
  kBadIndex,         // a next index >= table size
  kTooLong,          // more descriptors than the table holds: a loop
  kEndless,          // packed: a chain that runs all the way round the ring; the ring cannot go on
  kBadAddress,       // buffer not inside guest memory
  kBadIndirect,      // indirect table: wrong size, nested, with NEXT, or not negotiated
  kWrongDirection,   // a device-writable buffer where a readable one was due, or the reverse
  kTooManySegments,  // more pieces than the caller can take
};

const char* ChainErrorName(ChainError e);

// One chain taken from a ring.
struct Chain {
  uint16_t head;   // split: head descriptor index; packed: buffer id
  uint16_t ndesc;  // ring descriptors it took (packed); 0: nothing to return as used
  uint32_t len;    // total bytes over all segments
  int nseg;

  // Whether the chain goes back to the guest as a used entry (a refused one too, with length 0).
  bool returnable() const { return ndesc != 0; }
};

// Where a ring stands in the guest's available buffers, as a count of chains taken (split: the
// free-running avail index; packed: its own count); Rewind goes back there.
using RingPos = uint32_t;

// What publishing a ring's used entries did (PublishUsed): nothing new to publish; published, but the
// guest asked not to be told now (EVENT_IDX, NO_INTERRUPT, or its event area says DISABLE or a later
// slot); published, and the guest wants a call.
enum class Published : uint8_t { kNone, kQuiet, kCall };

// One part of a ring as SET_VRING_ADDR gives it (split: descriptor table, available ring, used ring;
// packed: descriptor ring, driver and device event areas).
struct RingPart {
  const char* name;  // for the error
  uint64_t ua;       // front-end virtual address
  uint64_t size;
  uintptr_t align;
};

// Maps the three parts of a ring into host pointers; false with *err naming the first part outside
// the memory table, or saying which alignment was not kept.
bool MapRingParts(const GuestMemory& mem, const RingPart (&parts)[3], uint8_t* (&out)[3], std::string* err);

// Copies the 16-byte descriptor table[i] (both layouts' descriptors are 16 bytes) once: the guest
// can rewrite it, and the barrier keeps the compiler from reading it again later.
inline void LoadDescriptor(const uint8_t* table, uint32_t i, uint64_t w[2]) {
  memcpy(w, table + 16u * i, 16);
  __asm__ __volatile__("" ::: "memory");
}

// Appends the segments of one descriptor's buffer (which may span adjacent regions) to the chain.
// Inlined into the layouts' Pop: a call's register saves are stores, and the store buffer is what
// fills up while the writes into the guest's buffers wait for their cache lines.
__attribute__((always_inline)) inline bool AppendBuffer(const GuestMemory& mem, uint64_t addr, uint32_t len,
                                                        Segment* segs, int max_segs, Chain* c, ChainError* err) {
  if (len > UINT32_MAX - c->len) {
    *err = ChainError::kTooLong;
    return false;
  }
  uint64_t left = len;
  while (left > 0) {
    uint64_t got = 0;
    uint8_t* p = mem.GpaToHostPartial(addr, left, &got);
    if (!p || got == 0) {
      *err = ChainError::kBadAddress;
      return false;
    }
    if (c->nseg >= max_segs) {
      *err = ChainError::kTooManySegments;
      return false;
    }
    segs[c->nseg++] = Segment{p, addr, static_cast<uint32_t>(got)};
    c->len += static_cast<uint32_t>(got);
    addr += got;
    left -= got;
  }
  return true;
}

}  // namespace vhost
