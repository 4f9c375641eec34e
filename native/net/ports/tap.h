// The tap port: the device's frames go to a Linux tap interface and come from it
// (/dev/net/tun, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE: each queue pair's port opens
// its own queue of the same interface, attached while the pair is active). The virtio-net header passes through
// unchanged in both directions, so checksum and segmentation offloads the guest negotiated are
// done by the host kernel, never in software here; the tap is told which offloads the guest can
// receive (TUNSETOFFLOAD) and how long the header is (TUNSETVNETHDRSZ).
// Guest TX: written straight from guest memory with writev (no copy). Guest RX: read into a bounce
// buffer, then copied into the guest's buffers (mergeable where negotiated).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "net/port.h"
#include "net/rx_reservation.h"
#include "net/tx_frame.h"

namespace vhost {

class TapPort : public Port {
 public:
  // Opens (creating it if absent) the tap interface `ifname`. Returns null with *err set.
  static std::unique_ptr<TapPort> Open(const std::string& ifname, int* err_no, std::string* err);
  // Opens one queue of the tap `ifname` (creating it if absent): non-blocking, `hdr_len` bytes of
  // virtio-net header each way, no offloads yet. Returns the fd, or -1 with *err_no and *err set.
  // The switch's tap uplink (net/switch/tap_uplink.h) opens its tap with this too.
  static int OpenQueue(const std::string& ifname, int hdr_len, int* err_no, std::string* err);
  // Tells a tap queue the virtio-net header length and the offloads the negotiated `features` let it
  // hand to the guest (TUNSETVNETHDRSZ, TUNSETOFFLOAD). Returns 0, or errno with *err set. The
  // kernel vhost-net front-end (napi/vhost_kernel_wrap.cc) configures its tap with this too.
  static int ConfigureQueue(int fd, const std::string& ifname, uint64_t features, std::string* err);
  ~TapPort() override;

  const char* name() const override { return "tap"; }
  bool Service(PairContext& c) override;
  int OnFeatures(uint64_t features, const NetSettings& settings, std::string* err) override;
  std::vector<int> WatchFds() const override { return {fd_}; }
  int OnActive(bool active, std::string* err) override;
  void OnReset() override { pending_len_ = 0; }
  bool OnAnnounce(const uint8_t* frame, uint32_t len) override;

 private:
  static constexpr int kBurst = 32;
  // The largest frame a tap hands out (64 KiB GSO) plus the header.
  static constexpr uint32_t kBounceSize = 65536 + kNetHdrMrg;

  TapPort(int fd, std::string ifname) : fd_(fd), ifname_(std::move(ifname)), bounce_(kBounceSize) {}
  template <typename L>
  int GuestTx(PairContext& c);
  template <typename L>
  int GuestRx(PairContext& c, bool* rx_short, bool* tap_empty);

  int fd_;
  std::string ifname_;
  TxFrame tx_;
  RxReservation rx_;
  std::vector<uint8_t> bounce_;
  uint32_t pending_len_ = 0;       // a frame read from the tap that waits for guest buffers
  uint32_t hdr_len_ = kNetHdrMrg;  // the virtio-net header the tap expects (TUNSETVNETHDRSZ)
  bool tx_error_reported_ = false;
  bool attached_ = true;  // TUNSETIFF attaches the queue it opens
};

}  // namespace vhost
