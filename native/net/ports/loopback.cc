#include "net/ports/loopback.h"

#include <cstring>
#include <memory>

#include "net/ports/registry.h"
#include "net/segment_cursor.h"

namespace vhost {

// The common case, a frame in one piece going into one buffer: plain copies. A hostile guest can
// make the two overlap, so every byte needed is read before anything is written (memmove).
// The MACs are swapped in registers: bytes staged on the stack would be read back across stores of
// other sizes, which waits for every older store to reach the cache (FillNetHeader says more).
void LoopbackPort::CopyWhole(const uint8_t* frame, uint8_t* to, uint32_t hdr_len, uint32_t frame_len) {
  uint64_t head;  // frame bytes 0-7: the destination MAC, then the source MAC's first two
  uint32_t rest;  // frame bytes 8-11: the source MAC's last four
  memcpy(&head, frame, sizeof head);
  memcpy(&rest, frame + sizeof head, sizeof rest);
  memmove(to + hdr_len + 12, frame + 12, frame_len - 12);
  FillNetHeader(to, hdr_len, 1, nullptr);
  // Little-endian: out bytes 0-5 = frame bytes 6-11, out bytes 6-11 = frame bytes 0-5.
  const uint64_t out_head = head >> 48 | uint64_t{rest} << 16 | head << 48;
  const uint32_t out_rest = static_cast<uint32_t>(head >> 16);
  memcpy(to + hdr_len, &out_head, sizeof out_head);
  memcpy(to + hdr_len + sizeof out_head, &out_rest, sizeof out_rest);
}

void LoopbackPort::CopyPieces(uint32_t hdr_len, uint32_t frame_len, int tx_segs) {
  SegmentCursor src(tx_.segments(), tx_segs);
  SegmentCursor dst = rx_.Cursor();
  src.Skip(hdr_len);
  WriteNetHeader(dst, hdr_len, rx_.buffers(), nullptr);
  uint32_t copied = 0;
  if (frame_len >= 12) {
    uint8_t macs[12], swapped[12];
    src.Read(macs, 12);
    memcpy(swapped, macs + 6, 6);
    memcpy(swapped + 6, macs, 6);
    dst.Write(swapped, 12);
    copied = 12;
  }
  SegmentCursor::Copy(src, dst, frame_len - copied);
}

template <typename L>
int LoopbackPort::Burst(const GuestMemory& mem, const NetSettings& settings, Queue& rx, Queue& tx,
                        const Reporter& report, CaptureRing* capture, bool* rx_short) {
  const uint32_t hdr_len = settings.hdr_len;
  int moved = 0;
  int njobs = 0;
  *rx_short = false;
  while (moved < kBurst) {
    TxFrame::Result t = tx_.Next<L>(mem, settings, tx, report);
    if (t == TxFrame::Result::kNone) break;
    if (t == TxFrame::Result::kDropped) {
      moved++;
      continue;
    }
    const Chain& tc = tx_.chain();
    uint32_t frame_len = tc.len - hdr_len;
    RxReservation::Result r = rx_.Reserve<L>(mem, settings, rx, hdr_len + frame_len, report);
    if (r == RxReservation::Result::kShort || r == RxReservation::Result::kBroken) {
      tx_.GiveBack<L>(tx);
      *rx_short = r == RxReservation::Result::kShort;
      break;
    }
    if (r == RxReservation::Result::kTooSmall) {  // the guest can never take this frame: drop it
      tx.Count(kStatDrops);
      tx_.Done<L>(tx);
      moved++;
      continue;
    }

    const Segment& in = tx_.segments()[0];
    const Segment& out = rx_.first_segment();
    if (tc.nseg == 1 && rx_.buffers() == 1 && out.len >= hdr_len + frame_len && frame_len >= 12) {
      jobs_[njobs++] = CopyJob{in.ptr + hdr_len, out.ptr, frame_len};
      CountLength(tx, frame_len);  // the bytes are observed with the copy, below
      CountLength(rx, frame_len);
    } else {
      CopyPieces(hdr_len, frame_len, tc.nseg);
      ObserveFrame(tx, capture, tx_.segments(), tc.nseg, hdr_len, frame_len);
      ObserveFrame(rx, capture, rx_.segments(), rx_.segment_count(), hdr_len, frame_len);
    }
    rx_.Commit<L>(rx, hdr_len + frame_len);
    tx_.Done<L>(tx);
    moved++;
  }
  // The copies of the burst come last and together: each first touches lines the front-end wrote
  // on the other CPU, and back to back their misses overlap instead of waiting one by one behind
  // the ring work. (The used entries pushed above are published only after this.) Each frame is
  // observed on the lines its copy touches anyway: the TX frame's first line before, the RX one after.
  for (int i = 0; i < njobs; i++) {
    const CopyJob& j = jobs_[i];
    ObserveBytes(tx, capture, j.from, j.frame_len);
    CopyWhole(j.from, j.to, hdr_len, j.frame_len);
    ObserveBytes(rx, capture, j.to + hdr_len, j.frame_len);
  }
  return moved;
}

bool LoopbackPort::Service(PairContext& c) {
  if (!c.rx.Ready() || !c.tx.Ready()) return false;
  return WithLayout(c.tx.ring, [&](auto layout) {
    using L = typename decltype(layout)::type;
    return ServeUntilIdle(c, true, true, [&] {
      bool rx_short = false;
      int moved = Burst<L>(c.mem, c.settings, c.rx, c.tx, c.report, c.capture, &rx_short);
      // TX waits on the guest's RX buffers when rx_short, on its TX frames otherwise.
      return BurstOutcome{moved, rx_short, !rx_short};
    });
  });
}

std::unique_ptr<Port> MakeLoopback(const PortOptions&, PortError*) { return std::make_unique<LoopbackPort>(); }

}  // namespace vhost
