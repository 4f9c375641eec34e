// A packet port: where the frames of a queue pair go and come from (loopback, tap, later peer, JS).
// A device has one instance per queue pair, so its scratch state belongs to one worker thread.
// Service runs on the pair's worker thread whenever a queue of the pair was kicked, one of the
// port's own fds was signalled, or the worker (re)started; it returns when it has no more work or
// when the worker asks it to stop. The other hooks run on the JS thread with the worker stopped.
#pragma once

#include <cerrno>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/guest_memory.h"
#include "core/virtqueue.h"
#include "net/capture.h"
#include "net/frame_observer.h"
#include "net/port_state.h"
#include "net/rx_reservation.h"
#include "net/virtio_net.h"

namespace vhost {

class FrameRings;
class Switch;

// What Service works on: one queue pair of a device, and how to behave when idle.
struct PairContext {
  const GuestMemory& mem;
  const NetSettings& settings;
  Queue& rx;  // guest receives (device writes)
  Queue& tx;  // guest transmits (device reads)
  // true: when there is nothing left to do, ask the guest for kicks (and re-check) before returning.
  // false while the worker busy-polls: leave the guest's kicks suppressed, it will look again soon.
  bool arm_when_idle;
  const std::function<bool()>& should_stop;  // polled between bursts
  const Reporter& report;                    // reasons for the log (queue broken, frames dropped)
  CaptureRing* capture = nullptr;            // the pair's capture ring while a capture runs (ObserveFrame)
};

// A pair's receive side alone, for a thread that delivers to it from another device's service
// (a switch's): as PairContext, valid until that thread is next stopped.
struct PairRx {
  const GuestMemory* mem = nullptr;
  const NetSettings* settings = nullptr;
  Queue* rx = nullptr;
  const Reporter* report = nullptr;
  CaptureRing* capture = nullptr;
};

class Port {
 public:
  virtual ~Port() = default;
  virtual const char* name() const = 0;
  // Moves what can be moved for one queue pair; returns whether anything moved.
  virtual bool Service(PairContext& c) = 0;
  // The driver's features changed (SET_FEATURES). Returns 0 or an errno with *err set.
  virtual int OnFeatures(uint64_t features, const NetSettings& settings, std::string* err) { return 0; }
  // The pair became active (the driver enabled both its rings) or inactive; pairs past the first
  // start inactive. Runs with the pair's worker stopped. Returns 0 or an errno with *err set.
  virtual int OnActive(bool active, std::string* err) { return 0; }
  // Fds of its queue pair the worker must watch besides the kicks (edge-triggered).
  virtual std::vector<int> WatchFds() const { return {}; }
  // The front-end went away: drop per-connection state (frames held for the guest).
  virtual void OnReset() {}
  // A host -> guest forward opened (add) or closed at run time: the user port's; `spec` is spelled out
  // by its lib/net/ports file. Runs with every worker stopped. Returns 0 or an errno with *err set.
  virtual int OnForward(bool add, const std::string& spec, std::string* err) {
    *err = std::string("the ") + name() + " port has no forwards: use --port user";
    return ENOTSUP;
  }
  // The switch this pair's port forwards through (net/switch/switch.h) and its port number there;
  // null when it leaves. Only the switch port takes it. Runs with the switch's thread stopped.
  virtual int OnSwitch(Switch* sw, int port, std::string* err) {
    *err = std::string("the ") + name() + " port cannot join a switch: make the device with port: 'switch'";
    return ENOTSUP;
  }
  // The guest arrived here by migration (SEND_RARP): a port on a network sends `frame` (an
  // announcement, net/announce.h) to it so that the network learns where the guest is now. Runs with
  // the pair's worker (or the switch's thread) stopped. Returns whether it went anywhere.
  virtual bool OnAnnounce(const uint8_t* frame, uint32_t len) { return false; }
  // DEVICE_STATE: what this port carries to another back-end (net/port_state.h), and taking it in
  // there. A port without state saves nothing and refuses nothing. Run with every worker (or the
  // switch's thread) stopped. LoadState gets values lib/net/device_state.ts has checked; returns 0 or
  // an errno with *err set, having changed nothing then.
  virtual void SaveState(PortState* out) {}
  virtual int LoadState(const PortState& in, std::string* err) { return 0; }
  // The shared rings of a JavaScript program (net/frame_rings.h), for the port of pair `pair`; again
  // to start them afresh. Only the js port takes them. Runs with every worker stopped.
  virtual int OnFrameRings(std::shared_ptr<FrameRings> rings, int pair, std::string* err) {
    *err = std::string("the ") + name() + " port has no frames for JavaScript: use device: { port: 'js' }";
    return ENOTSUP;
  }
};

// The end of a Service pass that found nothing to do: ask for the kicks it waits on and look once
// more (returns true if work arrived meanwhile), or, while busy-polling, keep kicks suppressed.
// Only the rings the port waits on are armed: TX frames held back for lack of RX buffers are no
// reason to look again (that would spin), more RX buffers are.
inline bool IdleCheck(PairContext& c, bool wait_rx, bool wait_tx) {
  if (!c.arm_when_idle) {
    c.tx.ring.SuppressKicks();
    c.rx.ring.SuppressKicks();
    return false;
  }
  bool more = false;
  if (wait_tx) more = c.tx.ring.ArmKick();
  if (wait_rx) more = c.rx.ring.ArmKickBeyondAvail() || more;
  return more;
}

// What one burst of a port did, for ServeUntilIdle.
struct BurstOutcome {
  int moved;     // chains taken or frames delivered
  bool wait_rx;  // if it moved nothing: wake on more guest receive buffers
  bool wait_tx;  // if it moved nothing: wake on more guest transmit frames
};

// The loop of every port's Service: bursts until one moves nothing. After each burst the frames it
// captured are made visible to the capture's reader and the used entries of the rings the port uses
// are published, with at most one call per ring; a broken ring ends the loop; an idle burst arms the
// kicks it waits on and looks once more (IdleCheck).
// Returns whether anything moved.
template <typename Burst>
bool ServeUntilIdle(PairContext& c, bool uses_rx, bool uses_tx, Burst burst) {
  bool any = false;
  while (!c.should_stop()) {
    BurstOutcome r = burst();
    if (c.capture) c.capture->EndBurst();
    if (uses_rx) c.rx.PublishUsed();
    if (uses_tx) c.tx.PublishUsed();
    if ((uses_rx && c.rx.broken) || (uses_tx && c.tx.broken)) break;
    if (r.moved > 0) {
      any = true;
      continue;
    }
    if (!IdleCheck(c, r.wait_rx, r.wait_tx)) break;
  }
  return any;
}

}  // namespace vhost
