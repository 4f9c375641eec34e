#include "net/ports/js.h"

#include <cerrno>
#include <cstring>

#include "net/ports/registry.h"
#include "net/segment_cursor.h"

namespace vhost {

int JsPort::OnFrameRings(std::shared_ptr<FrameRings> rings, int pair, std::string* err) {
  rings_ = std::move(rings);
  pair_ = pair;
  Clear();
  return 0;
}

void JsPort::OnReset() {
  if (rings_) Clear();
}

void JsPort::Clear() {
  to_head_ = from_tail_ = 0;
  broken_ = false;
  for (bool from_js : {false, true}) {
    FrameRingHeader& h = rings_->ring(pair_, from_js).header();
    __atomic_store_n(&h.head, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&h.tail, 0, __ATOMIC_RELEASE);
  }
}

void JsPort::Break(PairContext& c, const char* why) {
  broken_ = true;
  c.report("js port, pair " + std::to_string(pair_) + ": " + why + "; its frames stop until the front-end reconnects");
}

template <typename L>
int JsPort::ToJs(PairContext& c, bool* full) {
  const uint32_t hdr_len = c.settings.hdr_len;
  const bool consumer = __atomic_load_n(&rings_->flags().consumer, __ATOMIC_ACQUIRE) != 0;
  FrameRing ring = rings_->ring(pair_, false);
  int64_t room = consumer && !broken_ ? ring.Free(to_head_) : kBurst;
  if (room < 0) {
    Break(c, "the program moved its tail of the ring toward it out of reach");
    return 0;
  }
  int moved = 0, njobs = 0;
  uint32_t head = to_head_;
  *full = false;
  while (moved < kBurst) {
    if (room == 0) {
      *full = true;
      break;
    }
    TxFrame::Result t = tx_.Next<L>(c.mem, c.settings, c.tx, c.report);
    if (t == TxFrame::Result::kNone) break;
    moved++;
    if (t == TxFrame::Result::kDropped) continue;
    const uint32_t len = tx_.chain().len - hdr_len;
    if (!consumer || broken_ || len == 0 || len > rings_->slot_size()) {
      c.tx.Count(kStatDrops);  // nobody listens, or a frame no slot holds (the guest ignored the MTU)
      tx_.Done<L>(c.tx);
      continue;
    }
    const size_t off = rings_->slot_offset(pair_, false, head);
    uint8_t* slot = rings_->base() + off;
    const Segment& first = tx_.segments()[0];
    if (tx_.chain().nseg == 1) {
      jobs_[njobs++] = CopyJob{first.ptr + hdr_len, slot, len};
    } else {
      SegmentCursor src(tx_.segments(), tx_.chain().nseg);
      src.Skip(hdr_len);
      src.Read(slot, len);
      ObserveBytes(c.tx, c.capture, slot, len);
    }
    ring.desc(head) = FrameDesc{static_cast<uint32_t>(off), len};
    head++;
    room--;
    tx_.Done<L>(c.tx);
    CountLength(c.tx, len);  // the bytes are observed in the slot, once copied (net/frame_observer.h)
  }
  // Copies together after the walk (their misses overlap), then the frames go to JS at once.
  for (int i = 0; i < njobs; i++) {
    memcpy(jobs_[i].to, jobs_[i].from, jobs_[i].len);
    ObserveBytes(c.tx, c.capture, jobs_[i].to, jobs_[i].len);
  }
  if (head != to_head_) {
    __atomic_store_n(&ring.header().head, head, __ATOMIC_RELEASE);
    to_head_ = head;
  }
  return moved;
}

template <typename L>
int JsPort::FromJs(PairContext& c, bool* rx_short) {
  *rx_short = false;
  if (broken_) return 0;
  const uint32_t hdr_len = c.settings.hdr_len;
  FrameRing ring = rings_->ring(pair_, true);
  int64_t pending = ring.Pending(from_tail_);
  if (pending < 0) {
    Break(c, "the program moved its head of the ring from it out of reach");
    return 0;
  }
  int moved = 0, njobs = 0;
  uint32_t tail = from_tail_;
  while (moved < kBurst && pending > 0) {
    // Read once: the program may rewrite the descriptor while we look at it.
    FrameDesc& shared = ring.desc(tail);
    FrameDesc d{__atomic_load_n(&shared.offset, __ATOMIC_RELAXED), __atomic_load_n(&shared.len, __ATOMIC_RELAXED)};
    const uint8_t* frame = rings_->CheckFrame(d);
    if (!frame) {
      c.rx.Count(kStatErrors);
      tail++, pending--, moved++;
      continue;
    }
    RxReservation::Result r = rx_.Reserve<L>(c.mem, c.settings, c.rx, hdr_len + d.len, c.report);
    if (r == RxReservation::Result::kShort) *rx_short = true;
    if (r == RxReservation::Result::kShort || r == RxReservation::Result::kBroken) break;
    tail++, pending--, moved++;
    if (r == RxReservation::Result::kTooSmall) {
      c.rx.Count(kStatDrops);
      continue;
    }
    const Segment& out = rx_.first_segment();
    if (rx_.buffers() == 1 && out.len >= hdr_len + d.len) {
      jobs_[njobs++] = CopyJob{frame, out.ptr, d.len};
    } else {
      SegmentCursor dst = rx_.Cursor();
      WriteNetHeader(dst, hdr_len, rx_.buffers(), nullptr);
      dst.Write(frame, d.len);
      ObserveBytes(c.rx, c.capture, frame, d.len);  // the slot's bytes, as just written
    }
    rx_.Commit<L>(c.rx, hdr_len + d.len);
    CountLength(c.rx, d.len);
  }
  for (int i = 0; i < njobs; i++) {
    FillNetHeader(jobs_[i].to, hdr_len, 1, nullptr);
    memcpy(jobs_[i].to + hdr_len, jobs_[i].from, jobs_[i].len);
    ObserveBytes(c.rx, c.capture, jobs_[i].to + hdr_len, jobs_[i].len);
  }
  // Only now may JS reuse the slots: every byte of them has been read.
  if (tail != from_tail_) {
    __atomic_store_n(&ring.header().tail, tail, __ATOMIC_RELEASE);
    from_tail_ = tail;
  }
  return moved;
}

bool JsPort::Service(PairContext& c) {
  if (!rings_ || !c.rx.Ready() || !c.tx.Ready()) return false;
  return WithLayout(c.tx.ring, [&](auto layout) {
    using L = typename decltype(layout)::type;
    return ServeUntilIdle(c, true, true, [&] {
      bool to_full = false, rx_short = false;
      int moved = ToJs<L>(c, &to_full) + FromJs<L>(c, &rx_short);
      // Guest TX is waited on only while the ring toward JS has room: when it is full, the program
      // serves the port again as it takes frames.
      return BurstOutcome{moved, rx_short, !to_full};
    });
  });
}

std::unique_ptr<Port> MakeJs(const PortOptions&, PortError*) { return std::make_unique<JsPort>(); }

}  // namespace vhost
