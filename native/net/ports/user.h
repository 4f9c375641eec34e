// The user port: the guest is on a user-mode network made by libslirp (net/slirp_loop.h), with no
// root: DHCP, DNS, ARP, and TCP, UDP and ICMP echo to whatever the host reaches, through host sockets;
// host -> guest forwards. One libslirp stack per device, so one queue pair (lib/net/ports/user.ts).
// Guest TX: each frame is copied out of guest memory into one buffer, then given to libslirp (which
// parses it in place: it must not change under it, nor fault). Guest RX: what libslirp sends waits in
// the stack's backlog and is copied into guest buffers after each call into libslirp; a full backlog
// drops (counted in RX drops). libslirp takes and makes whole frames with valid checksums: the guest's
// partial checksums and TSO frames are completed and cut here (net/software_offload.h), and frames to
// the guest are marked DATA_VALID when it took GUEST_CSUM.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "net/dns_redirect.h"
#include "net/port.h"
#include "net/rx_reservation.h"
#include "net/slirp_loop.h"
#include "net/software_offload.h"
#include "net/tx_frame.h"
#include "net/virtio_net.h"

namespace vhost {

class UserPort : public Port {
 public:
  // `dns`: the --dns rewrite, or null.
  UserPort(std::unique_ptr<SlirpLoop> loop, std::unique_ptr<DnsRedirect> dns);
  const char* name() const override { return "user"; }
  bool Service(PairContext& c) override;
  std::vector<int> WatchFds() const override { return {loop_->fd()}; }
  // The guest's frames still waiting are its own business no more; the stack (leases, forwards,
  // connections) stays, as QEMU's -netdev user does across a guest reboot.
  void OnReset() override { loop_->backlog().Clear(); }
  // "tcp:HOSTADDR:HOSTPORT:GUESTADDR:GUESTPORT" to open (or udp:), "tcp:HOSTADDR:HOSTPORT" to close.
  int OnForward(bool add, const std::string& spec, std::string* err) override;
  int OnFeatures(uint64_t features, const NetSettings& settings, std::string* err) override;
  // DEVICE_STATE: the open forwards and libslirp's own state; a load takes in libslirp's (the
  // forwards come through OnForward, one by one, since each may find its host port taken).
  void SaveState(PortState* out) override;
  int LoadState(const PortState& in, std::string* err) override;

 private:
  static constexpr int kBurst = 32;
  // Passes in one Service call in which sockets were ready but no frame moved: libslirp asked for an
  // fd it then did not take from. Past this many the worker sleeps until the next wake-up.
  static constexpr int kMaxStuckPasses = 64;
  // The largest frame libslirp takes or makes: its MTU is at most 65521, plus the Ethernet header.
  static constexpr size_t kMaxFrame = 65536;
  // The largest guest frame: a TSO frame is an IP packet of up to 65535 bytes after its Ethernet
  // header (and a VLAN tag).
  static constexpr size_t kMaxTsoFrame = 65535 + 18;

  template <typename L>
  int FromGuest(PairContext& c);
  template <typename L>
  int ToGuest(PairContext& c, bool* rx_short);
  // One guest frame (in frame_) into libslirp, its offloads done; false when they could not be.
  bool ToStack(const NetOffload& o, uint32_t len);
  void Input(uint8_t* frame, size_t len);

  std::unique_ptr<SlirpLoop> loop_;
  std::unique_ptr<DnsRedirect> dns_;
  TxFrame tx_;
  RxReservation rx_;
  std::vector<uint8_t> frame_;    // one guest frame, out of the guest's reach
  std::vector<uint8_t> segment_;  // one segment of a TSO frame
  TcpSegmenter segmenter_;
  bool tso_ = false;                    // the guest negotiated HOST_TSO4 or HOST_TSO6
  uint8_t rx_header_[kNetHdrMrg] = {};  // the header of every frame to the guest
  int stuck_passes_ = 0;
  // The open forwards: (proto:host:hostport, the whole spec OnForward was given), in opening order.
  std::vector<std::pair<std::string, std::string>> forwards_;
};

}  // namespace vhost
