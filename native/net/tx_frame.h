// The guest's transmit side, one frame at a time: takes the next chain from the TX ring, checks it
// (walkable, device-readable, at least a virtio-net header long) and gives its pieces to the port.
// A malformed chain is handed back empty and counted; a runaway avail index breaks the queue.
// The counterpart of RxReservation, and like it shared by every port. L is the ring layout
// (SplitRing or PackedRing, core/ring.h), fixed for a burst.
#pragma once

#include <cstdint>

#include "core/guest_memory.h"
#include "core/virtqueue.h"
#include "net/virtio_net.h"

namespace vhost {

class TxFrame {
 public:
  enum class Result {
    kFrame,    // a frame is held: segments(), chain(); the port returns it with Done (or GiveBack)
    kDropped,  // a malformed chain was returned to the guest and counted: try the next one
    kNone,     // nothing available (or the queue broke)
  };

  template <typename L>
  Result Next(const GuestMemory& mem, const NetSettings& settings, Queue& tx, const Reporter& report);
  const Chain& chain() const { return chain_; }
  const Segment* segments() const { return segs_; }
  // Gives the held frame back to the ring untouched (it is taken again next time).
  template <typename L>
  void GiveBack(Queue& tx) {
    tx.ring.As<L>().Rewind(start_);
  }
  // Returns the held frame to the guest as used (transmitted or dropped).
  template <typename L>
  void Done(Queue& tx) {
    tx.ring.As<L>().PushUsed(chain_, 0);
  }

  static constexpr int kMaxSegs = 256;

 private:
  Segment segs_[kMaxSegs];
  Chain chain_{};
  RingPos start_ = 0;
};

template <typename L>
TxFrame::Result TxFrame::Next(const GuestMemory& mem, const NetSettings& settings, Queue& tx, const Reporter& report) {
  L& ring = tx.ring.As<L>();
  bool broken = false;
  if (ring.Available(&broken) == 0) {
    if (broken) BreakQueue(tx, "TX", "available index ran more than the ring size ahead", report);
    return Result::kNone;
  }
  ChainError err;
  start_ = ring.Position();
  ring.Pop(mem, false, segs_, kMaxSegs, &chain_, &err);
  // A chain with no room for the virtio-net header is dropped like a malformed one.
  const bool too_short = err == ChainError::kNone && chain_.len < settings.hdr_len;
  if (err == ChainError::kNone && !too_short) return Result::kFrame;
  if (err == ChainError::kEndless) {
    BreakQueue(tx, "TX", "a descriptor chain runs round the whole ring", report);
    return Result::kNone;
  }
  tx.Count(kStatErrors);
  if (chain_.returnable()) ring.PushUsed(chain_, 0);
  return Result::kDropped;
}

}  // namespace vhost
