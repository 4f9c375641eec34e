// Unit checks of DnsRedirect (net/dns_redirect.h): UDP (with and without a checksum) and TCP frames
// to the DNS address are rewritten to the resolver and back, and every checksum the rewrite updated
// incrementally equals one computed from scratch; frames it must leave alone stay byte-identical.
// Built and run by native/test/run.sh; exits 1 on the first failed check.
#include "net/dns_redirect.h"

#include <arpa/inet.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "test/check.h"

using namespace vhost;

namespace {

using Bytes = std::vector<uint8_t>;

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

uint16_t Sum(const uint8_t* p, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += Get16(p + i);
  if (len % 2) sum += p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

in_addr Ip(const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  return a;
}

// The checksums of a frame computed from scratch: IPv4 header, then TCP/UDP with its pseudo-header.
void Checksum(Bytes& f, bool udp_without) {
  uint8_t* ip = &f[14];
  Put16(ip + 10, 0);
  Put16(ip + 10, Sum(ip, 20));
  uint8_t* l4 = ip + 20;
  const size_t l4_len = f.size() - 34;
  uint8_t* field = ip[9] == 17 ? l4 + 6 : l4 + 16;
  Put16(field, 0);
  if (udp_without) return;
  uint8_t pseudo[12] = {};
  memcpy(pseudo, ip + 12, 8);
  pseudo[9] = ip[9];
  Put16(pseudo + 10, static_cast<uint16_t>(l4_len));
  uint32_t partial = static_cast<uint16_t>(~Sum(pseudo, 12));
  uint16_t sum = Sum(l4, l4_len, partial);
  Put16(field, ip[9] == 17 && sum == 0 ? 0xffff : sum);
}

Bytes Frame(uint8_t proto, const char* src, uint16_t sport, const char* dst, uint16_t dport, bool udp_without) {
  const size_t l4 = proto == 17 ? 8 + 13 : 20 + 13;
  Bytes f(34 + l4, 0);
  Put16(&f[12], 0x0800);
  uint8_t* ip = &f[14];
  ip[0] = 0x45, ip[8] = 64, ip[9] = proto;
  Put16(ip + 2, static_cast<uint16_t>(20 + l4));
  in_addr s = Ip(src), d = Ip(dst);
  memcpy(ip + 12, &s, 4);
  memcpy(ip + 16, &d, 4);
  Put16(ip + 20, sport), Put16(ip + 22, dport);
  if (proto == 17) Put16(ip + 24, static_cast<uint16_t>(l4));
  if (proto == 6) ip[20 + 12] = 5 << 4;
  memcpy(&f[f.size() - 13], "example query", 13);
  Checksum(f, udp_without);
  return f;
}

// Rewritten by `step` into exactly `want`, checksums included.
void Expect(const char* what, Bytes f, const Bytes& want, void (DnsRedirect::*step)(uint8_t*, size_t) const,
            const DnsRedirect& r) {
  (r.*step)(f.data(), f.size());
  CHECK(f == want, "%s: the rewritten frame differs from one built with the new addresses", what);
}

}  // namespace

int main() {
  // The guest's DNS address 10.0.2.3; the resolver 127.0.0.1:5353 as libslirp must see it (gateway).
  const DnsRedirect r(Ip("10.0.2.3"), Ip("10.0.2.2"), 5353);
  const auto to_host = &DnsRedirect::ToHost;
  const auto to_guest = &DnsRedirect::ToGuest;
  for (uint8_t proto : {uint8_t{17}, uint8_t{6}}) {
    for (bool without : {false, true}) {
      if (proto == 6 && without) continue;
      const char* what = proto == 6 ? "TCP" : without ? "UDP without checksum" : "UDP";
      Expect(what, Frame(proto, "10.0.2.15", 40001, "10.0.2.3", 53, without),
             Frame(proto, "10.0.2.15", 40001, "10.0.2.2", 5353, without), to_host, r);
      Expect(what, Frame(proto, "10.0.2.2", 5353, "10.0.2.15", 40001, without),
             Frame(proto, "10.0.2.3", 53, "10.0.2.15", 40001, without), to_guest, r);
      // Left alone: another port or address, either way.
      for (const Bytes& f : {Frame(proto, "10.0.2.15", 40001, "10.0.2.3", 54, without),
                             Frame(proto, "10.0.2.15", 40001, "10.0.2.4", 53, without)})
        Expect(what, f, f, to_host, r);
      for (const Bytes& f : {Frame(proto, "10.0.2.2", 5354, "10.0.2.15", 40001, without),
                             Frame(proto, "10.0.2.3", 53, "10.0.2.15", 40001, without)})
        Expect(what, f, f, to_guest, r);
    }
  }
  // A later fragment (no ports) and a frame cut short are left alone.
  Bytes frag = Frame(17, "10.0.2.15", 40001, "10.0.2.3", 53, false);
  Put16(&frag[14 + 6], 100);
  Expect("fragment", frag, frag, to_host, r);
  Bytes cut = Frame(17, "10.0.2.15", 40001, "10.0.2.3", 53, false);
  const Bytes before = cut;
  r.ToHost(cut.data(), 14 + 20 + 4);
  CHECK(cut == before, "a frame too short for its UDP header was changed");
  printf("dns redirect: %d checks passed\n", vhost_test::checks);
  return 0;
}
