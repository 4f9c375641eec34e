// The source port: fills every receive buffer the guest posts with a generated frame of a fixed
// size, as fast as buffers come (the guest-RX figure of a benchmark, DPDK testpmd's txonly on the
// back-end side). Frames go to the broadcast address from 02:00:00:00:00:01 with the local
// experimental EtherType 0x88b5 and carry a 64-bit little-endian sequence number right after the
// Ethernet header, so a receiver can tell loss and order. What the guest transmits is discarded
// like the sink port does.
#pragma once

#include <cstdint>
#include <vector>

#include "net/port.h"
#include "net/rx_reservation.h"
#include "net/tx_frame.h"

namespace vhost {

class SourcePort : public Port {
 public:
  static constexpr uint32_t kMinFrame = 60;  // Ethernet minimum without FCS
  static constexpr uint32_t kMaxFrame = 65535;
  static constexpr uint32_t kSeqOffset = 14;

  explicit SourcePort(uint32_t frame_len);
  const char* name() const override { return "source"; }
  bool Service(PairContext& c) override;
  void OnReset() override { too_small_reported_ = false; }

 private:
  static constexpr int kBurst = 64;

  // Delivers up to kBurst frames; fewer when the guest is short of (big enough) buffers.
  template <typename L>
  int Generate(PairContext& c);

  // The virtio-net header (one buffer) followed by the frame, for the common case of a frame that
  // fits the first piece of one buffer; rebuilt when the header length changes.
  void BuildImage(uint32_t hdr_len);

  std::vector<uint8_t> frame_;  // the template; the sequence number is written per frame
  std::vector<uint8_t> image_;
  uint32_t image_hdr_len_ = UINT32_MAX;
  uint64_t seq_ = 0;
  bool too_small_reported_ = false;
  // A buffer of the burst, taken, to be filled with the image and this sequence number.
  struct Fill {
    uint8_t* to;
    uint64_t seq;
  };

  TxFrame tx_;
  RxReservation rx_;
  Fill fills_[kBurst];
};

}  // namespace vhost
