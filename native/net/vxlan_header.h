// The VXLAN header (RFC 7348, section 5): 8 bytes before the inner Ethernet frame in a UDP datagram.
//   byte 0: flags, only I (0x08: the VNI is valid) defined; bytes 1-3 reserved; bytes 4-6: the VNI
//   (24 bits, big-endian); byte 7 reserved.
// Reserved bits are written as zero and ignored on receipt, as the RFC asks. Pure functions: the
// uplink (net/switch/vxlan_uplink.h), its unit test and the ring fuzzer drive them alike.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vhost {

constexpr uint32_t kVxlanHeader = 8;
constexpr uint32_t kVxlanMaxVni = (1u << 24) - 1;
constexpr uint16_t kVxlanPort = 4789;  // IANA's
constexpr uint8_t kVxlanFlagI = 0x08;
// Bytes VXLAN adds in front of a guest's frame on the wire, below the guest's MTU: the inner Ethernet
// header, VXLAN, UDP and the outer IP header (IPv4 20, IPv6 40).
constexpr uint32_t kVxlanOverheadV4 = 14 + kVxlanHeader + 8 + 20;
constexpr uint32_t kVxlanOverheadV6 = 14 + kVxlanHeader + 8 + 40;

inline void WriteVxlanHeader(uint8_t out[kVxlanHeader], uint32_t vni) {
  out[0] = kVxlanFlagI;
  out[1] = out[2] = out[3] = 0;
  out[4] = static_cast<uint8_t>(vni >> 16);
  out[5] = static_cast<uint8_t>(vni >> 8);
  out[6] = static_cast<uint8_t>(vni);
  out[7] = 0;
}

// Why a datagram is not a frame for us, in the order checked; kVxlanOk: it is.
enum class VxlanVerdict : uint8_t { kOk, kShort, kNoVni, kOtherVni, kTooLong, kCount };

inline const char* VxlanVerdictName(VxlanVerdict v) {
  switch (v) {
    case VxlanVerdict::kOk: return "ok";
    case VxlanVerdict::kShort: return "shorter than a VXLAN header and an Ethernet header";
    case VxlanVerdict::kNoVni: return "without the I flag (no valid VNI)";
    case VxlanVerdict::kOtherVni: return "for another VNI";
    case VxlanVerdict::kTooLong: return "with an inner frame longer than the uplink forwards";
    default: return "?";
  }
}

// Checks the datagram `d` (`len` bytes) against our `vni` and the longest inner frame `max_frame`;
// on kOk the inner frame is d + kVxlanHeader, len - kVxlanHeader bytes.
inline VxlanVerdict ParseVxlan(const uint8_t* d, size_t len, uint32_t vni, uint32_t max_frame) {
  if (len < kVxlanHeader + 14) return VxlanVerdict::kShort;
  if (!(d[0] & kVxlanFlagI)) return VxlanVerdict::kNoVni;
  const uint32_t got = (uint32_t{d[4]} << 16) | (uint32_t{d[5]} << 8) | d[6];
  if (got != vni) return VxlanVerdict::kOtherVni;
  if (len - kVxlanHeader > max_frame) return VxlanVerdict::kTooLong;
  return VxlanVerdict::kOk;
}

}  // namespace vhost
