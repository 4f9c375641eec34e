#include "net/switch/switch.h"

#include <time.h>

#include <cerrno>
#include <cstring>

#include "net/net_device.h"
#include "net/segment_cursor.h"

namespace vhost {

namespace {

constexpr uint32_t kEthernetHeader = 14;
// The largest frame forwarded (64 KiB of IP plus an Ethernet header with a VLAN tag): a guest's
// chain may claim more, and every copy of a flood would pay for it.
constexpr uint32_t kMaxFrame = 65535 + 18;
// Worker tags: the port number above the device's own tag (a queue index or kGroupTag + group).
constexpr int kPortShift = 17;
constexpr uint32_t kDeviceTagMask = (1u << kPortShift) - 1;

uint32_t NowSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint32_t>(ts.tv_sec);
}

std::string ThreadName() {
  static std::atomic<unsigned> switches{0};
  return "vhu-sw" + std::to_string(++switches % 10000);
}

}  // namespace

Switch::Switch(const Options& options)
    : poll_us_(options.poll_us), table_(options.max_macs, options.ageing_s), worker_(ThreadName()) {}

Switch::~Switch() {
  Shutdown();
  while (!members_.empty()) Remove(members_.back().get());
}

void Switch::Shutdown() {
  shut_down_ = true;
  worker_.Stop();
}

void Switch::Pause() {
  if (pauses_++ == 0) worker_.Stop();
}

void Switch::Resume() {
  if (--pauses_ == 0) Start();
}

Switch::Member* Switch::MemberOf(const VhostDevice* device) const {
  for (const auto& m : members_)
    if (static_cast<const VhostDevice*>(m->device) == device) return m.get();
  return nullptr;
}

int Switch::Attach(NetDevice* device, uint16_t vlan, int* port, std::string* err) {
  if (device->host()) {
    *err = device->host() == this ? "the device is on this switch already"
                                  : "the device is on another switch: detach it first";
    return EBUSY;
  }
  int free = 0;
  while (free < kMaxPorts && by_port_[free]) free++;
  if (free == kMaxPorts) {
    *err = "the switch has " + std::to_string(kMaxPorts) + " ports already";
    return ENOSPC;
  }
  Pause();
  int rc = device->JoinSwitch(this, free, err);
  if (rc == 0) {
    members_.push_back(std::make_unique<Member>(Member{device, free, vlan, PairRx{}}));
    by_port_[free] = members_.back().get();
    *port = free;
  }
  Resume();
  return rc;
}

void Switch::Remove(Member* m) {
  table_.ForgetPort(m->port);
  by_port_[m->port] = nullptr;
  m->device->LeaveSwitch();
  for (size_t i = 0; i < members_.size(); i++) {
    if (members_[i].get() != m) continue;
    members_.erase(members_.begin() + static_cast<long>(i));
    break;
  }
}

bool Switch::Detach(NetDevice* device) {
  Member* m = MemberOf(device);
  if (!m) return false;
  Pause();
  Remove(m);
  Resume();
  return true;
}

void Switch::Release(VhostDevice* device) {
  if (Member* m = MemberOf(device)) {
    Pause();
    Remove(m);
    Resume();
  }
}

void Switch::Forget(VhostDevice* device) {
  // Called inside the device's pause of this thread.
  if (Member* m = MemberOf(device)) table_.ForgetPort(m->port);
}

std::vector<Switch::PortInfo> Switch::Ports() const {
  std::vector<PortInfo> out;
  for (const auto& m : members_) out.push_back(PortInfo{m->port, m->vlan});
  return out;
}

std::vector<MacTable::Entry> Switch::MacEntries() {
  Pause();
  table_.Tick(NowSeconds());
  std::vector<MacTable::Entry> out = table_.Entries();
  Resume();
  return out;
}

Switch::Counters Switch::counters() {
  Pause();
  table_.Tick(NowSeconds());
  Counters c{table_.size(), table_.counters().refused, table_.counters().moves, flooded_};
  Resume();
  return c;
}

void Switch::Start() {
  if (shut_down_ || pauses_ > 0) return;
  std::vector<Worker::Watch> watches;
  for (const auto& m : members_) {
    m->rx = m->device->ReceiveSide(0);
    m->dirty = false;
    for (const Worker::Watch& w : m->device->HostWatches())
      watches.push_back(Worker::Watch{w.fd, static_cast<uint32_t>(m->port) << kPortShift | w.tag});
  }
  ndirty_ = 0;
  if (watches.empty()) return;  // no port has a ready queue: nothing to wake for
  const bool arm = poll_us_ == 0;
  auto stop = [this] { return worker_.stop_requested(); };
  auto handler = [this, arm, stop](uint32_t tag, bool kicked) {
    Member* m = by_port_[tag >> kPortShift];
    if (kicked && m) m->device->Signalled(tag & kDeviceTagMask);
    ServeRounds(arm, stop);
  };
  auto poll = [this, stop](bool arm_now) { return ServeRounds(arm_now, stop); };
  std::string err;
  if (worker_.Start(
          watches, handler, poll, poll_us_, [this] { OnFault(); }, &err) != 0)
    for (const auto& m : members_) (*m->rx.report)("switch: " + err);
}

// Rounds over every port, each one burst, the first port moving on by one each round, until a round
// moves nothing; then, when the thread is to sleep, one more round that asks each guest for a kick.
bool Switch::ServeRounds(bool arm, const std::function<bool()>& should_stop) {
  bool any = false;
  while (!should_stop() && !members_.empty()) {
    table_.Tick(NowSeconds());
    const size_t n = members_.size();
    bool moved = false;
    for (size_t k = 0; k < n && !should_stop(); k++)
      moved = members_[(next_ + k) % n]->device->ServeHosted(0, false, should_stop) || moved;
    next_ = (next_ + 1) % n;
    if (moved) {
      any = true;
      continue;
    }
    if (!arm) break;
    bool more = false;
    for (size_t k = 0; k < n; k++) more = members_[k]->device->ServeHosted(0, true, should_stop) || more;
    if (!more) break;
    any = true;
  }
  return any;
}

