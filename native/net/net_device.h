// One virtio-net device: the generic vhost device (core/device.h: memory, queues, workers,
// quiesce, events) plus what is virtio-net's: the settings its features decide and the ports its
// frames go to. Queues come in RX/TX pairs (queue 2p receives, 2p+1 transmits), one service group
// each, and every pair has its own port instance: ports keep per-burst scratch state (the frame in
// hand, reservations, copy jobs), and two workers serving two pairs must never share it.
// A port knows whether its pair is active (Port::OnActive): the first pair always is (the driver
// always has queue pair 0), the others while the driver enables both their rings.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "net/capture.h"
#include "net/frame_rings.h"
#include "net/port.h"
#include "net/virtio_net.h"

namespace vhost {

class NetDevice final : public VhostDevice {
 public:
  static constexpr int kMaxQueuePairs = 16;

  // `ports`: one per queue pair (ports.size() pairs), served by `workers` threads (1..pairs).
  NetDevice(std::vector<std::unique_ptr<Port>> ports, int workers);
  // The workers call ServiceGroup, which uses the ports: they stop before the ports go.
  ~NetDevice() override;

  // Gives every pair's port its part of a JavaScript program's rings, or starts them afresh
  // (Port::OnFrameRings). Returns 0 or an errno with *err set (ENOTSUP: not the js port).
  int AttachFrameRings(const std::shared_ptr<FrameRings>& rings, std::string* err);

  // Opens or closes a host -> guest forward of the first pair's port (Port::OnForward), its worker
  // stopped meanwhile. Returns 0 or an errno with *err set (ENOTSUP: not the user port).
  int Forward(bool add, const std::string& spec, std::string* err);

  // SEND_RARP: the first pair's port announces `mac` to its network (Port::OnAnnounce), its worker
  // stopped meanwhile. Returns 1 if the announcement went out, 0 if the port has no network to tell.
  int Announce(const uint8_t mac[6]);

  // DEVICE_STATE: the first pair's port's state (Port::SaveState) or taking one in (LoadState), its
  // worker (or the switch's thread) stopped meanwhile. LoadState returns 0 or an errno with *err set.
  int SaveState(PortState* out, std::string* err);
  int LoadState(const PortState& in, std::string* err);

  // Joins a switch as its port `port` (sw non-null) or leaves it: the pair's port forwards through it
  // (Port::OnSwitch) and the switch's thread serves the device (VhostDevice::SetHost). Only a device
  // of one pair, no workers and the switch port. Called by the switch with its thread paused.
  int JoinSwitch(Switch* sw, int port, std::string* err);
  void LeaveSwitch();
  // For the switch's thread: pair's receive side; valid until the thread is next paused.
  PairRx ReceiveSide(int pair);

  // Starts writing every pair's frames into `capture` (one ring per pair), or stops when null. The
  // workers are stopped around the change, so none writes a ring once this returns. Returns 0, or
  // EBUSY when another capture runs, EINVAL when it has fewer rings than the device has pairs.
  int SetCapture(std::shared_ptr<Capture> capture, std::string* err);
  const std::shared_ptr<Capture>& capture() const { return capture_; }

 private:
  int OnFeatures(uint64_t features, std::string* err) override;
  int OnGroupEnable(int pair, bool on, std::string* err) override;
  bool ServiceGroup(int pair, bool arm_when_idle, const StopCheck& should_stop) override;
  std::vector<int> GroupWatchFds(int pair) const override;
  void OnReset() override;
  void OnClose() override;
  // Pairs past the first back to inactive, as for a new connection (their rings are disabled).
  void DeactivateExtraPairs();

  std::vector<std::unique_ptr<Port>> ports_;  // indexed by pair; empty once closed
  NetSettings settings_;
  std::shared_ptr<Capture> capture_;  // kept across front-end reconnects, dropped at Close
};

}  // namespace vhost
