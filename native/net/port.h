// A packet port: where the frames of a queue pair go and come from (loopback, tap, later peer, JS).
// Service runs on the device's worker thread whenever a queue of the pair was kicked, one of the
// port's own fds was signalled, or the worker (re)started; it returns when it has no more work or
// when the worker asks it to stop. The other hooks run on the JS thread with the worker stopped.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/guest_memory.h"
#include "net/queue.h"
#include "net/rx_reservation.h"
#include "net/virtio_net.h"

namespace vhost {

class Port {
 public:
  virtual ~Port() = default;
  virtual const char* name() const = 0;
  // Moves what can be moved for one queue pair. `should_stop` is polled between bursts; `report`
  // records a reason for the log (queue broken, frames dropped).
  virtual void Service(const GuestMemory& mem, const NetSettings& settings, Queue& rx, Queue& tx,
                       const std::function<bool()>& should_stop, const Reporter& report) = 0;
  // The driver's features changed (SET_FEATURES). Returns 0 or an errno with *err set.
  virtual int OnFeatures(uint64_t features, const NetSettings& settings, std::string* err) { return 0; }
  // Fds of queue pair `pair` the worker must watch besides the kicks (edge-triggered).
  virtual std::vector<int> WatchFds(int pair) const { return {}; }
  // The front-end went away: drop per-connection state (frames held for the guest).
  virtual void OnReset() {}
};

}  // namespace vhost
