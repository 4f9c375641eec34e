// The Internet checksum (RFC 1071) and the big-endian 16-bit fields it covers: summed from scratch
// (software offloads) or adjusted for one changed word (RFC 1624, the --dns rewrite).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vhost {

inline uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline uint32_t Load32(const uint8_t* p) { return static_cast<uint32_t>(Load16(p)) << 16 | Load16(p + 2); }
inline void Store32(uint8_t* p, uint32_t v) {
  Store16(p, static_cast<uint16_t>(v >> 16));
  Store16(p + 2, static_cast<uint16_t>(v));
}

// Adds `n` bytes at `p` to a one's complement sum, not folded. The sum is kept in the machine's byte
// order, 32 bits at a time (RFC 1071 2.B: the sum does not depend on the order, only the result's
// bytes do); every piece of one checksum must start at an even offset of what it covers.
inline uint64_t SumBytes(uint64_t sum, const uint8_t* p, size_t n) {
  for (; n >= 4; p += 4, n -= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    sum += w;
  }
  uint8_t tail[4] = {};
  memcpy(tail, p, n);
  uint32_t w;
  memcpy(&w, tail, 4);
  return sum + w;
}

// The checksum field's bytes for a sum of SumBytes: folded to 16 bits and complemented, in the
// machine's order (store it with memcpy). A computed 0 is sent as 0xffff, the same in one's
// complement; UDP needs that (0 there means "no checksum") and TCP does not mind.
inline uint16_t ChecksumOf(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t c = static_cast<uint16_t>(~sum);
  return c == 0 ? 0xffff : c;
}

// RFC 1624, equation 3: the checksum at `field` after one 16-bit word of what it covers went from
// `from` to `to`: HC' = ~(~HC + ~m + m').
inline void AdjustChecksum(uint8_t* field, uint16_t from, uint16_t to) {
  uint32_t s = static_cast<uint16_t>(~Load16(field)) + static_cast<uint16_t>(~from) + to;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  Store16(field, static_cast<uint16_t>(~s));
}

}  // namespace vhost
