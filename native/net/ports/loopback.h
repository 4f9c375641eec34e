// The loopback port: every frame the guest transmits comes back on its receive queue with source and
// destination MAC swapped (testpmd's macswap). One copy per frame, straight from the guest's TX
// buffers into its RX buffers. When the guest has no room to receive, TX waits (backpressure) rather
// than dropping, like a full link.
#pragma once

#include <cstdint>

#include "net/port.h"
#include "net/rx_reservation.h"
#include "net/tx_frame.h"

namespace vhost {

class LoopbackPort : public Port {
 public:
  const char* name() const override { return "loopback"; }
  bool Service(PairContext& c) override;

 private:
  static constexpr int kBurst = 32;

  // Moves up to kBurst frames. Returns how many TX chains were consumed; *rx_short tells that it
  // stopped because the guest had too few receive buffers.
  template <typename L>
  int Burst(const GuestMemory& mem, const NetSettings& settings, Queue& rx, Queue& tx, const Reporter& report,
            CaptureRing* capture, bool* rx_short);

  // The MAC-swapped copy of the held TX frame into the held RX buffers: in one go when both are
  // single pieces, else piece by piece.
  static void CopyWhole(const uint8_t* frame, uint8_t* to, uint32_t hdr_len, uint32_t frame_len);
  void CopyPieces(uint32_t hdr_len, uint32_t frame_len, int tx_segs);

  // A frame of the burst taken and placed, whose copy is still to be made.
  struct CopyJob {
    const uint8_t* from;  // the frame after the guest's virtio-net header
    uint8_t* to;          // the receive buffer (header first)
    uint32_t frame_len;
  };

  TxFrame tx_;
  RxReservation rx_;
  CopyJob jobs_[kBurst];
};

}  // namespace vhost
