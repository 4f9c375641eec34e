// Receive buffers taken from the guest's RX ring for one frame: enough of them for the frame
// (several with MRG_RXBUF, one without), filled through a cursor, then returned to the guest as
// used entries in one go — or given back untouched when the frame cannot be placed now.
// Every port that delivers frames to the guest uses this; it is where RX-ring hostility is handled.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "core/guest_memory.h"
#include "core/virtqueue.h"
#include "net/segment_cursor.h"
#include "net/virtio_net.h"

namespace vhost {

class RxReservation {
 public:
  enum class Result {
    kOk,        // buffers for `need` bytes are held
    kShort,     // the guest has not posted enough yet: nothing held, try again after its kick
    kTooSmall,  // the guest's buffers can never hold this frame: nothing held, drop it
    kBroken,    // the RX ring is broken
  };

  Result Reserve(const GuestMemory& mem, const NetSettings& settings, Queue& rx, uint32_t need, const Reporter& report);
  // The held buffers as one sequence of bytes.
  SegmentCursor Cursor() const { return SegmentCursor(segs_, nsegs_); }
  uint16_t buffers() const { return static_cast<uint16_t>(nbufs_); }
  // The first piece of the held buffers (for a port that writes a small frame in one go).
  const Segment& first_segment() const { return segs_[0]; }
  // Returns the held buffers as used, holding `total` bytes in order.
  void Commit(Queue& rx, uint32_t total);

 private:
  static constexpr int kMaxSegs = 256;
  static constexpr int kMaxBufs = 64;  // mergeable buffers for one frame

  void GiveBack(Queue& rx);     // un-take the held buffers (nothing published)
  void ReturnEmpty(Queue& rx);  // return the held buffers used with length 0

  Segment segs_[kMaxSegs];
  Chain bufs_[kMaxBufs];  // len: the buffer's capacity
  RingPos start_ = 0;     // where the held buffers were taken from
  int nbufs_ = 0;
  int nsegs_ = 0;
};

// Fills a virtio-net header at `to`: `from` (hdr_len bytes, may be null for all-zero) with
// num_buffers set when the header has that field.
// Built aside and stored with one copy: `to` is usually guest memory on a line the guest's CPU
// last touched, and one store there costs less than two (a memset then the num_buffers store
// measured 12-23 % slower on the testpmd loopback).
inline void FillNetHeader(uint8_t* to, uint32_t hdr_len, uint16_t num_buffers, const uint8_t* from) {
  uint8_t hdr[kNetHdrMrg] = {};
  if (from) memcpy(hdr, from, hdr_len);
  if (hdr_len == kNetHdrMrg) memcpy(hdr + kNetHdrNumBuffersOffset, &num_buffers, 2);
  memcpy(to, hdr, hdr_len);
}

// The same through a cursor (the header may span buffer pieces).
void WriteNetHeader(SegmentCursor& dst, uint32_t hdr_len, uint16_t num_buffers, const uint8_t* from);

}  // namespace vhost
