#include "net/software_offload.h"

#include <algorithm>
#include <cstring>

#include "net/inet_checksum.h"

namespace vhost {

namespace {

constexpr size_t kEth = 14;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;

uint16_t LoadLe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

}  // namespace

NetOffload NetOffload::Parse(const uint8_t* hdr) {
  NetOffload o;
  o.flags = hdr[0];
  o.gso_type = hdr[1];
  // hdr[2..3] is hdr_len: a hint only; the segmenter reads the frame's own header lengths.
  o.gso_size = LoadLe16(hdr + 4);
  o.csum_start = LoadLe16(hdr + 6);
  o.csum_offset = LoadLe16(hdr + 8);
  return o;
}

bool CompleteChecksum(uint8_t* frame, size_t len, uint16_t start, uint16_t offset) {
  if (static_cast<size_t>(start) + offset + 2 > len) return false;
  const uint16_t sum = ChecksumOf(SumBytes(0, frame + start, len - start));
  memcpy(frame + start + offset, &sum, 2);
  return true;
}

bool TcpSegmenter::Start(const uint8_t* frame, size_t len, const NetOffload& o) {
  const uint8_t gso = o.gso_type & ~kGsoEcn;
  v6_ = gso == kGsoTcpV6;
  if ((gso != kGsoTcpV4 && !v6_) || o.gso_size == 0 || len < kEth + 40) return false;
  const uint8_t* ip = frame + kEth;
  if (!v6_) {
    const size_t ihl = (ip[0] & 0x0f) * 4u;
    // IPv4, TCP, not a fragment (only DF may be set), the options inside the frame.
    if (Load16(frame + 12) != 0x0800 || ip[0] >> 4 != 4 || ihl < 20 || ip[9] != kTcp || (Load16(ip + 6) & 0xbfff) != 0)
      return false;
    l4_ = kEth + ihl;
  } else {
    // IPv6 with TCP right after the fixed header: a guest's TSO frames have no extension headers.
    if (Load16(frame + 12) != 0x86dd || ip[0] >> 4 != 6 || ip[6] != kTcp) return false;
    l4_ = kEth + 40;
  }
  if (l4_ + 20 > len) return false;
  const size_t tcp_len = (frame[l4_ + 12] >> 4) * 4u;
  if (tcp_len < 20 || l4_ + tcp_len > len) return false;
  frame_ = frame;
  len_ = len;
  headers_ = l4_ + tcp_len;
  mss_ = o.gso_size;
  next_ = headers_;
  index_ = 0;
  return true;
}

size_t TcpSegmenter::Next(uint8_t* out, size_t cap) {
  // The first segment always goes out: a frame with no payload at all is sent once, completed.
  if (!frame_ || (index_ > 0 && next_ >= len_) || !Fits(cap)) return 0;
  const size_t n = std::min(mss_, len_ - next_);
  const bool first = index_ == 0, last = next_ + n >= len_;
  memcpy(out, frame_, headers_);
  memcpy(out + headers_, frame_ + next_, n);
  const size_t seg_len = headers_ + n;
  uint8_t* ip = out + kEth;
  uint8_t* tcp = out + l4_;
  const uint16_t tcp_seg_len = static_cast<uint16_t>(seg_len - l4_);

  // The pseudo-header: addresses, protocol and TCP length (RFC 793; RFC 8200 8.1).
  uint8_t pseudo[40] = {};
  size_t pseudo_len;
  if (!v6_) {
    Store16(ip + 2, static_cast<uint16_t>(seg_len - kEth));
    Store16(ip + 4, static_cast<uint16_t>(Load16(frame_ + kEth + 4) + index_));
    Store16(ip + 10, 0);
    const uint16_t ip_sum = ChecksumOf(SumBytes(0, ip, l4_ - kEth));
    memcpy(ip + 10, &ip_sum, 2);
    memcpy(pseudo, ip + 12, 8);
    pseudo[9] = kTcp;
    Store16(pseudo + 10, tcp_seg_len);
    pseudo_len = 12;
  } else {
    Store16(ip + 4, tcp_seg_len);
    memcpy(pseudo, ip + 8, 32);
    Store16(pseudo + 34, tcp_seg_len);
    pseudo[39] = kTcp;
    pseudo_len = 40;
  }
  Store32(tcp + 4, Load32(frame_ + l4_ + 4) + static_cast<uint32_t>(next_ - headers_));
  if (!last) tcp[13] &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
  if (!first) tcp[13] &= static_cast<uint8_t>(~kTcpCwr);
  Store16(tcp + 16, 0);
  const uint16_t tcp_sum = ChecksumOf(SumBytes(SumBytes(0, pseudo, pseudo_len), tcp, tcp_seg_len));
  memcpy(tcp + 16, &tcp_sum, 2);

  next_ += n;
  index_++;
  return seg_len;
}

}  // namespace vhost
