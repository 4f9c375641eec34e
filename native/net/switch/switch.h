// A MAC-learning switch of several devices, inside the process. Each attached device (port
// 'switch', one queue pair, no workers of its own) is one port of the switch, in one access VLAN.
// One thread, the switch's, serves every port (core/device.h DeviceHost): in rounds, each port in
// turn gets one burst of at most Forwarder::kBudget of its guest's TX frames (a guest that floods
// gets its share, no more), forwarded by net/switch/forwarder.h. No JS and no lock per frame: only
// the switch thread touches the ports' rings while it runs, and every control change of a port's
// device (memory table, rings, reset, close) pauses the thread around it, as a device's own workers
// are stopped. Attach and detach pause it likewise. A tap interface can be a port too (TapUplink:
// its fd in the same thread's set, one burst of reads per round), and the whole switch can be
// captured (SetCapture: every frame once, as it enters).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/worker.h"
#include "net/capture.h"
#include "net/port.h"
#include "net/switch/forwarder.h"
#include "net/switch/mac_table.h"
#include "net/switch/tap_uplink.h"
#include "net/switch/vxlan_uplink.h"

namespace vhost {

class NetDevice;

class Switch final : public DeviceHost {
 public:
  static constexpr int kMaxPorts = Forwarder::kMaxPorts;

  struct Options {
    uint32_t max_macs;
    uint32_t ageing_s;
    uint32_t poll_us;  // busy-poll budget of the thread, as a device's workers (0: event-driven)
  };
  struct Counters {
    uint64_t macs;     // entries in the table now
    uint64_t refused;  // new MACs not learnt: table full
    uint64_t moves;    // MACs relearnt on another port
    uint64_t flooded;  // frames sent to every other port of their VLAN
  };
  struct PortInfo {
    int port;
    uint16_t vlan;
    std::string tap;    // the tap uplink's interface, or empty for a device
    std::string vxlan;  // a VXLAN uplink's remote ("address:port"), or empty
  };

  explicit Switch(const Options& options);
  // Detaches every device and stops the thread.
  ~Switch();
  Switch(const Switch&) = delete;
  Switch& operator=(const Switch&) = delete;

  // Control thread. Attaches `device` as a new port in `vlan`; returns 0 with *port set, or an errno
  // with *err (EBUSY: on a switch already; EINVAL: not a switch port's device; ENOSPC: full).
  int Attach(NetDevice* device, uint16_t vlan, int* port, std::string* err);
  // Detaches it (its MACs forgotten at once); false when it is not attached here.
  bool Detach(NetDevice* device);
  // Control thread. Opens the tap `ifname` (creating it if absent) as a new port in `vlan`; returns 0
  // with *port set, or an errno with *err. DetachTap closes it (false: no tap port of that number).
  int AttachTap(const std::string& ifname, uint16_t vlan, int* port, std::string* err);
  bool DetachTap(int port);
  // A tap port's counters (2 x kStatsStride: to the tap, from it) copied into *out; false if none.
  bool TapStats(int port, std::vector<uint64_t>* out);
  // Control thread. Opens a VXLAN uplink (its remotes ports in `vlan`, one split-horizon group);
  // returns 0 with *ports (one per remote, in order) and *mtu (the largest guest MTU the underlay
  // carries), or an errno with *err. DetachVxlan closes the uplink one of whose ports is `port`.
  int AttachVxlan(const VxlanUplink::Config& config, uint16_t vlan, std::vector<int>* ports, uint32_t* mtu,
                  std::string* err);
  bool DetachVxlan(int port);
  // A VXLAN remote's counters as TapStats; *drops: its uplink's datagrams dropped per cause.
  bool VxlanStats(int port, std::vector<uint64_t>* out, std::vector<uint64_t>* drops);
  // Control thread. Every frame entering the switch recorded once in ring 0 of `capture` (null: stop);
  // the switch keeps it mapped while attached.
  void SetCapture(std::shared_ptr<Capture> capture);
  const std::shared_ptr<Capture>& capture() const { return capture_; }
  // What the switch itself reported (a tap gone), oldest first, emptied.
  std::vector<std::string> TakeEvents();
  std::vector<PortInfo> Ports() const;
  std::vector<MacTable::Entry> MacEntries();
  Counters counters();
  // Stops the thread for good (environment teardown); the devices stay attached, unserved.
  void Shutdown();

  // DeviceHost, called by the attached devices on the control thread.
  void Pause() override;
  void Resume() override;
  void Forget(VhostDevice* device) override;
  void Release(VhostDevice* device) override;

  // From the switch port of `port`'s device, the thread paused (Port::OnAnnounce): `frame` enters the
  // switch from that port when the thread next runs, as if its guest had sent it, so the MAC is
  // learnt there and every other port of its VLAN hears it. At most kMaxAnnouncements wait.
  void Announce(int port, const uint8_t* frame, uint32_t len);
  static constexpr size_t kMaxAnnouncements = 64;

  // DEVICE_STATE, from the switch port of `port`'s device, the thread paused: the unicast MACs learnt
  // behind that port, and learning `macs` there (in its VLAN, fresh) as if its guest had sent from
  // them (a full table refuses, and counts, as ever).
  std::vector<std::array<uint8_t, 6>> MacsOf(int port);
  void Learn(int port, const std::vector<std::array<uint8_t, 6>>& macs);

  // On the switch thread, from the switch port of `port`'s device (its Service, with the device's
  // own pair context): forwards one burst of that guest's TX frames. Returns the chains taken.
  int Forward(int port, PairContext& c);

 private:
  // A port: a device (port refreshed from it whenever the thread starts) or a tap uplink (its own);
  // or a VXLAN uplink, one port per remote (port(): the first).
  struct Member {
    NetDevice* device = nullptr;
    Forwarder::Port own;  // a device's
    std::unique_ptr<TapUplink> tap;
    std::unique_ptr<VxlanUplink> vxlan;
    Forwarder::Port& port() { return tap ? tap->port() : vxlan ? vxlan->port(0) : own; }
    bool Has(int port) const;
  };

  int FreePort(std::string* err) const;
  Reporter EventReporter();
  // One burst of the member's frames; `arm`: the thread is about to sleep (ask a guest for a kick).
  bool ServeMember(Member& m, bool arm, const std::function<bool()>& should_stop);
  void Start();
  Member* MemberOf(const VhostDevice* device) const;
  void Remove(Member* m);
  bool ServeRounds(bool arm, const std::function<bool()>& should_stop);
  // On the thread: the announcements waiting, injected from their ports.
  void SendAnnouncements();
  // After a SIGBUS survived: the device whose memory it was stops; what the burst held is returned.
  void OnFault();

  const uint32_t poll_us_;
  Forwarder forwarder_;
  std::vector<std::unique_ptr<Member>> members_;  // in attach order: the round-robin order
  Worker worker_;
  int pauses_ = 0;
  bool shut_down_ = false;
  size_t next_ = 0;  // where the next round starts
  std::shared_ptr<Capture> capture_;
  struct Announced {
    int port;
    std::vector<uint8_t> frame;
  };
  std::vector<Announced> announcements_;  // written paused, read by the thread
  std::mutex events_mu_;
  std::vector<std::string> events_;
};

}  // namespace vhost
