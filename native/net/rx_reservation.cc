#include "net/rx_reservation.h"

#include <cstring>

namespace vhost {

void RxReservation::GiveBack(Queue& rx) {
  rx.ring.Rewind(start_);
  nbufs_ = nsegs_ = 0;
}

void RxReservation::ReturnEmpty(Queue& rx) {
  for (int i = 0; i < nbufs_; i++)
    if (bufs_[i].returnable()) rx.ring.PushUsed(bufs_[i], 0);
  nbufs_ = nsegs_ = 0;
  start_ = rx.ring.Position();
}

RxReservation::Result RxReservation::Reserve(const GuestMemory& mem, const NetSettings& settings, Queue& rx,
                                             uint32_t need, const Reporter& report) {
  nbufs_ = nsegs_ = 0;
  start_ = rx.ring.Position();
  uint32_t cap = 0;
  // A frame never takes more buffers than the ring holds: waiting for more would wait forever.
  const uint32_t ring = rx.ring.size();
  const int max_bufs = !settings.mrg_rxbuf ? 1 : ring < kMaxBufs ? static_cast<int>(ring) : kMaxBufs;
  uint32_t taken = 0;  // chains looked at in this call, malformed ones included: bounds the loop
  while (cap < need) {
    if (taken++ > ring) {
      ReturnEmpty(rx);
      return Result::kTooSmall;
    }
    if (nbufs_ == max_bufs) {
      GiveBack(rx);
      return Result::kTooSmall;
    }
    bool broken = false;
    uint16_t avail = rx.ring.Available(&broken);
    if (broken) {
      ReturnEmpty(rx);
      BreakQueue(rx, "RX", "available index ran more than the ring size ahead", report);
      return Result::kBroken;
    }
    if (avail == 0) {
      GiveBack(rx);
      return Result::kShort;
    }
    ChainError err;
    Chain c = rx.ring.Pop(mem, true, segs_ + nsegs_, kMaxSegs - nsegs_, &err);
    if (err == ChainError::kTooManySegments && nbufs_ > 0) {
      // Out of room in our segment table, not the guest's fault: leave its buffers, drop the frame.
      GiveBack(rx);
      return Result::kTooSmall;
    }
    if (err == ChainError::kEndless) {
      ReturnEmpty(rx);
      BreakQueue(rx, "RX", "a descriptor chain runs round the whole ring", report);
      return Result::kBroken;
    }
    // The first buffer must hold the whole header (virtio 1.x, 5.1.6.3.1).
    bool header_fits = nbufs_ > 0 || c.len >= settings.hdr_len;
    if (err != ChainError::kNone || !header_fits) {
      // A malformed receive buffer: hand back everything taken for this frame, empty, and go on.
      rx.Count(kStatErrors);
      bufs_[nbufs_++] = c;
      ReturnEmpty(rx);
      cap = 0;
      continue;
    }
    bufs_[nbufs_++] = c;
    nsegs_ += c.nseg;
    cap += c.len;
    if (!settings.mrg_rxbuf && cap < need) {
      GiveBack(rx);
      return Result::kTooSmall;
    }
  }
  return Result::kOk;
}

void RxReservation::Commit(Queue& rx, uint32_t total) {
  for (int i = 0; i < nbufs_; i++) {
    uint32_t len = total < bufs_[i].len ? total : bufs_[i].len;
    rx.ring.PushUsed(bufs_[i], len);
    total -= len;
  }
  nbufs_ = nsegs_ = 0;
}

void WriteNetHeader(SegmentCursor& dst, uint32_t hdr_len, uint16_t num_buffers, const uint8_t* from) {
  uint8_t hdr[kNetHdrMrg];
  FillNetHeader(hdr, hdr_len, num_buffers, from);
  dst.Write(hdr, hdr_len);
}

}  // namespace vhost
