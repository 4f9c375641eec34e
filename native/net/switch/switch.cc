#include "net/switch/switch.h"

#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "net/net_device.h"

namespace vhost {

namespace {

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
    : poll_us_(options.poll_us), forwarder_(options.max_macs, options.ageing_s), worker_(ThreadName()) {}

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

int Switch::FreePort(std::string* err) const {
  int free = 0;
  while (free < kMaxPorts && forwarder_.port(free)) free++;
  if (free == kMaxPorts) *err = "the switch has " + std::to_string(kMaxPorts) + " ports already";
  return free;
}

int Switch::Attach(NetDevice* device, uint16_t vlan, int* port, std::string* err) {
  if (device->host()) {
    *err = device->host() == this ? "the device is on this switch already"
                                  : "the device is on another switch: detach it first";
    return EBUSY;
  }
  const int free = FreePort(err);
  if (free == kMaxPorts) return ENOSPC;
  Pause();
  int rc = device->JoinSwitch(this, free, err);
  if (rc == 0) {
    auto m = std::make_unique<Member>();
    m->device = device;
    m->own.number = free;
    m->own.vlan = vlan;
    m->own.device = device;
    forwarder_.Add(&m->own);
    members_.push_back(std::move(m));
    *port = free;
  }
  Resume();
  return rc;
}

int Switch::AttachTap(const std::string& ifname, uint16_t vlan, int* port, std::string* err) {
  for (const auto& m : members_)
    if (m->tap && m->tap->ifname() == ifname) {
      *err = "tap " + ifname + " is a port of this switch already";
      return EBUSY;
    }
  const int free = FreePort(err);
  if (free == kMaxPorts) return ENOSPC;
  int err_no = 0;
  std::unique_ptr<TapUplink> tap = TapUplink::Open(ifname, EventReporter(), &err_no, err);
  if (!tap) return err_no;
  Pause();
  auto m = std::make_unique<Member>();
  m->tap = std::move(tap);
  m->port().number = free;
  m->port().vlan = vlan;
  forwarder_.Add(&m->port());
  members_.push_back(std::move(m));
  *port = free;
  Resume();
  return 0;
}

Reporter Switch::EventReporter() {
  return [this](const std::string& what) {
    std::lock_guard<std::mutex> lock(events_mu_);
    if (events_.size() < 64) events_.push_back(what);
  };
}

bool Switch::Member::Has(int number) const {
  if (!vxlan) return (tap ? tap->port() : own).number == number;
  for (size_t i = 0; i < vxlan->remotes(); i++)
    if (vxlan->port(i).number == number) return true;
  return false;
}

int Switch::AttachVxlan(const VxlanUplink::Config& config, uint16_t vlan, std::vector<int>* ports, uint32_t* mtu,
                        std::string* err) {
  int err_no = 0;
  std::unique_ptr<VxlanUplink> vxlan = VxlanUplink::Open(config, EventReporter(), &err_no, err);
  if (!vxlan) return err_no;
  std::vector<int> free;
  for (int n = 0; n < kMaxPorts && free.size() < vxlan->remotes(); n++)
    if (!forwarder_.port(n)) free.push_back(n);
  if (free.size() < vxlan->remotes()) {
    *err = "the switch has no room for " + std::to_string(vxlan->remotes()) + " more ports";
    return ENOSPC;
  }
  Pause();
  auto m = std::make_unique<Member>();
  m->vxlan = std::move(vxlan);
  for (size_t i = 0; i < m->vxlan->remotes(); i++) {
    Forwarder::Port& p = m->vxlan->port(i);
    p.number = free[i];
    p.vlan = vlan;
    p.group = static_cast<int16_t>(free[0]);  // split horizon: remotes never forward to each other
    forwarder_.Add(&p);
  }
  *ports = free;
  *mtu = m->vxlan->mtu();
  members_.push_back(std::move(m));
  Resume();
  return 0;
}

bool Switch::DetachVxlan(int port) {
  for (const auto& m : members_) {
    if (!m->vxlan || !m->Has(port)) continue;
    Pause();
    Remove(m.get());
    Resume();
    return true;
  }
  return false;
}

bool Switch::VxlanStats(int port, std::vector<uint64_t>* out, std::vector<uint64_t>* drops) {
  for (const auto& m : members_) {
    if (!m->vxlan) continue;
    for (size_t i = 0; i < m->vxlan->remotes(); i++) {
      if (m->vxlan->port(i).number != port) continue;
      const uint64_t* s = m->vxlan->stats(i);
      out->assign(s, s + 2 * kStatsStride);  // relaxed counters, as a tap's
      drops->assign(m->vxlan->drops(), m->vxlan->drops() + VxlanUplink::kDropCauses);
      return true;
    }
  }
  return false;
}

bool Switch::DetachTap(int port) {
  for (const auto& m : members_) {
    if (!m->tap || m->port().number != port) continue;
    Pause();
    Remove(m.get());
    Resume();
    return true;
  }
  return false;
}

bool Switch::TapStats(int port, std::vector<uint64_t>* out) {
  for (const auto& m : members_) {
    if (!m->tap || m->port().number != port) continue;
    const uint64_t* s = m->tap->stats();
    out->assign(s, s + 2 * kStatsStride);  // relaxed counters, as a device's: no pause needed
    return true;
  }
  return false;
}

void Switch::SetCapture(std::shared_ptr<Capture> capture) {
  Pause();
  capture_ = std::move(capture);
  forwarder_.set_capture(capture_ ? &capture_->ring(0) : nullptr);
  Resume();
}

std::vector<std::string> Switch::TakeEvents() {
  std::lock_guard<std::mutex> lock(events_mu_);
  return std::move(events_);
}

void Switch::Remove(Member* m) {
  if (m->vxlan)
    for (size_t i = 0; i < m->vxlan->remotes(); i++) forwarder_.Remove(&m->vxlan->port(i));
  else forwarder_.Remove(&m->port());
  if (m->device) m->device->LeaveSwitch();
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
  if (Member* m = MemberOf(device)) forwarder_.table().ForgetPort(m->own.number);
}

std::vector<Switch::PortInfo> Switch::Ports() const {
  std::vector<PortInfo> out;
  for (const auto& m : members_) {
    if (!m->vxlan) out.push_back(PortInfo{m->port().number, m->port().vlan, m->tap ? m->tap->ifname() : "", ""});
    for (size_t i = 0; m->vxlan && i < m->vxlan->remotes(); i++)
      out.push_back(PortInfo{m->vxlan->port(i).number, m->vxlan->port(i).vlan, "", m->vxlan->remote_text(i)});
  }
  return out;
}

std::vector<MacTable::Entry> Switch::MacEntries() {
  Pause();
  forwarder_.table().Tick(NowSeconds());
  std::vector<MacTable::Entry> out = forwarder_.table().Entries();
  Resume();
  return out;
}

Switch::Counters Switch::counters() {
  Pause();
  MacTable& t = forwarder_.table();
  t.Tick(NowSeconds());
  Counters c{t.size(), t.counters().refused, t.counters().moves, forwarder_.flooded()};
  Resume();
  return c;
}

void Switch::Start() {
  if (shut_down_ || pauses_ > 0) return;
  std::vector<Worker::Watch> watches;
  for (const auto& m : members_) {
    const uint32_t base = static_cast<uint32_t>(m->port().number) << kPortShift;
    if (m->tap || m->vxlan) {
      watches.push_back(Worker::Watch{m->tap ? m->tap->fd() : m->vxlan->fd(), base});
      continue;
    }
    m->own.rx = m->device->ReceiveSide(0);
    m->own.dirty = false;
    for (const Worker::Watch& w : m->device->HostWatches()) watches.push_back(Worker::Watch{w.fd, base | w.tag});
  }
  if (watches.empty()) return;  // no port has a ready queue: nothing to wake for
  const bool arm = poll_us_ == 0;
  const std::function<bool()> stop = [this] { return worker_.stop_requested(); };
  auto handler = [this, arm, stop](uint32_t tag, bool kicked) {
    Forwarder::Port* p = forwarder_.port(static_cast<int>(tag >> kPortShift));
    if (kicked && p && p->device) p->device->Signalled(tag & kDeviceTagMask);
    ServeRounds(arm, stop);
  };
  auto poll = [this, stop](bool arm_now) { return ServeRounds(arm_now, stop); };
  std::string err;
  if (worker_.Start(
          watches, handler, poll, poll_us_, [this] { OnFault(); }, &err) != 0)
    for (const auto& m : members_)
      if (m->own.rx.report) (*m->own.rx.report)("switch: " + err);
}

// Rounds over every port, each one burst, the first port moving on by one each round, until a round
// moves nothing; then, when the thread is to sleep, one more round that asks each guest for a kick.
bool Switch::ServeRounds(bool arm, const std::function<bool()>& should_stop) {
  bool any = false;
  if (!announcements_.empty()) SendAnnouncements();
  while (!should_stop() && !members_.empty()) {
    forwarder_.table().Tick(NowSeconds());
    const size_t n = members_.size();
    bool moved = false;
    for (size_t k = 0; k < n && !should_stop(); k++)
      moved = ServeMember(*members_[(next_ + k) % n], false, should_stop) || moved;
    next_ = (next_ + 1) % n;
    if (moved) {
      any = true;
      continue;
    }
    if (!arm) break;
    bool more = false;
    for (size_t k = 0; k < n; k++) more = ServeMember(*members_[k], true, should_stop) || more;
    if (!more) break;
    any = true;
  }
  return any;
}

bool Switch::ServeMember(Member& m, bool arm, const std::function<bool()>& should_stop) {
  // The tap's fd is edge-triggered: a round that read nothing from it read it empty, no arming.
  if (m.tap) return !arm && m.tap->Receive(forwarder_) > 0;
  if (m.vxlan) return !arm && m.vxlan->Receive(forwarder_) > 0;
  return m.device->ServeHosted(0, arm, should_stop);
}

void Switch::Announce(int port, const uint8_t* frame, uint32_t len) {
  if (announcements_.size() < kMaxAnnouncements)
    announcements_.push_back(Announced{port, std::vector<uint8_t>(frame, frame + len)});
}

std::vector<std::array<uint8_t, 6>> Switch::MacsOf(int port) {
  MacTable& table = forwarder_.table();
  table.Tick(NowSeconds());
  std::vector<std::array<uint8_t, 6>> out;
  for (const MacTable::Entry& e : table.Entries()) {
    if (e.port != port) continue;
    std::array<uint8_t, 6> mac;
    memcpy(mac.data(), e.mac, mac.size());
    out.push_back(mac);
  }
  return out;
}

void Switch::Learn(int port, const std::vector<std::array<uint8_t, 6>>& macs) {
  Forwarder::Port* p = forwarder_.port(port);
  if (!p) return;
  MacTable& table = forwarder_.table();
  table.Tick(NowSeconds());
  for (const auto& mac : macs)
    if ((mac[0] & 1) == 0) table.Learn(mac.data(), p->vlan, port);  // unicast only, as the forwarder learns
}

void Switch::SendAnnouncements() {
  // Moved out first: a fault in the middle must not leave the list to be sent again.
  std::vector<Announced> pending = std::move(announcements_);
  announcements_.clear();
  for (Announced& a : pending) {
    Forwarder::Port* p = forwarder_.port(a.port);
    if (p && !p->faulted()) forwarder_.Inject(*p, a.frame.data(), static_cast<uint32_t>(a.frame.size()));
  }
  forwarder_.EndInjected();
}

int Switch::Forward(int port, PairContext& c) {
  Forwarder::Port* src = forwarder_.port(port);
  return src ? forwarder_.Forward(*src, c) : 0;
}

void Switch::OnFault() {
  const void* addr = Worker::FaultAddress();
  bool found = false;
  for (const auto& m : members_) {
    if (!m->device || !m->device->MapsHostAddress(addr)) continue;
    found = true;
    if (!m->device->memory_faulted()) m->device->MemoryFaulted();
  }
  if (!found) {  // in no device's table (should not happen): stop both sides of the copy in hand
    for (Forwarder::Port* p : {forwarder_.held_source(), forwarder_.held_destination()})
      if (p && !p->faulted()) p->device->MemoryFaulted();
  }
  // Returning what the burst held touches the other side's memory: a fault in there too ends it.
  Worker::Recoverable([this] { forwarder_.AfterFault(); });
}

}  // namespace vhost
