#include "net/rx_reservation.h"

#include <cstring>

namespace vhost {

void WriteNetHeader(SegmentCursor& dst, uint32_t hdr_len, uint16_t num_buffers, const uint8_t* from) {
  if (uint8_t* here = dst.Contiguous(hdr_len)) {  // the usual case: straight from registers (FillNetHeader)
    FillNetHeader(here, hdr_len, num_buffers, from);
    dst.Skip(hdr_len);
    return;
  }
  uint8_t hdr[kNetHdrMrg];
  FillNetHeader(hdr, hdr_len, num_buffers, from);
  dst.Write(hdr, hdr_len);
}

}  // namespace vhost
