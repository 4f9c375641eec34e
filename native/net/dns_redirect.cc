#include "net/dns_redirect.h"

#include <cstring>

#include "net/inet_checksum.h"

namespace vhost {

namespace {

constexpr uint16_t kDnsPort = 53;
constexpr uint8_t kTcp = 6, kUdp = 17;

}  // namespace

bool DnsRedirect::FindL4(uint8_t* frame, size_t len, L4* out) {
  if (len < 14 + 20 || Load16(frame + 12) != 0x0800) return false;
  uint8_t* ip = frame + 14;
  const size_t ihl = (ip[0] & 0x0f) * 4u;
  if ((ip[0] >> 4) != 4 || ihl < 20 || 14 + ihl + 8 > len) return false;
  if (Load16(ip + 6) & 0x1fff) return false;  // a later fragment: no ports in it
  uint8_t* l4 = ip + ihl;
  if (ip[9] == kUdp) {
    out->checksum = Load16(l4 + 6) != 0 ? l4 + 6 : nullptr;
  } else if (ip[9] == kTcp && 14 + ihl + 20 <= len) {
    out->checksum = l4 + 16;
  } else {
    return false;
  }
  out->ip = ip;
  out->l4 = l4;
  return true;
}

void DnsRedirect::Rewrite(const L4& h, size_t addr_at, size_t port_at, in_addr addr, uint16_t port) {
  uint8_t* field = h.ip + addr_at;
  uint8_t bytes[4];
  memcpy(bytes, &addr.s_addr, 4);  // network order
  for (int i = 0; i < 4; i += 2) {
    const uint16_t from = Load16(field + i), to = Load16(bytes + i);
    AdjustChecksum(h.ip + 10, from, to);                   // the IPv4 header's checksum
    if (h.checksum) AdjustChecksum(h.checksum, from, to);  // the pseudo-header's part of TCP's and UDP's
    Store16(field + i, to);
  }
  if (h.checksum) AdjustChecksum(h.checksum, Load16(h.l4 + port_at), port);
  Store16(h.l4 + port_at, port);
  // UDP sends a computed 0 as 0xffff (the same in one's complement): 0 would mean "no checksum".
  if (h.checksum && h.ip[9] == kUdp && Load16(h.checksum) == 0) Store16(h.checksum, 0xffff);
}

void DnsRedirect::ToHost(uint8_t* frame, size_t len) const {
  L4 h;
  if (!FindL4(frame, len, &h) || memcmp(h.ip + 16, &dns_.s_addr, 4) != 0 || Load16(h.l4 + 2) != kDnsPort) return;
  Rewrite(h, 16, 2, to_, to_port_);
}

void DnsRedirect::ToGuest(uint8_t* frame, size_t len) const {
  L4 h;
  if (!FindL4(frame, len, &h) || memcmp(h.ip + 12, &to_.s_addr, 4) != 0 || Load16(h.l4) != to_port_) return;
  Rewrite(h, 12, 0, dns_, kDnsPort);
}

}  // namespace vhost
