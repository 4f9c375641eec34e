// The sink port: every frame the guest transmits is taken, counted and thrown away, without being
// read (the guest-TX figure of a benchmark, DPDK testpmd's rxonly on the back-end side). Receive
// buffers the guest posts stay unused.
#pragma once

#include "net/port.h"
#include "net/tx_frame.h"

namespace vhost {

// Takes up to `max` frames from the guest's TX ring, counts them and returns their buffers.
// Returns how many chains were consumed (malformed ones included). Shared with the source port.
template <typename L>
int DiscardTx(PairContext& c, TxFrame& frame, int max);

class SinkPort : public Port {
 public:
  const char* name() const override { return "sink"; }
  bool Service(PairContext& c) override;

 private:
  static constexpr int kBurst = 64;
  TxFrame tx_;
};

}  // namespace vhost
