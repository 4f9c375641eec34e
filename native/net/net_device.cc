#include "net/net_device.h"

namespace vhost {

NetDevice::NetDevice(int queue_pairs, std::unique_ptr<Port> port)
    : VhostDevice(queue_pairs, 2, 1), port_(std::move(port)) {}

int NetDevice::OnFeatures(uint64_t features, std::string* err) {
  settings_ = NetSettings::FromFeatures(features);
  return port_->OnFeatures(features, settings_, err);
}

// Once per wake-up of the pair's worker: the port moves what it can (one virtual call per pass,
// none per frame).
bool NetDevice::ServiceGroup(int pair, bool arm_when_idle, const StopCheck& should_stop) {
  PairContext c{memory(), settings_, queue(2 * pair), queue(2 * pair + 1), arm_when_idle, should_stop, reporter()};
  return port_->Service(c);
}

std::vector<int> NetDevice::GroupWatchFds(int pair) const { return port_ ? port_->WatchFds(pair) : std::vector<int>{}; }

void NetDevice::OnReset() {
  settings_ = NetSettings();
  if (port_) port_->OnReset();
}

void NetDevice::OnClose() { port_.reset(); }

}  // namespace vhost
