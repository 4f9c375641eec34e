// The guest's transmit side, one frame at a time: takes the next chain from the TX ring, checks it
// (walkable, device-readable, at least a virtio-net header long) and gives its pieces to the port.
// A malformed chain is handed back empty and counted; a runaway avail index breaks the queue.
// The counterpart of RxReservation, and like it shared by every port.
#pragma once

#include <cstdint>

#include "core/guest_memory.h"
#include "core/virtqueue.h"
#include "net/rx_reservation.h"
#include "net/virtio_net.h"

namespace vhost {

class TxFrame {
 public:
  enum class Result {
    kFrame,    // a frame is held: segments(), chain(); the port returns it with Done (or GiveBack)
    kDropped,  // a malformed chain was returned to the guest and counted: try the next one
    kNone,     // nothing available (or the queue broke)
  };

  Result Next(const GuestMemory& mem, const NetSettings& settings, Queue& tx, const Reporter& report);
  const Chain& chain() const { return chain_; }
  // Gives the held frame back to the ring untouched (it is taken again next time).
  void GiveBack(Queue& tx) { tx.ring.Rewind(start_); }
  // Returns the held frame to the guest as used (transmitted or dropped).
  void Done(Queue& tx) { tx.ring.PushUsed(chain_, 0); }
  const Segment* segments() const { return segs_; }

  static constexpr int kMaxSegs = 256;

 private:
  Segment segs_[kMaxSegs];
  Chain chain_{};
  RingPos start_ = 0;
};

}  // namespace vhost
