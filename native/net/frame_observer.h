// What every port does with each frame it moved, in one place: count it under DPDK's names and
// meanings (lib/vhost vhost_queue_stats_update: good packets and bytes without the virtio-net header,
// the RFC 2819 size bins, multicast or else broadcast by the destination MAC) and, while a capture
// runs, copy it to the pair's capture ring. Frames dropped or malformed are not observed (they are
// counted as drops and errors where that happens).
//
// A port calls ObserveFrame once per frame, after the frame's bytes are final (for guest RX, after its
// copy into the guest's buffers) and within the burst: ServeUntilIdle publishes the used entries only
// after the burst, so until then the guest cannot reuse the buffers being read. A port that handles
// the length and the bytes in two loops (the loopback: its ring walk, then its grouped copies) may
// call the two halves instead: CountLength in the first, ObserveBytes in the second.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/segment.h"
#include "core/virtqueue.h"
#include "net/capture.h"

namespace vhost {

// The RFC 2819 bin of a frame length, as an offset from kStatUndersize: < 64, 64, 65..127, 128..255,
// 256..511, 512..1023, 1024..1518, > 1518.
inline int SizeBin(uint32_t len) {
  if (len >= 1024) return 6 + (len > 1518);
  if (len <= 64) return static_cast<int>(len >> 6);
  return 32 - __builtin_clz(len) - 5;  // 65..127 has 7 significant bits: bin 2, and so on
}

// The counters a frame's length decides: packets, bytes, size bin. A port may count these where it
// handles the length (its ring walk) and the rest with ObserveBytes where it touches the bytes.
inline void CountLength(Queue& q, uint32_t len) {
  q.Count(kStatPackets);
  q.Count(kStatBytes, len);
  q.Count(static_cast<QueueStat>(kStatUndersize + SizeBin(len)));
}

// The MAC class. `dst`: the frame's first bytes (its destination MAC), or null when shorter than a MAC.
inline void CountMacClass(Queue& q, const uint8_t* dst) {
  if (dst && (dst[0] & 1)) {  // the group bit: multicast, and broadcast if every bit is set
    static const uint8_t kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    q.Count(memcmp(dst, kBroadcast, 6) == 0 ? kStatBroadcast : kStatMulticast);
  }
}

inline void CountFrame(Queue& q, const uint8_t* dst, uint32_t len) {
  CountLength(q, len);
  CountMacClass(q, dst);
}

// What a frame's bytes decide (in one piece, `frame` at its first byte after the virtio-net header):
// its MAC class and, while capturing, its record. With CountLength, the same as ObserveFrame.
inline void ObserveBytes(Queue& q, CaptureRing* capture, const uint8_t* frame, uint32_t len) {
  CountMacClass(q, len >= 6 ? frame : nullptr);
  if (capture && !capture->Put(frame, len)) q.Count(kStatCaptureDrops);
}

// A frame in one piece: `frame` points at its first byte (after the virtio-net header).
inline void ObserveFrame(Queue& q, CaptureRing* capture, const uint8_t* frame, uint32_t len) {
  CountLength(q, len);
  ObserveBytes(q, capture, frame, len);
}

// A frame in pieces: the `len` bytes after the first `skip` (the virtio-net header) of `segs`, which
// the caller has checked hold them. The common one-piece case inline, the rest out of line.
void ObserveFramePieces(Queue& q, CaptureRing* capture, const Segment* segs, int nseg, uint32_t skip, uint32_t len);
inline void ObserveFrame(Queue& q, CaptureRing* capture, const Segment* segs, int nseg, uint32_t skip, uint32_t len) {
  if (nseg > 0 && segs[0].len >= skip && segs[0].len - skip >= len) {
    ObserveFrame(q, capture, segs[0].ptr + skip, len);
    return;
  }
  ObserveFramePieces(q, capture, segs, nseg, skip, len);
}

}  // namespace vhost
