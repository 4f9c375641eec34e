// Sequential reads and writes over a list of buffer pieces (a descriptor chain in host memory).
// Callers check the total length first; the cursor itself never steps past its last segment.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/segment.h"

namespace vhost {

class SegmentCursor {
 public:
  SegmentCursor(const Segment* segs, int n) : segs_(segs), n_(n) {}

  // Each returns the number of bytes actually moved (less than len only at the end of the segments).
  uint32_t Read(void* to, uint32_t len) { return Move(static_cast<uint8_t*>(to), len, true); }
  uint32_t Write(const void* from, uint32_t len) {
    return Move(const_cast<uint8_t*>(static_cast<const uint8_t*>(from)), len, false);
  }
  uint32_t Skip(uint32_t len) { return Move(nullptr, len, true); }
  // Where the next len bytes are, if they are in one piece; else null.
  uint8_t* Contiguous(uint32_t len) const { return !AtEnd() && Room() >= len ? Here() : nullptr; }

  // Copies len bytes from src to dst, piece by piece.
  static uint32_t Copy(SegmentCursor& src, SegmentCursor& dst, uint32_t len) {
    uint32_t done = 0;
    while (done < len && !src.AtEnd() && !dst.AtEnd()) {
      uint32_t n = len - done;
      n = n < src.Room() ? n : src.Room();
      n = n < dst.Room() ? n : dst.Room();
      memmove(dst.Here(), src.Here(), n);  // a hostile guest may make them overlap
      src.Advance(n);
      dst.Advance(n);
      done += n;
    }
    return done;
  }

 private:
  bool AtEnd() const { return i_ >= n_; }
  uint32_t Room() const { return segs_[i_].len - off_; }
  uint8_t* Here() const { return segs_[i_].ptr + off_; }
  void Advance(uint32_t n) {
    off_ += n;
    while (i_ < n_ && off_ == segs_[i_].len) {
      i_++;
      off_ = 0;
    }
  }
  uint32_t Move(uint8_t* mem, uint32_t len, bool read) {
    uint32_t done = 0;
    while (done < len && !AtEnd()) {
      uint32_t n = len - done < Room() ? len - done : Room();
      if (mem) {
        if (read) memcpy(mem + done, Here(), n);
        else memcpy(Here(), mem + done, n);
      }
      Advance(n);
      done += n;
    }
    return done;
  }

  const Segment* segs_;
  int n_;
  int i_ = 0;
  uint32_t off_ = 0;
};

}  // namespace vhost