int Switch::Forward(int port, PairContext& c) {
  Member* src = port >= 0 && port < kMaxPorts ? by_port_[port] : nullptr;
  if (!src) return 0;
  return WithLayout(c.tx.ring, [&](auto layout) {
    using L = typename decltype(layout)::type;
    return Burst<L>(*src, c);
  });
}

template <typename L>
int Switch::Burst(Member& src, PairContext& c) {
  const uint32_t hdr = c.settings.hdr_len;
  int taken = 0;
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
    held_src_ = &src;
    held_tx_ = &c.tx;
    // The MACs are read once: the guest may rewrite its buffer meanwhile, the decision stands.
    uint8_t macs[12];
    SegmentCursor head(tx_.segments(), nseg);
    head.Skip(hdr);
    head.Read(macs, sizeof macs);
    ObserveFrame(c.tx, c.capture, tx_.segments(), nseg, hdr, len);
    const uint8_t* dst_mac = macs;
    const uint8_t* src_mac = macs + 6;
    if (!(src_mac[0] & 1)) table_.Learn(src_mac, src.vlan, src.port);
    const int to = (dst_mac[0] & 1) ? MacTable::kNoPort : table_.Lookup(dst_mac, src.vlan);
    if (to == MacTable::kNoPort) {
      flooded_++;
      for (const auto& m : members_)
        if (m.get() != &src && m->vlan == src.vlan) Deliver(*m, hdr, len);
    } else if (to != src.port && by_port_[to]) {
      Deliver(*by_port_[to], hdr, len);  // a frame to its own port is filtered, as a bridge does
    }
    tx_.Done<L>(c.tx);
    held_src_ = nullptr;
    held_tx_ = nullptr;
  }
  if (c.capture) c.capture->EndBurst();
  c.tx.PublishUsed();
  Flush();
  return taken;
}

void Switch::Deliver(Member& dst, uint32_t src_hdr, uint32_t len) {
  Queue* rx = dst.rx.rx;
  if (!rx || !rx->Ready() || dst.device->memory_faulted()) return;  // its guest is not up: nobody to drop for
  WithLayout(rx->ring, [&](auto layout) {
    using L = typename decltype(layout)::type;
    DeliverAs<L>(dst, src_hdr, len);
  });
}

template <typename L>
void Switch::DeliverAs(Member& dst, uint32_t src_hdr, uint32_t len) {
  Queue& rx = *dst.rx.rx;
  const uint32_t hdr = dst.rx.settings->hdr_len;
  RxReservation::Result r = rx_.Reserve<L>(*dst.rx.mem, *dst.rx.settings, rx, hdr + len, *dst.rx.report);
  if (r == RxReservation::Result::kBroken) return;
  if (r != RxReservation::Result::kOk) {
    rx.Count(kStatDrops);  // no room now (kShort) or ever (kTooSmall): this copy is lost, no one waits
    return;
  }
  held_dst_ = &dst;
  const int nseg = tx_.chain().nseg;
  const Segment& in = tx_.segments()[0];
  const Segment& out = rx_.first_segment();
  if (nseg == 1 && rx_.buffers() == 1 && out.len >= hdr + len) {
    FillNetHeader(out.ptr, hdr, 1, nullptr);
    memmove(out.ptr + hdr, in.ptr + src_hdr, len);  // two devices may share one memory file
    ObserveFrame(rx, dst.rx.capture, out.ptr + hdr, len);
  } else {
    SegmentCursor from(tx_.segments(), nseg);
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

void Switch::Flush() {
  for (int i = 0; i < ndirty_; i++) {
    Member& m = *dirty_[i];
    if (m.rx.capture) m.rx.capture->EndBurst();
    m.rx.rx->PublishUsed();
    m.dirty = false;
  }
  ndirty_ = 0;
}

void Switch::OnFault() {
  const void* addr = Worker::FaultAddress();
  bool found = false;
  for (const auto& m : members_) {
    if (!m->device->MapsHostAddress(addr)) continue;
    found = true;
    if (!m->device->memory_faulted()) m->device->MemoryFaulted();
  }
  if (!found) {  // not in any table (should not happen): stop both sides of the copy in hand
    for (Member* m : {held_src_, held_dst_})
      if (m && !m->device->memory_faulted()) m->device->MemoryFaulted();
  }
  // What the burst held on a side whose memory is fine goes back: the RX buffers untouched, the TX
  // frame as used (dropped: some ports may have had their copy). A fault in there too ends it.
  Worker::Recoverable([this] {
    if (held_dst_ && !held_dst_->device->memory_faulted()) {
      Queue& rx = *held_dst_->rx.rx;
      WithLayout(rx.ring, [&](auto layout) { rx_.GiveBack<typename decltype(layout)::type>(rx); });
    }
    if (held_src_ && !held_src_->device->memory_faulted()) {
      Queue& tx = *held_tx_;
      WithLayout(tx.ring, [&](auto layout) { tx_.Done<typename decltype(layout)::type>(tx); });
      tx.Count(kStatDrops);
      tx.PublishUsed();
    }
    for (int i = 0; i < ndirty_; i++) {
      Member& m = *dirty_[i];
      if (!m.device->memory_faulted()) m.rx.rx->PublishUsed();
      m.dirty = false;
    }
  });
  ndirty_ = 0;
  held_src_ = held_dst_ = nullptr;
  held_tx_ = nullptr;
}

}  // namespace vhost
