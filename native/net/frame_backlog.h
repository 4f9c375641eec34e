// Frames waiting for guest RX buffers, oldest first, in one fixed byte ring: a port whose peer hands
// it frames it cannot refuse (libslirp's send_packet) keeps them here until the guest posts buffers.
// Bounded in bytes and in frames, so a guest that never reads costs a fixed amount of memory; a frame
// that does not fit is refused and the caller counts the drop. One thread only (the pair's worker).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vhost {

class FrameBacklog {
 public:
  // `capacity`: bytes of the ring (each frame takes 8 + its length rounded up to 8).
  FrameBacklog(size_t capacity, size_t max_frames);

  // Copies the frame in; false (nothing kept) when it does not fit now or ever.
  bool Push(const uint8_t* frame, size_t len);
  bool empty() const { return frames_ == 0; }
  size_t frames() const { return frames_; }
  // The oldest frame; only while !empty(). Valid until the next Pop or Clear; writable (a port may
  // rewrite it in place before delivery).
  uint8_t* front() { return buf_.data() + head_ + kHeader; }
  uint32_t front_len() const;
  void Pop();
  void Clear();

 private:
  static constexpr size_t kHeader = 8;           // u32 length, u32 padding
  static constexpr uint32_t kWrap = 0xffffffff;  // a header saying: the ring goes on at offset 0

  static size_t RecordSize(size_t len) { return kHeader + ((len + 7) & ~size_t{7}); }
  // Moves head_ to offset 0 when the ring's end holds no further record.
  void SkipWrap();

  std::vector<uint8_t> buf_;
  size_t max_frames_;
  size_t head_ = 0;  // oldest record
  size_t tail_ = 0;  // where the next record goes
  size_t used_ = 0;  // bytes between head_ and tail_, including the end skipped by a wrap
  size_t frames_ = 0;
};

}  // namespace vhost
