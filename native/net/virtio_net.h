// virtio-net header facts (virtio 1.x, 5.1.6) and the per-device settings decided at negotiation.
// The ring features (EVENT_IDX, INDIRECT_DESC) are every device's: core/virtqueue.h.
#pragma once

#include <cstdint>

namespace vhost {

constexpr int kFeatureGuestCsum = 1;
constexpr int kFeatureHostTso4 = 11;
constexpr int kFeatureHostTso6 = 12;
constexpr int kFeatureMrgRxbuf = 15;
constexpr int kFeatureVersion1 = 32;

constexpr uint32_t kNetHdrLegacy = 10;  // struct virtio_net_hdr
constexpr uint32_t kNetHdrMrg = 12;     // + num_buffers: with MRG_RXBUF or VERSION_1
constexpr uint32_t kNetHdrNumBuffersOffset = 10;

// Decided once when the driver's features are set, never per packet.
struct NetSettings {
  uint32_t hdr_len = kNetHdrLegacy;
  bool mrg_rxbuf = false;

  static NetSettings FromFeatures(uint64_t f) {
    auto has = [f](int bit) { return (f >> bit) & 1; };
    NetSettings s;
    s.mrg_rxbuf = has(kFeatureMrgRxbuf);
    s.hdr_len = (s.mrg_rxbuf || has(kFeatureVersion1)) ? kNetHdrMrg : kNetHdrLegacy;
    return s;
  }
};

}  // namespace vhost
