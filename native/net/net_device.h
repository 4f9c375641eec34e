// One virtio-net device: the generic vhost device (core/device.h: memory, queues, workers,
// quiesce, events) plus what is virtio-net's: the settings its features decide and the port its
// frames go to. Queues come in RX/TX pairs (queue 2p receives, 2p+1 transmits), one service group
// each; the port serves a pair when its worker wakes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "net/port.h"
#include "net/virtio_net.h"

namespace vhost {

class NetDevice final : public VhostDevice {
 public:
  static constexpr int kMaxQueuePairs = 16;

  NetDevice(int queue_pairs, std::unique_ptr<Port> port);
  // The workers call ServiceGroup, which uses the port: they stop before the port goes.
  ~NetDevice() override { Reset(); }

 private:
  int OnFeatures(uint64_t features, std::string* err) override;
  bool ServiceGroup(int pair, bool arm_when_idle, const StopCheck& should_stop) override;
  std::vector<int> GroupWatchFds(int pair) const override;
  void OnReset() override;
  void OnClose() override;

  std::unique_ptr<Port> port_;
  NetSettings settings_;
};

}  // namespace vhost
