// The user port: the guest is on a user-mode network made by libslirp (net/slirp_loop.h), with no
// root: DHCP, DNS, ARP, and TCP, UDP and ICMP echo to whatever the host reaches, through host sockets;
// host -> guest forwards. One libslirp stack per device, so one queue pair (lib/net/ports/user.ts).
// Guest TX: each frame is copied out of guest memory into one buffer, then given to libslirp (which
// parses it in place: it must not change under it, nor fault). Guest RX: what libslirp sends waits in
// the stack's backlog and is copied into guest buffers after each call into libslirp; a full backlog
// drops (counted in RX drops). No offloads: libslirp takes and makes whole frames with valid checksums.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "net/dns_redirect.h"
#include "net/port.h"
#include "net/rx_reservation.h"
#include "net/slirp_loop.h"
#include "net/tx_frame.h"

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

 private:
  static constexpr int kBurst = 32;
  // Passes in one Service call in which sockets were ready but no frame moved: libslirp asked for an
  // fd it then did not take from. Past this many the worker sleeps until the next wake-up.
  static constexpr int kMaxStuckPasses = 64;
  // The largest frame either way: libslirp's MTU is at most 65521, plus the Ethernet header.
  static constexpr size_t kMaxFrame = 65536;

  template <typename L>
  int FromGuest(PairContext& c);
  template <typename L>
  int ToGuest(PairContext& c, bool* rx_short);

  std::unique_ptr<SlirpLoop> loop_;
  std::unique_ptr<DnsRedirect> dns_;
  TxFrame tx_;
  RxReservation rx_;
  std::vector<uint8_t> frame_;  // one guest frame, out of the guest's reach
  int stuck_passes_ = 0;
};

}  // namespace vhost
