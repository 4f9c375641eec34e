#include "net/frame_observer.h"

#include "net/segment_cursor.h"

namespace vhost {

void ObserveFramePieces(Queue& q, CaptureRing* capture, const Segment* segs, int nseg, uint32_t skip, uint32_t len) {
  uint8_t dst[6];
  SegmentCursor cursor(segs, nseg);
  cursor.Skip(skip);
  const bool has_mac = len >= 6 && cursor.Read(dst, 6) == 6;
  CountFrame(q, has_mac ? dst : nullptr, len);
  if (capture && !capture->Put(segs, nseg, skip, len)) q.Count(kStatCaptureDrops);
}

}  // namespace vhost
