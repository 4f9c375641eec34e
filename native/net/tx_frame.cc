#include "net/tx_frame.h"

namespace vhost {

TxFrame::Result TxFrame::Next(const GuestMemory& mem, const NetSettings& settings, Queue& tx, const Reporter& report) {
  bool broken = false;
  if (tx.ring.Available(&broken) == 0) {
    if (broken) BreakQueue(tx, "TX", "available index ran more than the ring size ahead", report);
    return Result::kNone;
  }
  ChainError err;
  start_ = tx.ring.Position();
  chain_ = tx.ring.Pop(mem, false, segs_, kMaxSegs, &err);
  // A chain with no room for the virtio-net header is dropped like a malformed one.
  const bool too_short = err == ChainError::kNone && chain_.len < settings.hdr_len;
  if (err == ChainError::kNone && !too_short) return Result::kFrame;
  if (err == ChainError::kEndless) {
    BreakQueue(tx, "TX", "a descriptor chain runs round the whole ring", report);
    return Result::kNone;
  }
  tx.Count(kStatErrors);
  if (chain_.returnable()) tx.ring.PushUsed(chain_, 0);
  return Result::kDropped;
}

}  // namespace vhost
