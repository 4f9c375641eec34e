#include "net/switch/forwarder.h"

#include <cstring>

#include "net/segment_cursor.h"

namespace vhost {

namespace {

constexpr uint32_t kEthernetHeader = 14;
// The largest frame forwarded (64 KiB of IP plus an Ethernet header with a VLAN tag): a guest's
// chain may claim more, and every copy of a flood would pay for it.
constexpr uint32_t kMaxFrame = 65535 + 18;

}  // namespace

void Forwarder::Add(Port* port) {
  if (port->group < 0) port->group = static_cast<int16_t>(port->number);
  ports_.push_back(port);
  by_number_[port->number] = port;
}

void Forwarder::Remove(Port* port) {
  table_.ForgetPort(port->number);
  by_number_[port->number] = nullptr;
  for (size_t i = 0; i < ports_.size(); i++) {
    if (ports_[i] != port) continue;
    ports_.erase(ports_.begin() + static_cast<long>(i));
    break;
  }
  ndirty_ = 0;
}

int Forwarder::Forward(Port& src, PairContext& c) {
  return WithLayout(c.tx.ring, [&](auto layout) {
    using L = typename decltype(layout)::type;
    return Burst<L>(src, c);
  });
}

template <typename L>
int Forwarder::Burst(Port& src, PairContext& c) {
  const uint32_t hdr = c.settings.hdr_len;
  int taken = 0;
  copy_src_ = &src;
  copy_tx_ = &c.tx;
  last_valid_ = false;
  while (taken < kBudget) {
    TxFrame::Result t = tx_.Next<L>(c.mem, c.settings, c.tx, c.report);
    if (t == TxFrame::Result::kNone) break;
    taken++;
    if (t == TxFrame::Result::kDropped) continue;
    const int nseg = tx_.chain().nseg;
    const uint32_t len = tx_.chain().len - hdr;
    if (len < kEthernetHeader || len > kMaxFrame) {
      c.tx.Count(len < kEthernetHeader ? kStatErrors : kStatDrops);
      tx_.Done<L>(c.tx);
      continue;
    }
    if (nseg == 1) {
      uint8_t* frame = tx_.segments()[0].ptr + hdr;
      __builtin_prefetch(frame);
      taken_[ntaken_++] = Taken{frame, len};
      tx_.Done<L>(c.tx);  // its used entry is published after the burst's copies
      continue;
    }
    RouteTaken(src, c);  // the frames before this one first
    held_src_ = &src;
    held_tx_ = &c.tx;
    // The MACs are read once: the guest may rewrite its buffer meanwhile, the decision stands.
    uint8_t macs[12];
    const Segment& first = tx_.segments()[0];
    if (first.len >= hdr + sizeof macs) {
      memcpy(macs, first.ptr + hdr, sizeof macs);
    } else {
      SegmentCursor head(tx_.segments(), nseg);
      head.Skip(hdr);
      head.Read(macs, sizeof macs);
    }
    ObserveFrame(c.tx, c.capture, tx_.segments(), nseg, hdr, len);
    src_segs_ = tx_.segments();
    src_nseg_ = nseg;
    Route(src, macs, hdr, len);
    tx_.Done<L>(c.tx);
    held_src_ = nullptr;
    held_tx_ = nullptr;
  }
  RouteTaken(src, c);
  if (c.capture) c.capture->EndBurst();
  RunCopies();  // before the TX used entries: the guest may reuse its buffers once they are published
  c.tx.PublishUsed();
  Flush();
  if (capture_) capture_->EndBurst();
  copy_src_ = nullptr;
  return taken;
}

void Forwarder::RouteTaken(Port& src, PairContext& c) {
  for (routing_ = 0; routing_ < ntaken_; routing_++) {
    const Taken& f = taken_[routing_];
    uint8_t macs[12];
    memcpy(macs, f.frame, sizeof macs);  // read once: the guest may rewrite its buffer meanwhile
    ObserveFrame(c.tx, c.capture, f.frame, f.len);
    injected_ = Segment{f.frame, 0, f.len};
    src_segs_ = &injected_;
    src_nseg_ = 1;
    Route(src, macs, 0, f.len);
  }
  ntaken_ = 0;
  routing_ = -1;
}

void Forwarder::Inject(Port& src, uint8_t* frame, uint32_t len) {
  if (len < kEthernetHeader || len > kMaxFrame) return;  // the injector checked: cannot happen
  last_valid_ = false;
  injected_ = Segment{frame, 0, len};
  src_segs_ = &injected_;
  src_nseg_ = 1;
  uint8_t macs[12];
  memcpy(macs, frame, sizeof macs);
  Route(src, macs, 0, len);
}

void Forwarder::Route(Port& src, const uint8_t macs[12], uint32_t src_hdr, uint32_t len) {
  const uint8_t* dst_mac = macs;
  const uint8_t* src_mac = macs + 6;
  int to = last_to_;
  if (!last_valid_ || memcmp(macs, last_macs_, sizeof last_macs_) != 0) {
    const uint64_t refused = table_.counters().refused;
    if (!(src_mac[0] & 1)) table_.Learn(src_mac, src.vlan, src.number);
    to = (dst_mac[0] & 1) ? MacTable::kNoPort : table_.Lookup(dst_mac, src.vlan);
    // Learning again would change nothing, unless it was refused (counted per frame).
    last_valid_ = table_.counters().refused == refused;
    memcpy(last_macs_, macs, sizeof last_macs_);
    last_to_ = to;
  }
  if (capture_) capture_->Put(src_segs_, src_nseg_, src_hdr, len);  // no room: counted by the ring
  if (to == MacTable::kNoPort) {
    flooded_++;
    for (Port* p : ports_)
      if (p->group != src.group && p->vlan == src.vlan) Deliver(*p, src_hdr, len);
  } else if (Port* dst = by_number_[to]; dst && dst->group != src.group) {
    Deliver(*dst, src_hdr, len);  // a frame to its own port (or group) is filtered, as a bridge does
  }
}

void Forwarder::Deliver(Port& dst, uint32_t src_hdr, uint32_t len) {
  if (dst.sink) {
    dst.sink->Send(src_segs_, src_nseg_, src_hdr, len);
    return;
  }
  Queue* rx = dst.rx.rx;
  if (!rx || !rx->Ready() || dst.faulted()) return;  // its guest is not up: nobody to drop for
  WithLayout(rx->ring, [&](auto layout) {
    using L = typename decltype(layout)::type;
    DeliverAs<L>(dst, src_hdr, len);
  });
}

template <typename L>
void Forwarder::DeliverAs(Port& dst, uint32_t src_hdr, uint32_t len) {
  Queue& rx = *dst.rx.rx;
  const uint32_t hdr = dst.rx.settings->hdr_len;
  RxReservation::Result r = rx_.Reserve<L>(*dst.rx.mem, *dst.rx.settings, rx, hdr + len, *dst.rx.report);
  if (r == RxReservation::Result::kBroken) return;
  if (r != RxReservation::Result::kOk) {
    rx.Count(kStatDrops);  // no room now (kShort) or ever (kTooSmall): this copy is lost, no one waits
    return;
  }
  held_dst_ = &dst;
  const int nseg = src_nseg_;
  const Segment& in = src_segs_[0];
  const Segment& out = rx_.first_segment();
  const bool whole = nseg == 1 && rx_.buffers() == 1 && out.len >= hdr + len;
  // A guest's frame (not an injected one, whose buffer is reused at once) waits for RunCopies.
  if (whole && copy_src_ && ncopies_ < kMaxCopies) {
    copies_[ncopies_++] = Copy{&dst, in.ptr + src_hdr, out.ptr, hdr, len};
    CountLength(rx, len);
  } else if (whole) {
    RunCopies();  // in order: a destination's frames are observed (and captured) as they arrive
    FillNetHeader(out.ptr, hdr, 1, nullptr);
    memmove(out.ptr + hdr, in.ptr + src_hdr, len);  // two devices may share one memory file
    ObserveFrame(rx, dst.rx.capture, out.ptr + hdr, len);
  } else {
    RunCopies();
    SegmentCursor from(src_segs_, nseg);
    from.Skip(src_hdr);
    SegmentCursor to = rx_.Cursor();
    WriteNetHeader(to, hdr, rx_.buffers(), nullptr);
    SegmentCursor::Copy(from, to, len);
    ObserveFrame(rx, dst.rx.capture, rx_.segments(), rx_.segment_count(), hdr, len);
  }
  rx_.Commit<L>(rx, hdr + len);
  held_dst_ = nullptr;
  if (!dst.dirty) {
    dst.dirty = true;
    dirty_[ndirty_++] = &dst;
  }
}

void Forwarder::Flush() {
  for (int i = 0; i < ndirty_; i++) {
    Port& p = *dirty_[i];
    if (p.rx.capture) p.rx.capture->EndBurst();
    p.rx.rx->PublishUsed();
    p.dirty = false;
  }
  ndirty_ = 0;
}

void Forwarder::RunCopies() {
  for (copying_ = 0; copying_ < ncopies_; copying_++) CopyOne(copies_[copying_]);
  ncopies_ = 0;
  copying_ = -1;
}

void Forwarder::CopyOne(const Copy& j) {
  if (copy_src_->faulted() || j.dst->faulted()) return;  // after a fault in an earlier copy
  FillNetHeader(j.to, j.hdr, 1, nullptr);
  memmove(j.to + j.hdr, j.from, j.len);  // two devices may share one memory file
  ObserveBytes(*j.dst->rx.rx, j.dst->rx.capture, j.to + j.hdr, j.len);
}

void Forwarder::AfterFault() {
  if (ntaken_ > 0) {
    // Taken frames not routed yet are lost: the one in hand and those after it count as the sender's
    // drops (after a fault in its own walk or frame, nothing is counted: it is stopped).
    if (routing_ >= 0 && !copy_src_->faulted()) copy_tx_->Count(kStatDrops, ntaken_ - routing_);
    ntaken_ = 0;
    routing_ = -1;
  }
  if (ncopies_ > 0) {
    // Queued copies are owed all the same (their used entries are pushed): those after the one that
    // faulted, or all of them after a fault before RunCopies (none if the source's memory faulted).
    // The copy in hand is lost: counted as the sender's drop, as for a frame in hand.
    if (copying_ >= 0 && !copy_src_->faulted()) copy_tx_->Count(kStatDrops);
    for (int i = copying_ + 1; i < ncopies_; i++) CopyOne(copies_[i]);
    ncopies_ = 0;
    copying_ = -1;
  }
  if (held_dst_ && !held_dst_->faulted()) {
    Queue& rx = *held_dst_->rx.rx;
    WithLayout(rx.ring, [&](auto layout) { rx_.GiveBack<typename decltype(layout)::type>(rx); });
  }
  if (held_src_ && !held_src_->faulted()) {
    Queue& tx = *held_tx_;
    WithLayout(tx.ring, [&](auto layout) { tx_.Done<typename decltype(layout)::type>(tx); });
    tx.Count(kStatDrops);
    tx.PublishUsed();
  }
  // The burst's frames returned before the fault (their copies made) go back to the guest.
  if (copy_src_ && !copy_src_->faulted()) copy_tx_->PublishUsed();
  copy_src_ = nullptr;
  for (int i = 0; i < ndirty_; i++) {
    Port& p = *dirty_[i];
    if (!p.faulted()) p.rx.rx->PublishUsed();
    p.dirty = false;
  }
  ndirty_ = 0;
  held_src_ = held_dst_ = nullptr;
  held_tx_ = nullptr;
}

}  // namespace vhost
