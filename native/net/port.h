// A packet port: where the frames of a queue pair go and come from (loopback, later tap, peer, JS).
// Service runs on the device's worker thread whenever a queue of the pair was kicked or the worker
// (re)started; it must return when it has no more work or when the worker asks it to stop.
#pragma once

#include <functional>
#include <string>

#include "core/guest_memory.h"
#include "net/queue.h"
#include "net/virtio_net.h"

namespace vhost {


class Port {
 public:
  virtual ~Port() = default;
  virtual const char* name() const = 0;
  // Moves what can be moved for one queue pair. `should_stop` is polled between bursts; `report`
  // records a reason for the log (queue broken, chain dropped).
  virtual void Service(const GuestMemory& mem, const NetSettings& settings, Queue& rx, Queue& tx,
                       const std::function<bool()>& should_stop,
                       const std::function<void(const std::string&)>& report) = 0;
};

}  // namespace vhost
