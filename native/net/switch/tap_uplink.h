// The switch's tap uplink: a Linux tap interface as one port of a switch, joining it to the host.
// Not a guest: its fd is in the switch thread's watch set; frames read from the tap land in a
// buffer of ours and are forwarded from there (one copy into each receiving guest's RX); frames to
// it are written straight from the sending guest's TX buffers with writev (no copy of ours). No
// offloads: a zero virtio-net header each way (the kernel then hands over whole, checksummed frames).
// Counted as a device's queue pair is: "rx" what the switch gave the tap, "tx" what it read from it.
// A tap that goes away (deleted) is reported once and counted (errors); the port stays, idle.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/report.h"
#include "core/virtqueue.h"
#include "net/switch/forwarder.h"

namespace vhost {

class TapUplink final : public Forwarder::Sink {
 public:
  // Opens (creating it if absent) the tap `ifname`. Returns null with *err_no and *err set.
  static std::unique_ptr<TapUplink> Open(const std::string& ifname, Reporter report, int* err_no, std::string* err);
  ~TapUplink() override;
  TapUplink(const TapUplink&) = delete;
  TapUplink& operator=(const TapUplink&) = delete;

  int fd() const { return fd_; }
  const std::string& ifname() const { return ifname_; }
  Forwarder::Port& port() { return port_; }

  // Switch thread: frames to the tap.
  void Send(const Segment* segs, int nseg, uint32_t skip, uint32_t len) override;
  // Switch thread: reads up to Forwarder::kBudget frames and forwards each. Returns the frames read.
  int Receive(Forwarder& forwarder);
  // Counters, kStatsStride apart: [0] to the tap (its "rx"), [1] from it (its "tx").
  const uint64_t* stats() const { return stats_; }

 private:
  // The virtio-net header each way (struct virtio_net_hdr, no num_buffers): always zero.
  static constexpr uint32_t kHeader = 10;
  // The largest frame forwarded (as the forwarder's) plus the header.
  static constexpr uint32_t kBufferSize = 65535 + 18 + kHeader;

  TapUplink(int fd, std::string ifname, Reporter report);
  // The tap failed for good (deleted, or another error than "empty"/"full"): once in the log.
  void Failed(const char* what, int err);

  int fd_;
  std::string ifname_;
  Reporter report_;
  Forwarder::Port port_;
  std::vector<uint8_t> buffer_;
  alignas(64) uint64_t stats_[2 * kStatsStride] = {};
  Queue to_tap_, from_tap_;  // counting only: their stats point into stats_
  bool gone_ = false;
  bool write_error_reported_ = false;
};

}  // namespace vhost
