// Receive buffers taken from the guest's RX ring for one frame: enough of them for the frame
// (several with MRG_RXBUF, one without), filled through a cursor, then returned to the guest as
// used entries in one go — or given back untouched when the frame cannot be placed now.
// Every port that delivers frames to the guest uses this; it is where RX-ring hostility is handled.
// L is the ring layout (SplitRing or PackedRing, core/ring.h), fixed for a burst.
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

  template <typename L>
  Result Reserve(const GuestMemory& mem, const NetSettings& settings, Queue& rx, uint32_t need, const Reporter& report);
  // The held buffers as one sequence of bytes.
  SegmentCursor Cursor() const { return SegmentCursor(segs_, nsegs_); }
  uint16_t buffers() const { return static_cast<uint16_t>(nbufs_); }
  // The pieces of the held buffers (their capacity: the frame may fill less).
  const Segment* segments() const { return segs_; }
  int segment_count() const { return nsegs_; }
  // The first piece of the held buffers (for a port that writes a small frame in one go).
  const Segment& first_segment() const { return segs_[0]; }
  // Returns the held buffers as used, holding `total` bytes in order.
  template <typename L>
  void Commit(Queue& rx, uint32_t total);
  // Un-takes the held buffers (nothing published): they are taken again next time.
  template <typename L>
  void GiveBack(Queue& rx);

 private:
  static constexpr int kMaxSegs = 256;
  static constexpr int kMaxBufs = 64;  // mergeable buffers for one frame

  template <typename L>
  void ReturnEmpty(Queue& rx);  // return the held buffers used with length 0

  Segment segs_[kMaxSegs];
  Chain bufs_[kMaxBufs];  // len: the buffer's capacity
  RingPos start_ = 0;     // where the held buffers were taken from
  int nbufs_ = 0;
  int nsegs_ = 0;
};

template <typename L>
void RxReservation::GiveBack(Queue& rx) {
  rx.ring.As<L>().Rewind(start_);
  nbufs_ = nsegs_ = 0;
}

template <typename L>
void RxReservation::ReturnEmpty(Queue& rx) {
  L& ring = rx.ring.As<L>();
  for (int i = 0; i < nbufs_; i++)
    if (bufs_[i].returnable()) ring.PushUsed(bufs_[i], 0);
  nbufs_ = nsegs_ = 0;
  start_ = ring.Position();
}

template <typename L>
RxReservation::Result RxReservation::Reserve(const GuestMemory& mem, const NetSettings& settings, Queue& rx,
                                             uint32_t need, const Reporter& report) {
  L& ring = rx.ring.As<L>();
  nbufs_ = nsegs_ = 0;
  start_ = ring.Position();
  uint32_t cap = 0;
  // A frame never takes more buffers than the ring holds: waiting for more would wait forever.
  const uint32_t size = ring.size();
  const int max_bufs = !settings.mrg_rxbuf ? 1 : size < kMaxBufs ? static_cast<int>(size) : kMaxBufs;
  uint32_t taken = 0;  // chains looked at in this call, malformed ones included: bounds the loop
  while (cap < need) {
    if (taken++ > size) {
      ReturnEmpty<L>(rx);
      return Result::kTooSmall;
    }
    if (nbufs_ == max_bufs) {
      GiveBack<L>(rx);
      return Result::kTooSmall;
    }
    bool broken = false;
    uint16_t avail = ring.Available(&broken);
    if (broken) {
      ReturnEmpty<L>(rx);
      BreakQueue(rx, "RX", "available index ran more than the ring size ahead", report);
      return Result::kBroken;
    }
    if (avail == 0) {
      GiveBack<L>(rx);
      return Result::kShort;
    }
    ChainError err;
    Chain& c = bufs_[nbufs_];  // popped in place (see SplitRing::Pop)
    ring.Pop(mem, true, segs_ + nsegs_, kMaxSegs - nsegs_, &c, &err);
    if (err == ChainError::kTooManySegments && nbufs_ > 0) {
      // Out of room in our segment table, not the guest's fault: leave its buffers, drop the frame.
      GiveBack<L>(rx);
      return Result::kTooSmall;
    }
    if (err == ChainError::kEndless) {
      ReturnEmpty<L>(rx);
      BreakQueue(rx, "RX", "a descriptor chain runs round the whole ring", report);
      return Result::kBroken;
    }
    // The first buffer must hold the whole header (virtio 1.x, 5.1.6.3.1).
    bool header_fits = nbufs_ > 0 || c.len >= settings.hdr_len;
    if (err != ChainError::kNone || !header_fits) {
      // A malformed receive buffer: hand back everything taken for this frame, empty, and go on.
      rx.Count(kStatErrors);
      nbufs_++;
      ReturnEmpty<L>(rx);
      cap = 0;
      continue;
    }
    nbufs_++;
    nsegs_ += c.nseg;
    cap += c.len;
    if (!settings.mrg_rxbuf && cap < need) {
      GiveBack<L>(rx);
      return Result::kTooSmall;
    }
  }
  return Result::kOk;
}

template <typename L>
void RxReservation::Commit(Queue& rx, uint32_t total) {
  L& ring = rx.ring.As<L>();
  // While migrating: every held buffer's pages, whatever the frame filled (flushed at the publish,
  // after the writes a port may still make into them).
  if (rx.log) rx.log->Mark(segs_, nsegs_);
  for (int i = 0; i < nbufs_; i++) {
    uint32_t len = total < bufs_[i].len ? total : bufs_[i].len;
    ring.PushUsed(bufs_[i], len);
    total -= len;
  }
  nbufs_ = nsegs_ = 0;
}

// Fills a virtio-net header at `to`: `from` (hdr_len bytes, may be null for all-zero) with
// num_buffers set when the header has that field.
// Stored straight from registers, two stores: `to` is usually guest memory on a line the guest's
// CPU last touched. A header built on the stack and copied out is read back across stores of other
// sizes, which the CPU cannot forward: that load waits until every older store has reached the
// cache, the previous frames' copies into such lines included, and a burst's copies run one after
// another (the switch at 64 B: the copy took a third of its time, and most of it in slow rounds).
inline void FillNetHeader(uint8_t* to, uint32_t hdr_len, uint16_t num_buffers, const uint8_t* from) {
  uint64_t head = 0;  // bytes 0-7: flags, gso_type, hdr_len, gso_size, csum_start
  uint16_t csum_offset = 0;
  static_assert(kNetHdrNumBuffersOffset == sizeof head + sizeof csum_offset, "num_buffers follows csum_offset");
  if (from) {
    memcpy(&head, from, sizeof head);
    memcpy(&csum_offset, from + sizeof head, sizeof csum_offset);
  }
  memcpy(to, &head, sizeof head);
  if (hdr_len == kNetHdrMrg) {
    const uint32_t tail = csum_offset | uint32_t{num_buffers} << 16;  // little-endian, as the ring
    memcpy(to + sizeof head, &tail, sizeof tail);
  } else {
    memcpy(to + sizeof head, &csum_offset, sizeof csum_offset);
  }
}

// The same through a cursor (the header may span buffer pieces).
void WriteNetHeader(SegmentCursor& dst, uint32_t hdr_len, uint16_t num_buffers, const uint8_t* from);

}  // namespace vhost
