// Serving a device's queues on the thread that owns the device instead of worker threads: the
// js port's, whose program touches every frame anyway, so that a burst costs no hand-over between
// two threads (on a shared CPU, two context switches and two eventfd writes per burst). The kick
// fds of the ready queues and the groups' own fds form one epoll set; its fd is readable when one
// was signalled, so the owner's event loop watches that one fd (a libuv poll handle in Node).
// Serve drains what was signalled and serves, with the SIGBUS recovery point a worker has.
// Everything runs on the owner's thread, like the device's control methods: nothing to stop.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/worker.h"

namespace vhost {

class InlineServer {
 public:
  InlineServer();
  ~InlineServer();
  InlineServer(const InlineServer&) = delete;
  InlineServer& operator=(const InlineServer&) = delete;

  // The epoll fd to watch for readability; -1 if it could not be made.
  int fd() const { return epoll_fd_; }
  // Watches exactly these fds from now on (edge-triggered, never read). Returns 0 or an errno.
  int SetWatches(const std::vector<Worker::Watch>& watches);
  // Calls `signalled(tag)` for each watched fd signalled since the last call, then `serve()`.
  // Returns false when guest memory faulted inside (SIGBUS), true otherwise.
  bool Serve(const std::function<void(uint32_t tag)>& signalled, const std::function<void()>& serve);

 private:
  int epoll_fd_ = -1;
  std::vector<int> watched_;
};

}  // namespace vhost
