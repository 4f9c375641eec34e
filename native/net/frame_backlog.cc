#include "net/frame_backlog.h"

#include <cstring>

namespace vhost {

FrameBacklog::FrameBacklog(size_t capacity, size_t max_frames)
    : buf_((capacity + 7) & ~size_t{7}), max_frames_(max_frames) {}

uint32_t FrameBacklog::front_len() const {
  uint32_t len;
  memcpy(&len, buf_.data() + head_, sizeof len);
  return len;
}

bool FrameBacklog::Push(const uint8_t* frame, size_t len) {
  const size_t need = RecordSize(len), cap = buf_.size();
  if (frames_ >= max_frames_ || need > cap || len >= kWrap) return false;
  if (used_ == 0) head_ = tail_ = 0;
  size_t at = tail_;
  if (tail_ >= head_) {
    // Free: the end of the ring, then its start up to head_ (strictly below, or full and empty look alike).
    if (need > cap - tail_) {
      if (need >= head_) return false;
      if (cap - tail_ >= kHeader) memcpy(buf_.data() + tail_, &kWrap, sizeof kWrap);
      used_ += cap - tail_;
      at = 0;
    }
  } else if (need >= head_ - tail_) {
    return false;
  }
  const uint32_t len32 = static_cast<uint32_t>(len);
  memcpy(buf_.data() + at, &len32, sizeof len32);
  if (len) memcpy(buf_.data() + at + kHeader, frame, len);
  tail_ = at + need;
  used_ += need;
  frames_++;
  return true;
}

void FrameBacklog::Pop() {
  const size_t size = RecordSize(front_len());
  head_ += size;
  used_ -= size;
  frames_--;
  if (frames_ == 0) {
    head_ = tail_ = used_ = 0;
    return;
  }
  SkipWrap();
}

void FrameBacklog::SkipWrap() {
  const size_t cap = buf_.size();
  if (cap - head_ >= kHeader) {
    uint32_t len;
    memcpy(&len, buf_.data() + head_, sizeof len);
    if (len != kWrap) return;
  }
  used_ -= cap - head_;
  head_ = 0;
}

void FrameBacklog::Clear() { head_ = tail_ = used_ = frames_ = 0; }

}  // namespace vhost
