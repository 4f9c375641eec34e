// The VXLAN header (net/vxlan_header.h) against RFC 7348's layout written out by hand: what we send
// (I flag, VNI big-endian, reserved bytes zero) and every verdict of the receive check at its edges.
#include "net/vxlan_header.h"

#include <cstdio>
#include <cstring>
#include <vector>

#include "test/check.h"

using vhost::kVxlanHeader;
using vhost::ParseVxlan;
using vhost::VxlanVerdict;

namespace {

// A datagram as RFC 7348 section 5 draws it: flags, 24 reserved bits, the VNI, 8 reserved bits.
std::vector<uint8_t> Datagram(uint8_t flags, uint32_t vni, size_t frame_len, uint8_t reserved = 0) {
  std::vector<uint8_t> d(kVxlanHeader + frame_len, 0x5a);
  d[0] = flags;
  d[1] = d[2] = d[3] = reserved;
  d[4] = (vni >> 16) & 0xff;
  d[5] = (vni >> 8) & 0xff;
  d[6] = vni & 0xff;
  d[7] = reserved;
  return d;
}

VxlanVerdict Parse(const std::vector<uint8_t>& d, uint32_t vni, uint32_t max_frame = 1518) {
  return ParseVxlan(d.data(), d.size(), vni, max_frame);
}

}  // namespace

int main() {
  // What we write: byte for byte the RFC's layout, for VNIs at the edges and in between.
  for (uint32_t vni : {0u, 1u, 42u, 0x123456u, 0xabcdefu, vhost::kVxlanMaxVni}) {
    uint8_t h[kVxlanHeader];
    memset(h, 0xee, sizeof h);
    vhost::WriteVxlanHeader(h, vni);
    std::vector<uint8_t> want = Datagram(0x08, vni, 0);
    CHECK(memcmp(h, want.data(), kVxlanHeader) == 0, "header of VNI %u", vni);
    CHECK(Parse(Datagram(0x08, vni, 14), vni) == VxlanVerdict::kOk, "our own header of VNI %u accepted", vni);
  }
  // Reserved bits (flags other than I, the reserved bytes) are ignored on receipt.
  CHECK(Parse(Datagram(0xff, 42, 60, 0xff), 42) == VxlanVerdict::kOk, "reserved bits ignored");
  CHECK(Parse(Datagram(0x08 | 0x80, 42, 60), 42) == VxlanVerdict::kOk, "other flags ignored");
  // Too short: the header and an Ethernet header at least.
  for (size_t len = 0; len < kVxlanHeader + 14; len++) {
    std::vector<uint8_t> d = Datagram(0x08, 42, 14);
    CHECK(ParseVxlan(d.data(), len, 42, 1518) == VxlanVerdict::kShort, "%zu bytes are short", len);
  }
  CHECK(Parse(Datagram(0x00, 42, 60), 42) == VxlanVerdict::kNoVni, "no I flag");
  CHECK(Parse(Datagram(0xf7, 42, 60), 42) == VxlanVerdict::kNoVni, "every flag but I");
  CHECK(Parse(Datagram(0x08, 43, 60), 42) == VxlanVerdict::kOtherVni, "another VNI");
  CHECK(Parse(Datagram(0x08, 42 | 0x10000, 60), 42) == VxlanVerdict::kOtherVni, "the VNI's high byte counts");
  CHECK(Parse(Datagram(0x08, 0, 60), vhost::kVxlanMaxVni) == VxlanVerdict::kOtherVni, "VNI 0 is not 2^24-1");
  // The inner frame's limit, at the edge.
  CHECK(Parse(Datagram(0x08, 42, 1468), 42, 1468) == VxlanVerdict::kOk, "a frame at the limit");
  CHECK(Parse(Datagram(0x08, 42, 1469), 42, 1468) == VxlanVerdict::kTooLong, "a frame a byte over");
  // The overheads below a guest's MTU: 1500 - 50 = 1450 over IPv4, 1500 - 70 over IPv6.
  CHECK(vhost::kVxlanOverheadV4 == 50 && vhost::kVxlanOverheadV6 == 70, "overheads");
  printf("vxlan header: %d checks passed\n", vhost_test::checks);
  return 0;
}
