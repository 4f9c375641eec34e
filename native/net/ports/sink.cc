#include "net/ports/sink.h"

#include "net/ports/registry.h"

namespace vhost {

template <typename L>
int DiscardTx(PairContext& c, TxFrame& frame, int max) {
  int taken = 0;
  while (taken < max) {
    TxFrame::Result t = frame.Next<L>(c.mem, c.settings, c.tx, c.report);
    if (t == TxFrame::Result::kNone) break;
    taken++;
    if (t == TxFrame::Result::kDropped) continue;
    const uint32_t hdr_len = c.settings.hdr_len;
    ObserveFrame(c.tx, c.capture, frame.segments(), frame.chain().nseg, hdr_len, frame.chain().len - hdr_len);
    frame.Done<L>(c.tx);
  }
  return taken;
}

bool SinkPort::Service(PairContext& c) {
  if (!c.tx.Ready()) return false;
  return WithLayout(c.tx.ring, [&](auto layout) {
    using L = typename decltype(layout)::type;
    return ServeUntilIdle(c, false, true, [&] { return BurstOutcome{DiscardTx<L>(c, tx_, kBurst), false, true}; });
  });
}

// The source port drains its guest's TX with it too.
template int DiscardTx<SplitRing>(PairContext& c, TxFrame& frame, int max);
template int DiscardTx<PackedRing>(PairContext& c, TxFrame& frame, int max);

std::unique_ptr<Port> MakeSink(const PortOptions&, PortError*) { return std::make_unique<SinkPort>(); }

}  // namespace vhost
