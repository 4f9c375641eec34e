#include "net/ports/source.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "net/ports/registry.h"
#include "net/ports/sink.h"
#include "net/segment_cursor.h"

namespace vhost {

SourcePort::SourcePort(uint32_t frame_len) : frame_(frame_len, 0) {
  static const uint8_t kHeader[14] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // broadcast
                                      0x02, 0x00, 0x00, 0x00, 0x00, 0x01,  // locally administered
                                      0x88, 0xb5};                         // local experimental
  memcpy(frame_.data(), kHeader, sizeof kHeader);
  for (uint32_t i = kSeqOffset + 8; i < frame_len; i++) frame_[i] = static_cast<uint8_t>(i);
}

void SourcePort::BuildImage(uint32_t hdr_len) {
  image_.resize(hdr_len + frame_.size());
  FillNetHeader(image_.data(), hdr_len, 1, nullptr);
  memcpy(image_.data() + hdr_len, frame_.data(), frame_.size());
  image_hdr_len_ = hdr_len;
}

template <typename L>
int SourcePort::Generate(PairContext& c) {
  const uint32_t hdr_len = c.settings.hdr_len;
  const uint32_t len = static_cast<uint32_t>(frame_.size());
  if (image_hdr_len_ != hdr_len) BuildImage(hdr_len);
  int made = 0;
  int nfills = 0;
  while (made < kBurst) {
    RxReservation::Result r = rx_.Reserve<L>(c.mem, c.settings, c.rx, hdr_len + len, c.report);
    if (r == RxReservation::Result::kTooSmall) {
      // The guest's buffers cannot hold our frames: count one drop and wait for it to post more
      // rather than spin on buffers that will never do.
      c.rx.Count(kStatDrops);
      if (!too_small_reported_) {
        c.report("source port: the guest's receive buffers cannot hold " + std::to_string(len) +
                 "-byte frames (negotiate MRG_RXBUF or use a smaller --frame-size)");
        too_small_reported_ = true;
      }
      break;
    }
    if (r != RxReservation::Result::kOk) break;  // short of buffers (or the ring broke)
    uint64_t seq = seq_++;
    const Segment& first = rx_.first_segment();
    if (rx_.buffers() == 1 && first.len >= hdr_len + len) {
      fills_[nfills++] = Fill{first.ptr, seq};
    } else {
      SegmentCursor dst = rx_.Cursor();
      WriteNetHeader(dst, hdr_len, rx_.buffers(), nullptr);
      dst.Write(frame_.data(), kSeqOffset);
      dst.Write(&seq, sizeof seq);
      dst.Write(frame_.data() + kSeqOffset + sizeof seq, len - kSeqOffset - sizeof seq);
      ObserveFrame(c.rx, c.capture, rx_.segments(), rx_.segment_count(), hdr_len, len);
    }
    rx_.Commit<L>(c.rx, hdr_len + len);
    made++;
  }
  // The writes of the burst come last and together (see LoopbackPort::Burst): the lines they
  // go to were last touched by the guest's CPU.
  for (int i = 0; i < nfills; i++) {
    memcpy(fills_[i].to, image_.data(), hdr_len + len);
    memcpy(fills_[i].to + hdr_len + kSeqOffset, &fills_[i].seq, sizeof fills_[i].seq);
    ObserveFrame(c.rx, c.capture, fills_[i].to + hdr_len, len);
  }
  return made;
}

bool SourcePort::Service(PairContext& c) {
  if (!c.rx.Ready()) return false;
  const bool drain = c.tx.Ready();  // what the guest sends is discarded, if it has a TX queue
  return WithLayout(c.rx.ring, [&](auto layout) {
    using L = typename decltype(layout)::type;
    return ServeUntilIdle(c, true, drain, [&] {
      int moved = Generate<L>(c);
      if (drain) moved += DiscardTx<L>(c, tx_, kBurst);
      return BurstOutcome{moved, true, drain};  // idle: wait for more receive buffers (or TX frames)
    });
  });
}

// options: frameSize (lib/net/ports/source.ts).
std::unique_ptr<Port> MakeSource(const PortOptions& options, PortError* err) {
  int64_t len = 0;
  if (!options.Int("frameSize", SourcePort::kMinFrame, SourcePort::kMaxFrame, &len)) {
    *err = PortError{EINVAL, "the source port needs frameSize in " + std::to_string(SourcePort::kMinFrame) + ".." +
                                 std::to_string(SourcePort::kMaxFrame)};
    return nullptr;
  }
  return std::make_unique<SourcePort>(static_cast<uint32_t>(len));
}

}  // namespace vhost
