#include "net/net_device.h"

#include <cerrno>

#include "net/announce.h"
#include "net/switch/switch.h"

namespace vhost {

NetDevice::NetDevice(std::vector<std::unique_ptr<Port>> ports, int workers)
    : VhostDevice(static_cast<int>(ports.size()), 2, workers), ports_(std::move(ports)) {
  DeactivateExtraPairs();
}

NetDevice::~NetDevice() {
  // A switch serving the device calls ServiceGroup: it lets go before the ports do.
  if (host()) host()->Release(this);
  Reset();
}

int NetDevice::JoinSwitch(Switch* sw, int port, std::string* err) {
  if (ports_.empty()) {
    *err = "the device is closed";
    return EBADF;
  }
  if (worker_count() != 0 || group_count() != 1) {
    *err = "only a device of one queue pair made with port: 'switch' can join a switch";
    return EINVAL;
  }
  int rc = ports_[0]->OnSwitch(sw, port, err);
  if (rc == 0) SetHost(sw);
  return rc;
}

void NetDevice::LeaveSwitch() {
  std::string ignored;
  if (!ports_.empty()) ports_[0]->OnSwitch(nullptr, -1, &ignored);
  SetHost(nullptr);
}

PairRx NetDevice::ReceiveSide(int pair) {
  return PairRx{&memory(), &settings_, &queue(2 * pair), &reporter(), capture_ ? &capture_->ring(pair) : nullptr};
}

void NetDevice::DeactivateExtraPairs() {
  for (size_t p = 1; p < ports_.size(); p++) {
    std::string err;
    if (ports_[p]->OnActive(false, &err) != 0) reporter()(err);
  }
}

int NetDevice::OnGroupEnable(int pair, bool on, std::string* err) {
  if (pair == 0 || ports_.empty()) return 0;  // closed: no port left to tell
  return ports_[pair]->OnActive(on, err);
}

int NetDevice::OnFeatures(uint64_t features, std::string* err) {
  settings_ = NetSettings::FromFeatures(features);
  for (auto& port : ports_) {
    int rc = port->OnFeatures(features, settings_, err);
    if (rc != 0) return rc;
  }
  return 0;
}

// Once per wake-up of the pair's worker: the pair's port moves what it can (one virtual call per
// pass, none per frame).
bool NetDevice::ServiceGroup(int pair, bool arm_when_idle, const StopCheck& should_stop) {
  PairContext c{memory(),      settings_,   queue(2 * pair), queue(2 * pair + 1),
                arm_when_idle, should_stop, reporter(),      capture_ ? &capture_->ring(pair) : nullptr};
  return ports_[pair]->Service(c);
}

std::vector<int> NetDevice::GroupWatchFds(int pair) const {
  return ports_.empty() ? std::vector<int>{} : ports_[pair]->WatchFds();
}

int NetDevice::AttachFrameRings(const std::shared_ptr<FrameRings>& rings, std::string* err) {
  return RunQuiesced([&] {
    if (ports_.empty()) {
      *err = "the device is closed";
      return EBADF;
    }
    for (size_t p = 0; p < ports_.size(); p++) {
      int rc = ports_[p]->OnFrameRings(rings, static_cast<int>(p), err);
      if (rc != 0) return rc;
    }
    return 0;
  });
}

int NetDevice::Forward(bool add, const std::string& spec, std::string* err) {
  return RunQuiesced([&] {
    if (ports_.empty()) {
      *err = "the device is closed";
      return EBADF;
    }
    return ports_[0]->OnForward(add, spec, err);
  });
}

int NetDevice::Announce(const uint8_t mac[6]) {
  const auto frame = Announcement(mac);
  return RunQuiesced([&] { return !ports_.empty() && ports_[0]->OnAnnounce(frame.data(), kAnnouncementLen) ? 1 : 0; });
}

int NetDevice::SaveState(PortState* out, std::string* err) {
  return RunQuiesced([&] {
    if (ports_.empty()) {
      *err = "the device is closed";
      return EBADF;
    }
    ports_[0]->SaveState(out);
    return 0;
  });
}

int NetDevice::LoadState(const PortState& in, std::string* err) {
  return RunQuiesced([&] {
    if (ports_.empty()) {
      *err = "the device is closed";
      return EBADF;
    }
    return ports_[0]->LoadState(in, err);
  });
}

void NetDevice::OnReset() {
  settings_ = NetSettings();
  for (auto& port : ports_) port->OnReset();
  DeactivateExtraPairs();
}

void NetDevice::OnClose() {
  ports_.clear();
  capture_.reset();
}

int NetDevice::SetCapture(std::shared_ptr<Capture> capture, std::string* err) {
  if (capture && capture_ && capture != capture_) {
    *err = "a capture is already running on this device: stop it first";
    return EBUSY;
  }
  if (capture && capture->pairs() < group_count()) {
    *err = "capture has " + std::to_string(capture->pairs()) + " rings for " + std::to_string(group_count()) + " pairs";
    return EINVAL;
  }
  return RunQuiesced([&] {
    capture_ = std::move(capture);
    return 0;
  });
}

}  // namespace vhost
