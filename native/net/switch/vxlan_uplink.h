// The switch's VXLAN uplink (RFC 7348): one UDP socket and one VNI joining the switch to other
// hosts, Linux vxlan devices or other switches. Each remote is a port of its own (a Forwarder::Sink),
// so the MAC table learns which remote a MAC sits behind and a learnt unicast frame goes to that
// remote alone; a flood goes to every remote (head-end replication). The remotes of one uplink form
// one split-horizon group (Forwarder::Port::group): a frame from one remote never goes to another,
// as the remotes reach each other directly.
//
// Not a guest: the socket is in the switch thread's watch set; one recvmmsg burst of datagrams per
// round lands in buffers of ours and each inner frame is forwarded from there. Frames to a remote go
// out with one sendmsg straight from the sending guest's TX buffers (the 8-byte header, then the
// frame: no copy of ours); a full socket buffer loses the frame (counted), never stalls the thread.
// Datagrams that are not ours (from an address that is no remote, short, without the I flag, of
// another VNI, an inner frame longer than the uplink forwards) are dropped, counted per cause and
// reported once per cause.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/report.h"
#include "core/virtqueue.h"
#include "net/switch/forwarder.h"
#include "net/vxlan_header.h"

namespace vhost {

class VxlanUplink {
 public:
  struct Endpoint {
    std::string address;  // IPv4 or IPv6 text; empty (local only): any address of the family
    uint16_t port;
  };
  struct Config {
    Endpoint local;
    std::vector<Endpoint> remotes;  // 1..Forwarder::kMaxPorts, one family, different addresses
    uint32_t vni;
  };
  // Drops by cause, counted over the whole uplink (kVxlanOk's slot: from no remote's address).
  static constexpr int kDropCauses = static_cast<int>(VxlanVerdict::kCount);
  static constexpr int kUnknownSource = static_cast<int>(VxlanVerdict::kOk);

  // Binds the socket and measures the path MTU toward every remote. Returns null with *err_no, *err.
  static std::unique_ptr<VxlanUplink> Open(const Config& config, Reporter report, int* err_no, std::string* err);
  ~VxlanUplink();
  VxlanUplink(const VxlanUplink&) = delete;
  VxlanUplink& operator=(const VxlanUplink&) = delete;

  int fd() const { return fd_; }
  // The largest MTU a guest may use: the smallest underlay MTU toward a remote minus the overhead.
  uint32_t mtu() const { return mtu_; }
  size_t remotes() const { return remotes_.size(); }
  Forwarder::Port& port(size_t i) { return remotes_[i]->port; }
  const Forwarder::Port& port(size_t i) const { return remotes_[i]->port; }
  // "address:port" ("[v6]:port") of remote i.
  const std::string& remote_text(size_t i) const { return remotes_[i]->text; }
  const std::string& local_text() const { return local_text_; }
  // Remote i's counters, kStatsStride apart: [0] to it (its "rx"), [1] from it (its "tx").
  const uint64_t* stats(size_t i) const { return remotes_[i]->stats; }
  // Datagrams dropped per cause (index: VxlanVerdict; kUnknownSource for kOk's slot).
  const uint64_t* drops() const { return drops_; }

  // Switch thread: one burst of up to Forwarder::kBudget datagrams, each inner frame forwarded.
  // Returns the datagrams read.
  int Receive(Forwarder& forwarder);

 private:
  struct Remote final : Forwarder::Sink {
    VxlanUplink* uplink = nullptr;
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    std::string text;
    Forwarder::Port port;
    alignas(64) uint64_t stats[2 * kStatsStride] = {};
    Queue to, from;  // counting only: their stats point into stats
    bool send_error_reported = false;
    void Send(const Segment* segs, int nseg, uint32_t skip, uint32_t len) override;
  };

  VxlanUplink(int fd, const Config& config, Reporter report);
  void SendTo(Remote& r, const Segment* segs, int nseg, uint32_t skip, uint32_t len);
  Remote* RemoteOf(const sockaddr_storage& from) const;
  void Drop(int cause, Remote* r, const sockaddr_storage& from);

  int fd_;
  uint32_t vni_;
  uint32_t mtu_ = 0;
  uint32_t max_frame_ = 0;  // the longest inner frame received: mtu_ + an Ethernet header and a VLAN tag
  uint32_t slot_ = 0;       // bytes per receive buffer: a datagram one byte longer is seen truncated
  std::string local_text_;
  Reporter report_;
  uint8_t header_[kVxlanHeader];
  std::vector<std::unique_ptr<Remote>> remotes_;
  std::unique_ptr<uint8_t[]> buffers_;  // Forwarder::kBudget slots
  uint64_t drops_[kDropCauses] = {};
  bool reported_[kDropCauses] = {};
  bool read_error_reported_ = false;
};

}  // namespace vhost
