// The loopback port: every frame the guest transmits comes back on its receive queue with source and
// destination MAC swapped (testpmd's macswap). One copy per frame, straight from the guest's TX
// buffers into its RX buffers. When the guest has no room to receive, TX waits (backpressure) rather
// than dropping, like a full link.
#pragma once

#include <cstdint>

#include "net/port.h"

namespace vhost {

class LoopbackPort : public Port {
 public:
  const char* name() const override { return "loopback"; }
  void Service(const GuestMemory& mem, const NetSettings& settings, Queue& rx, Queue& tx,
               const std::function<bool()>& should_stop,
               const std::function<void(const std::string&)>& report) override;

 private:
  static constexpr int kBurst = 32;
  static constexpr int kMaxSegs = 256;
  static constexpr int kMaxRxBufs = 64;  // mergeable buffers for one frame

  struct RxBuf {
    uint16_t head;
    uint32_t cap;
  };
  enum class Reserve { kOk, kShort, kTooSmall, kBroken };
  struct Pass {
    const GuestMemory& mem;
    const NetSettings& settings;
    Queue& rx;
    Queue& tx;
    const std::function<void(const std::string&)>& report;
  };

  // Moves up to kBurst frames. Returns how many TX chains were consumed; *rx_short tells that it
  // stopped because the guest had too few receive buffers.
  int Burst(Pass& p, bool* rx_short);
  // Takes receive buffers for `need` bytes into rx_bufs_/rx_segs_.
  Reserve ReserveRx(Pass& p, uint32_t need);
  void ReturnRx(Pass& p, uint32_t len_each);
  void Break(Pass& p, Queue& q, const char* which, const std::string& why);

  Segment tx_segs_[kMaxSegs];
  Segment rx_segs_[kMaxSegs];
  RxBuf rx_bufs_[kMaxRxBufs];
  int rx_nbufs_ = 0;
  int rx_nsegs_ = 0;
};

}  // namespace vhost
