#include "net/tx_frame.h"

namespace vhost {

TxFrame::Result TxFrame::Next(const GuestMemory& mem, const NetSettings& settings, Queue& tx, const Reporter& report) {
  bool broken = false;
  if (tx.ring.Available(&broken) == 0) {
    if (broken) BreakQueue(tx, "TX", "available index ran more than the ring size ahead", report);
    return Result::kNone;
  }
  ChainError err;
  chain_ = tx.ring.Pop(mem, false, segs_, kMaxSegs, &err);
  if (err == ChainError::kNone && chain_.len < settings.hdr_len) err = ChainError::kTooLong;
  if (err == ChainError::kNone) return Result::kFrame;
  tx.Count(kStatErrors);
  if (err != ChainError::kBadHead) tx.ring.PushUsed(chain_.head, 0);
  return Result::kDropped;
}

}  // namespace vhost
