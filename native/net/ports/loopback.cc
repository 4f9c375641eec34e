#include "net/ports/loopback.h"

#include <cstring>

#include "net/segment_cursor.h"

namespace vhost {

void LoopbackPort::Break(Pass& p, Queue& q, const char* which, const std::string& why) {
  if (!q.broken) p.report(std::string(which) + " queue broken: " + why);
  q.broken = true;
  q.Count(kStatErrors);
}

void LoopbackPort::ReturnRx(Pass& p, uint32_t len_each) {
  for (int i = 0; i < rx_nbufs_; i++) p.rx.ring.PushUsed(rx_bufs_[i].head, len_each);
  rx_nbufs_ = rx_nsegs_ = 0;
}

LoopbackPort::Reserve LoopbackPort::ReserveRx(Pass& p, uint32_t need) {
  rx_nbufs_ = rx_nsegs_ = 0;
  uint32_t cap = 0;
  // A frame never takes more buffers than the ring holds: waiting for more would wait forever.
  const uint32_t ring = p.rx.ring.size();
  const int max_bufs = !p.settings.mrg_rxbuf ? 1 : ring < kMaxRxBufs ? static_cast<int>(ring) : kMaxRxBufs;
  uint32_t taken = 0;  // chains looked at in this call, malformed ones included: bounds the loop
  while (cap < need) {
    if (taken++ > ring) {
      ReturnRx(p, 0);
      return Reserve::kTooSmall;
    }
    if (rx_nbufs_ == max_bufs) {
      p.rx.ring.Unpop(static_cast<uint16_t>(rx_nbufs_));
      rx_nbufs_ = rx_nsegs_ = 0;
      return Reserve::kTooSmall;
    }
    bool broken = false;
    uint16_t avail = p.rx.ring.Available(&broken);
    if (broken) {
      Break(p, p.rx, "RX", "available index ran more than the ring size ahead");
      return Reserve::kBroken;
    }
    if (avail == 0) {
      p.rx.ring.Unpop(static_cast<uint16_t>(rx_nbufs_));
      rx_nbufs_ = rx_nsegs_ = 0;
      return Reserve::kShort;
    }
    ChainError err;
    Chain c = p.rx.ring.Pop(p.mem, true, rx_segs_ + rx_nsegs_, kMaxSegs - rx_nsegs_, &err);
    // The first buffer must hold the whole header (virtio 1.x 5.1.6.3.1).
    if (err == ChainError::kNone && rx_nbufs_ == 0 && c.len < p.settings.hdr_len) err = ChainError::kTooLong;
    if (err != ChainError::kNone) {
      // A malformed receive buffer: hand back everything taken for this frame, empty, and go on.
      if (err == ChainError::kTooManySegments && rx_nbufs_ > 0) {
        // Out of room in our segment table, not the guest's fault: leave its buffers, drop the frame.
        p.rx.ring.Unpop(static_cast<uint16_t>(rx_nbufs_ + 1));
        rx_nbufs_ = rx_nsegs_ = 0;
        return Reserve::kTooSmall;
      }
      // A malformed receive buffer: hand back everything taken for this frame, empty, and go on.
      p.rx.Count(kStatErrors);
      if (err != ChainError::kBadHead) rx_bufs_[rx_nbufs_++] = RxBuf{c.head, 0};
      ReturnRx(p, 0);
      cap = 0;
      continue;
    }
    rx_bufs_[rx_nbufs_++] = RxBuf{c.head, c.len};
    rx_nsegs_ += c.nseg;
    cap += c.len;
    if (!p.settings.mrg_rxbuf && cap < need) {
      p.rx.ring.Unpop(1);
      rx_nbufs_ = rx_nsegs_ = 0;
      return Reserve::kTooSmall;
    }
  }
  return Reserve::kOk;
}

int LoopbackPort::Burst(Pass& p, bool* rx_short) {
  const uint32_t hdr_len = p.settings.hdr_len;
  int moved = 0;
  *rx_short = false;
  while (moved < kBurst) {
    bool broken = false;
    if (p.tx.ring.Available(&broken) == 0) {
      if (broken) Break(p, p.tx, "TX", "available index ran more than the ring size ahead");
      break;
    }
    ChainError err;
    Chain tc = p.tx.ring.Pop(p.mem, false, tx_segs_, kMaxSegs, &err);
    if (err == ChainError::kNone && tc.len < hdr_len) err = ChainError::kTooLong;
    if (err != ChainError::kNone) {
      p.tx.Count(kStatErrors);
      if (err != ChainError::kBadHead) p.tx.ring.PushUsed(tc.head, 0);
      moved++;
      continue;
    }
    uint32_t frame_len = tc.len - hdr_len;
    Reserve r = ReserveRx(p, hdr_len + frame_len);
    if (r == Reserve::kShort || r == Reserve::kBroken) {
      p.tx.ring.Unpop(1);
      *rx_short = r == Reserve::kShort;
      break;
    }
    if (r == Reserve::kTooSmall) {  // the guest can never take this frame: drop it
      p.tx.Count(kStatDrops);
      p.tx.ring.PushUsed(tc.head, 0);
      moved++;
      continue;
    }

    SegmentCursor src(tx_segs_, tc.nseg);
    SegmentCursor dst(rx_segs_, rx_nsegs_);
    src.Skip(hdr_len);
    uint8_t hdr[kNetHdrMrg] = {};
    if (hdr_len == kNetHdrMrg) {
      uint16_t nbufs = static_cast<uint16_t>(rx_nbufs_);
      memcpy(hdr + kNetHdrNumBuffersOffset, &nbufs, 2);
    }
    dst.Write(hdr, hdr_len);
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

    uint32_t left = hdr_len + frame_len;
    for (int i = 0; i < rx_nbufs_; i++) {
      uint32_t len = left < rx_bufs_[i].cap ? left : rx_bufs_[i].cap;
      p.rx.ring.PushUsed(rx_bufs_[i].head, len);
      left -= len;
    }
    p.tx.ring.PushUsed(tc.head, 0);
    p.tx.Count(kStatPackets);
    p.tx.Count(kStatBytes, frame_len);
    p.rx.Count(kStatPackets);
    p.rx.Count(kStatBytes, frame_len);
    rx_nbufs_ = rx_nsegs_ = 0;
    moved++;
  }
  return moved;
}

void LoopbackPort::Service(const GuestMemory& mem, const NetSettings& settings, Queue& rx, Queue& tx,
                           const std::function<bool()>& should_stop,
                           const std::function<void(const std::string&)>& report) {
  if (!rx.Ready() || !tx.Ready()) return;
  Pass p{mem, settings, rx, tx, report};
  while (!should_stop()) {
    bool rx_short = false;
    int moved = Burst(p, &rx_short);
    // One publish and at most one call per queue per burst.
    if (rx.ring.PublishUsed()) rx.Call();
    if (tx.ring.PublishUsed()) tx.Call();
    if (rx.broken || tx.broken) return;
    if (moved > 0) continue;
    // Idle: ask the guest to kick us for what we wait on, then look once more (closes the race).
    if (rx_short ? rx.ring.ArmKickBeyondAvail() : tx.ring.ArmKick()) continue;
    return;
  }
}

}  // namespace vhost
