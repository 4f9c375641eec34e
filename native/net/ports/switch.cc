// The switch port: the device is one port of a switch (net/switch/switch.h). Its guest's TX frames
// go to the other ports by destination MAC and theirs come in, all on the switch's thread, which
// serves the device instead of workers of its own. Detached from any switch, nothing moves: the
// guest's frames wait in its ring, as on a link with no cable.
#include "net/switch/switch.h"

#include <cerrno>
#include <string>

#include "net/ports/registry.h"

namespace vhost {

namespace {

class SwitchPort : public Port {
 public:
  const char* name() const override { return "switch"; }

  int OnSwitch(Switch* sw, int port, std::string* err) override {
    switch_ = sw;
    port_ = port;
    return 0;
  }

  // The guest migrated here: the switch learns its MAC on this port and tells the others.
  bool OnAnnounce(const uint8_t* frame, uint32_t len) override {
    if (!switch_) return false;
    switch_->Announce(port_, frame, len);
    return true;
  }

  // DEVICE_STATE: the MACs learnt behind this port go with the device, and are learnt behind the
  // port of the device that takes them in, so that frames to the guest reach it before it sends.
  void SaveState(PortState* out) override {
    if (switch_) out->macs = switch_->MacsOf(port_);
  }
  int LoadState(const PortState& in, std::string* err) override {
    if (in.macs.empty()) return 0;
    if (!switch_) {
      *err = "the device is on no switch: attach it before loading a state with learnt MACs";
      return ENOTCONN;
    }
    // A full table refuses some, as it would the guest's own frames from them: counted in the switch's
    // refusals, and their frames flooded.
    switch_->Learn(port_, in.macs);
    return 0;
  }

  // One burst (the switch's round robin decides who goes next, so no loop until idle here). RX
  // kicks are never wanted: a receiver without buffers loses the copy rather than being waited for.
  bool Service(PairContext& c) override {
    if (!switch_ || !c.tx.Ready()) return false;
    if (switch_->Forward(port_, c) > 0) return true;
    if (c.rx.Ready()) c.rx.ring.SuppressKicks();
    if (!c.arm_when_idle) {
      c.tx.ring.SuppressKicks();
      return false;
    }
    return c.tx.ring.ArmKick();
  }

 private:
  Switch* switch_ = nullptr;
  int port_ = -1;
};

}  // namespace

std::unique_ptr<Port> MakeSwitch(const PortOptions&, PortError*) { return std::make_unique<SwitchPort>(); }

}  // namespace vhost
