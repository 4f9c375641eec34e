#include "net/ports/sink.h"

#include "net/ports/registry.h"

namespace vhost {

int DiscardTx(PairContext& c, TxFrame& frame, int max) {
  int taken = 0;
  while (taken < max) {
    TxFrame::Result t = frame.Next(c.mem, c.settings, c.tx, c.report);
    if (t == TxFrame::Result::kNone) break;
    taken++;
    if (t == TxFrame::Result::kDropped) continue;
    frame.Done(c.tx);
    c.tx.Count(kStatPackets);
    c.tx.Count(kStatBytes, frame.chain().len - c.settings.hdr_len);
  }
  return taken;
}

bool SinkPort::Service(PairContext& c) {
  if (!c.tx.Ready()) return false;
  return ServeUntilIdle(c, false, true, [&] { return BurstOutcome{DiscardTx(c, tx_, kBurst), false, true}; });
}

std::unique_ptr<Port> MakeSink(const PortOptions&, PortError*) { return std::make_unique<SinkPort>(); }

}  // namespace vhost
