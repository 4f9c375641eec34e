// virtio-net header facts (virtio 1.x, 5.1.6) and the per-device settings decided at negotiation.
#pragma once

#include <cstdint>

namespace vhost {

constexpr int kFeatureMrgRxbuf = 15;
constexpr int kFeatureIndirectDesc = 28;
constexpr int kFeatureEventIdx = 29;
constexpr int kFeatureVersion1 = 32;

constexpr uint32_t kNetHdrLegacy = 10;  // struct virtio_net_hdr
constexpr uint32_t kNetHdrMrg = 12;     // + num_buffers: with MRG_RXBUF or VERSION_1
constexpr uint32_t kNetHdrNumBuffersOffset = 10;

// Decided once when the driver's features are set, never per packet.
struct NetSettings {
  uint32_t hdr_len = kNetHdrLegacy;
  bool mrg_rxbuf = false;
  bool event_idx = false;
  bool indirect = false;

  static NetSettings FromFeatures(uint64_t f) {
    auto has = [f](int bit) { return (f >> bit) & 1; };
    NetSettings s;
    s.mrg_rxbuf = has(kFeatureMrgRxbuf);
    s.hdr_len = (s.mrg_rxbuf || has(kFeatureVersion1)) ? kNetHdrMrg : kNetHdrLegacy;
    s.event_idx = has(kFeatureEventIdx);
    s.indirect = has(kFeatureIndirectDesc);
    return s;
  }
};

}  // namespace vhost
