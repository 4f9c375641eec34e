// Unit checks of the software offloads (net/software_offload.h) against a reference written the
// plain way (16-bit big-endian words, RFC 1071): partial checksums completed as a receiver checks
// them; TSO frames over IPv4 and IPv6, odd sizes and MSS values, cut into segments whose payloads
// join into the original, each with valid checksums, its own lengths, sequence number, IPv4 id and
// flags; and the refusals (a header that lies about the frame). Built and run by native/test/run.sh.
#include "net/software_offload.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "test/check.h"

using namespace vhost;

namespace {

using Bytes = std::vector<uint8_t>;

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Get32(const uint8_t* p) { return static_cast<uint32_t>(Get16(p)) << 16 | Get16(p + 2); }
void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void Put32(uint8_t* p, uint32_t v) {
  Put16(p, static_cast<uint16_t>(v >> 16));
  Put16(p + 2, static_cast<uint16_t>(v));
}

// The plain one's complement sum, folded (not complemented).
uint16_t Sum(const uint8_t* p, size_t len, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += Get16(p + i);
  if (len % 2) sum += p[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The pseudo-header's folded sum for the L4 bytes at `l4` (IPv4 or IPv6).
uint16_t PseudoSum(const Bytes& f, size_t l4, bool v6, uint8_t proto) {
  const uint8_t* ip = &f[14];
  const uint32_t l4_len = static_cast<uint32_t>(f.size() - l4);
  uint32_t s = v6 ? Sum(ip + 8, 32) : Sum(ip + 12, 8);
  return Sum(nullptr, 0, s + proto + (l4_len >> 16) + (l4_len & 0xffff));
}

// What a receiver checks: the L4 checksum (and IPv4's header checksum) sum to 0xffff.
bool Valid(const Bytes& f, size_t l4, bool v6, uint8_t proto) {
  if (!v6 && Sum(&f[14], (f[14] & 0x0f) * 4u) != 0xffff) return false;
  return Sum(&f[l4], f.size() - l4, PseudoSum(f, l4, v6, proto)) == 0xffff;
}

uint32_t rng = 12345;
uint8_t Rand8() {
  rng = rng * 1103515245 + 12345;
  return static_cast<uint8_t>(rng >> 16);
}

// Ethernet + IPv4 (with `ip_opts` bytes of options) or IPv6 + TCP (with `tcp_opts`) + `payload`
// random bytes; the TCP flags `flags`, sequence 0xfffff000 (so that segments wrap), IPv4 id 0xfffe.
Bytes TcpFrame(bool v6, size_t ip_opts, size_t tcp_opts, size_t payload, uint8_t flags) {
  const size_t ip_len = v6 ? 40 : 20 + ip_opts, tcp_len = 20 + tcp_opts;
  Bytes f(14 + ip_len + tcp_len + payload);
  for (auto& b : f) b = Rand8();
  Put16(&f[12], v6 ? 0x86dd : 0x0800);
  uint8_t* ip = &f[14];
  if (v6) {
    ip[0] = 0x60, ip[6] = 6;
    Put16(ip + 4, static_cast<uint16_t>(tcp_len + payload));
  } else {
    ip[0] = static_cast<uint8_t>(0x40 | ip_len / 4), ip[9] = 6;
    Put16(ip + 2, static_cast<uint16_t>(ip_len + tcp_len + payload));
    Put16(ip + 4, 0xfffe);
    Put16(ip + 6, 0x4000);  // DF
  }
  uint8_t* tcp = ip + ip_len;
  Put32(tcp + 4, 0xfffff000u);
  tcp[12] = static_cast<uint8_t>(tcp_len / 4 << 4);
  tcp[13] = flags;
  return f;
}

NetOffload Tso(bool v6, uint16_t mss, bool ecn = false) {
  NetOffload o;
  o.flags = kNetHdrNeedsCsum;
  o.gso_type = static_cast<uint8_t>((v6 ? kGsoTcpV6 : kGsoTcpV4) | (ecn ? kGsoEcn : 0));
  o.gso_size = mss;
  return o;
}

void CheckSegments(bool v6, size_t ip_opts, size_t tcp_opts, size_t payload, uint16_t mss) {
  const uint8_t flags = 0x80 | 0x10 | 0x08 | 0x01;  // CWR, ACK, PSH, FIN
  const Bytes f = TcpFrame(v6, ip_opts, tcp_opts, payload, flags);
  const size_t l4 = 14 + (v6 ? 40 : 20 + ip_opts), headers = l4 + 20 + tcp_opts;
  TcpSegmenter seg;
  CHECK(seg.Start(f.data(), f.size(), Tso(v6, mss, true)), "v6=%d payload=%zu mss=%u: refused", v6, payload, mss);
  Bytes out(headers + mss), joined;
  size_t count = 0;
  const size_t want = payload == 0 ? 1 : (payload + mss - 1) / mss;
  while (size_t n = seg.Next(out.data(), out.size())) {
    Bytes s(out.begin(), out.begin() + static_cast<long>(n));
    const bool first = count == 0, last = count + 1 == want;
    CHECK(count < want, "more segments than %zu", want);
    CHECK(Valid(s, l4, v6, 6), "v6=%d payload=%zu mss=%u segment %zu: bad checksum", v6, payload, mss, count);
    CHECK(n - headers == (last ? payload - mss * count : mss), "segment %zu: %zu payload bytes", count, n - headers);
    CHECK(memcmp(s.data(), f.data(), 14) == 0, "Ethernet header changed");
    if (v6) {
      CHECK(Get16(&s[18]) == n - 54, "IPv6 payload length %u", Get16(&s[18]));
    } else {
      CHECK(Get16(&s[16]) == n - 14, "IPv4 total length %u", Get16(&s[16]));
      CHECK(Get16(&s[18]) == static_cast<uint16_t>(0xfffe + count), "IPv4 id %u", Get16(&s[18]));
      CHECK(memcmp(&s[34], &f[34], ip_opts) == 0, "IPv4 options changed");
    }
    CHECK(Get32(&s[l4 + 4]) == static_cast<uint32_t>(0xfffff000u + mss * count), "sequence %u", Get32(&s[l4 + 4]));
    const uint8_t want_flags = static_cast<uint8_t>((flags & ~(first ? 0 : 0x80)) & ~(last ? 0 : 0x09));
    CHECK(s[l4 + 13] == want_flags, "segment %zu: flags %02x, want %02x", count, s[l4 + 13], want_flags);
    CHECK(memcmp(&s[l4 + 20], &f[l4 + 20], tcp_opts) == 0, "TCP options changed");
    joined.insert(joined.end(), s.begin() + static_cast<long>(headers), s.end());
    count++;
  }
  CHECK(count == want, "v6=%d payload=%zu mss=%u: %zu segments, want %zu", v6, payload, mss, count, want);
  CHECK(joined.size() == payload && (payload == 0 || memcmp(joined.data(), &f[headers], payload) == 0),
        "payloads do not join");
  CHECK(seg.Next(out.data(), out.size()) == 0, "a segment after the last");
}

void CheckCompleteChecksum() {
  for (bool v6 : {false, true}) {
    for (size_t payload : {0, 1, 2, 3, 1447, 1448, 9000}) {
      Bytes f = TcpFrame(v6, 0, 12, payload, 0x18);
      const size_t l4 = v6 ? 54 : 34;
      // As a guest leaves it: the pseudo-header's sum in the field, not complemented.
      Put16(&f[l4 + 16], PseudoSum(f, l4, v6, 6));
      if (!v6) {
        Put16(&f[24], 0);
        Put16(&f[24], static_cast<uint16_t>(~Sum(&f[14], 20)));
      }
      CHECK(CompleteChecksum(f.data(), f.size(), static_cast<uint16_t>(l4), 16), "refused");
      CHECK(Valid(f, l4, v6, 6), "v6=%d payload=%zu: not valid after completion", v6, payload);
    }
  }
  Bytes f = TcpFrame(false, 0, 0, 10, 0x18);
  CHECK(!CompleteChecksum(f.data(), f.size(), static_cast<uint16_t>(f.size() - 1), 0), "a field past the end");
  CHECK(!CompleteChecksum(f.data(), f.size(), 34, 0xffff), "an offset past the end");
  CHECK(!CompleteChecksum(f.data(), f.size(), 0xffff, 0xffff), "start and offset past the end");
}

void CheckRefusals() {
  TcpSegmenter seg;
  Bytes f = TcpFrame(false, 0, 0, 3000, 0x10);
  CHECK(!seg.Start(f.data(), f.size(), Tso(false, 0)), "gso_size 0");
  CHECK(!seg.Start(f.data(), f.size(), Tso(true, 1448)), "IPv4 frame as TCPv6");
  NetOffload udp = Tso(false, 1448);
  udp.gso_type = 3;  // VIRTIO_NET_HDR_GSO_UDP: not offered
  CHECK(!seg.Start(f.data(), f.size(), udp), "UFO");
  Bytes g = f;
  g[23] = 17;  // UDP inside
  CHECK(!seg.Start(g.data(), g.size(), Tso(false, 1448)), "not TCP");
  g = f;
  g[14] = 0x4f;  // 60-byte IPv4 header
  g.resize(14 + 60 + 10);
  CHECK(!seg.Start(g.data(), g.size(), Tso(false, 1448)), "TCP header past the end");
  g = f;
  g[14 + 20 + 12] = 0xf0;  // 60-byte TCP header in a frame with 3000 bytes after it: fine
  CHECK(seg.Start(g.data(), g.size(), Tso(false, 1448)), "long TCP header refused");
  g.resize(14 + 20 + 40);
  CHECK(!seg.Start(g.data(), g.size(), Tso(false, 1448)), "TCP options past the end");
  g = f;
  g[14 + 20 + 12] = 0x40;  // data offset 4: shorter than a TCP header
  CHECK(!seg.Start(g.data(), g.size(), Tso(false, 1448)), "data offset below 5");
  g = f;
  Put16(&g[20], 0x2000);  // more fragments
  CHECK(!seg.Start(g.data(), g.size(), Tso(false, 1448)), "a fragment");
  g = f;
  g[14] = 0x44;  // IHL 4
  CHECK(!seg.Start(g.data(), g.size(), Tso(false, 1448)), "IHL below 5");
  g = f;
  Put16(&g[12], 0x8100);  // VLAN tag
  CHECK(!seg.Start(g.data(), g.size(), Tso(false, 1448)), "EtherType not IPv4");
  Bytes h = TcpFrame(true, 0, 0, 3000, 0x10);
  h[14 + 6] = 0;  // hop-by-hop options first
  CHECK(!seg.Start(h.data(), h.size(), Tso(true, 1448)), "IPv6 extension header");
  CHECK(!seg.Start(h.data(), 40, Tso(true, 1448)), "shorter than the headers");
  CHECK(seg.Start(f.data(), f.size(), Tso(false, 1448)), "a good frame refused");
  Bytes small(100);
  CHECK(!seg.Fits(small.size()) && seg.Next(small.data(), small.size()) == 0, "a segment into too small a buffer");
}

}  // namespace

int main() {
  for (bool v6 : {false, true}) {
    for (size_t payload : {0, 1, 1447, 1448, 1449, 2896, 65000}) {
      for (uint16_t mss : {1, 536, 1448, 8948, 65000}) {
        if (payload / mss > 5000) continue;  // a mss of 1 on a large frame: right, but slow to check
        CheckSegments(v6, 0, 12, payload, mss);
      }
    }
    CheckSegments(v6, v6 ? 0 : 8, 40, 10000, 1000);
  }
  CheckCompleteChecksum();
  CheckRefusals();
  printf("software offload: %d checks passed\n", vhost_test::checks);
  return 0;
}
