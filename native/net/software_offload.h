// The offloads a device does in software for a guest when what lies beyond takes only whole frames
// with valid checksums (libslirp): the guest's partial checksums completed (VIRTIO_NET_F_CSUM) and its
// TCP segmentation done (HOST_TSO4/6), so that the guest hands over 64 KiB at a time and leaves the
// checksums to us, which under emulation (TCG) is where most of its time went. Everything here is the
// guest's and untrusted: every offset is checked against the frame, and a frame that does not parse as
// what its header claims is refused (the caller drops and counts it). Frames are our own copies.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vhost {

// virtio 1.x 5.1.6: the header's flags and gso_type values used here.
constexpr uint8_t kNetHdrNeedsCsum = 1;
constexpr uint8_t kNetHdrDataValid = 2;
constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoTcpV4 = 1;
constexpr uint8_t kGsoTcpV6 = 4;
constexpr uint8_t kGsoEcn = 0x80;

// The offload fields of a guest's virtio-net header (its first 10 bytes; little-endian, as VERSION_1
// guests and legacy guests on little-endian machines write them).
struct NetOffload {
  uint8_t flags = 0;
  uint8_t gso_type = kGsoNone;
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;

  static NetOffload Parse(const uint8_t* hdr);
};

// Completes a partial checksum in place: the sum of frame[start, len), which includes the
// pseudo-header sum the guest left in the field, stored at start + offset. False when the field is
// not inside the frame.
bool CompleteChecksum(uint8_t* frame, size_t len, uint16_t start, uint16_t offset);

// Cuts one TSO frame (Ethernet, IPv4 or IPv6 without extension headers, TCP) into frames of at most
// gso_size payload bytes, each with its own lengths, IPv4 id and header checksum, sequence number,
// flags (FIN and PSH on the last only, CWR on the first only) and TCP checksum.
class TcpSegmenter {
 public:
  // False when `frame` is not what `o` says (gso type, EtherType, IP version, next protocol, header
  // lengths) or gso_size is 0. The frame must stay in place until the last Next().
  bool Start(const uint8_t* frame, size_t len, const NetOffload& o);
  // The next segment, written to `out`; its length, or 0 when every byte went out. `cap` must hold
  // the headers and gso_size bytes (false from Fits() otherwise).
  size_t Next(uint8_t* out, size_t cap);
  // Whether segments fit in `cap` bytes.
  bool Fits(size_t cap) const { return headers_ + mss_ <= cap; }

 private:
  const uint8_t* frame_ = nullptr;
  size_t len_ = 0;
  size_t l4_ = 0;       // offset of the TCP header
  size_t headers_ = 0;  // Ethernet + IP + TCP header bytes, copied into every segment
  size_t mss_ = 0;
  size_t next_ = 0;  // offset of the next payload byte
  bool v6_ = false;
  uint32_t index_ = 0;
};

}  // namespace vhost
