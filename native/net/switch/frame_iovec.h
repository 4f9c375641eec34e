// A frame the switch hands to an uplink, as the kernel will read it: a header of the uplink's own
// (a zero virtio-net header for a tap, the VXLAN header) and then the frame straight from the
// sender's buffers (its own virtio-net header skipped), for one writev or sendmsg with no copy of ours.
#pragma once

#include <sys/uio.h>

#include <cstdint>

#include "core/segment.h"
#include "net/tx_frame.h"

namespace vhost {

struct FrameIovec {
  iovec iov[TxFrame::kMaxSegs + 1];
  int count = 0;

  // `len` frame bytes of `segs`, after `skip` bytes of the sender's header.
  FrameIovec(const void* header, uint32_t header_len, const Segment* segs, int nseg, uint32_t skip, uint32_t len) {
    iov[count++] = iovec{const_cast<void*>(header), header_len};
    for (int i = 0; i < nseg && len > 0 && count <= TxFrame::kMaxSegs; i++) {
      const uint32_t off = skip < segs[i].len ? skip : segs[i].len;
      skip -= off;
      const uint32_t take = segs[i].len - off < len ? segs[i].len - off : len;
      if (take == 0) continue;
      iov[count++] = iovec{segs[i].ptr + off, take};
      len -= take;
    }
  }
  // The destination MAC when the frame's first piece holds it (what counting needs), else null.
  const uint8_t* destination() const {
    return count > 1 && iov[1].iov_len >= 6 ? static_cast<const uint8_t*>(iov[1].iov_base) : nullptr;
  }
};

}  // namespace vhost
