// The shared memory between a device and a JavaScript program (the js port): one mapping per
// device holding, for every queue pair, a ring of frames toward JS (guest TX) and one from JS
// (guest RX), each with its slots, plus a flags page. JS sees the whole mapping as one
// ArrayBuffer; a frame it sends may lie in any slot of any pair (an echo sends the views it got),
// so a pair's port reads from the whole slot area.
//
// Each ring is single-producer single-consumer over free-running u32 indexes (head written by the
// producer, tail by the consumer, full when head - tail == slots), each index on its own cache
// line. The js port is served on the program's own thread (core/inline_server.h), so the two sides
// never run at once; the indexes are still read and written with atomics (one aligned load or
// store each), the rule for every index shared with another party. JS is trusted as little as the
// guest: every index and descriptor it writes is read once and checked before use (FrameRing::
// Pending and Free, FrameRings::CheckFrame).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace vhost {

// One frame in a ring: where its bytes are (offset in the mapping) and how many.
struct FrameDesc {
  uint32_t offset;
  uint32_t len;
};

// The header of one ring in the mapping; its descriptors follow it.
struct alignas(64) FrameRingHeader {
  alignas(64) uint32_t head;  // written by the producer
  alignas(64) uint32_t tail;  // written by the consumer
};
static_assert(sizeof(FrameRingHeader) == 128, "lib/net/frame_layout.ts reads these offsets");

// The flags page at the start of the mapping.
struct alignas(64) FrameFlags {
  uint32_t consumer;  // 1 while a frames() loop runs; 0: guest TX is dropped, not queued
};

// One ring as the port sees it: header, descriptors and slots.
class FrameRing {
 public:
  FrameRing(FrameRingHeader* h, FrameDesc* desc, uint32_t slots) : h_(h), desc_(desc), mask_(slots - 1) {}

  FrameRingHeader& header() { return *h_; }
  FrameDesc& desc(uint32_t index) { return desc_[index & mask_]; }
  uint32_t slots() const { return mask_ + 1; }
  // As producer: free slots (0 when full), or -1 when the consumer's tail is not within the ring
  // behind our head (JS wrote nonsense).
  int64_t Free(uint32_t head) const {
    uint32_t used = head - __atomic_load_n(&h_->tail, __ATOMIC_ACQUIRE);
    return used > slots() ? -1 : static_cast<int64_t>(slots() - used);
  }
  // As consumer: frames waiting, or -1 when the producer's head ran more than the ring ahead.
  int64_t Pending(uint32_t tail) const {
    uint32_t n = __atomic_load_n(&h_->head, __ATOMIC_ACQUIRE) - tail;
    return n > slots() ? -1 : static_cast<int64_t>(n);
  }

 private:
  FrameRingHeader* h_;
  FrameDesc* desc_;
  uint32_t mask_;
};

// A device's mapping. The ports of its pairs and JS share it (shared_ptr); it is unmapped when the
// last of them lets go.
class FrameRings {
 public:
  static constexpr uint32_t kMinSlots = 64, kMaxSlots = 4096;
  static constexpr uint32_t kMinSlotSize = 2048, kMaxSlotSize = 65664;  // a 65535-byte MTU's frame

  // `slots` a power of two in [kMinSlots, kMaxSlots]; `slot_size` a multiple of 64 in
  // [kMinSlotSize, kMaxSlotSize]. Returns null with *err_no and *err set.
  static std::shared_ptr<FrameRings> Create(int pairs, uint32_t slots, uint32_t slot_size, int* err_no,
                                            std::string* err);
  ~FrameRings();
  FrameRings(const FrameRings&) = delete;
  FrameRings& operator=(const FrameRings&) = delete;

  // Where things are, for JS (lib/net/frame_layout.ts): offsets in bytes from the mapping's start.
  uint8_t* base() const { return base_; }
  size_t size() const { return size_; }
  int pairs() const { return pairs_; }
  uint32_t slots() const { return slots_; }
  uint32_t slot_size() const { return slot_size_; }
  size_t ring_offset(int pair, bool from_js) const { return kRingsStart + (2 * pair + from_js) * ring_stride_; }
  size_t ring_stride() const { return ring_stride_; }
  size_t slot_offset(int pair, bool from_js, uint32_t slot) const {
    return slots_start_ + ((2 * static_cast<size_t>(pair) + from_js) * slots_ + (slot & (slots_ - 1))) * slot_size_;
  }
  size_t slots_start() const { return slots_start_; }

  FrameFlags& flags() const { return *reinterpret_cast<FrameFlags*>(base_); }
  FrameRing ring(int pair, bool from_js) const;
  // The bytes of a frame JS sent, or null when the descriptor does not lie inside one slot.
  const uint8_t* CheckFrame(const FrameDesc& d) const;

 private:
  static constexpr size_t kRingsStart = 4096;  // after the flags page

  FrameRings(int pairs, uint32_t slots, uint32_t slot_size);

  int pairs_;
  uint32_t slots_, slot_size_;
  size_t ring_stride_, slots_start_, size_ = 0;
  uint8_t* base_ = nullptr;
};

}  // namespace vhost
