#include "core/inline_server.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

namespace vhost {

InlineServer::InlineServer() : epoll_fd_(epoll_create1(EPOLL_CLOEXEC)) {}

InlineServer::~InlineServer() {
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

int InlineServer::SetWatches(const std::vector<Worker::Watch>& watches) {
  if (epoll_fd_ < 0) return EBADF;
  // The fds may have been closed and reused since: a failed delete is no error.
  for (int fd : watched_) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  watched_.clear();
  int rc = 0;
  for (const Worker::Watch& w : watches) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u32 = w.tag;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, w.fd, &ev) == 0) watched_.push_back(w.fd);
    else rc = errno;
  }
  return rc;
}

bool InlineServer::Serve(const std::function<void(uint32_t tag)>& signalled, const std::function<void()>& serve) {
  epoll_event events[16];
  int n;
  while (epoll_fd_ >= 0 && (n = epoll_wait(epoll_fd_, events, 16, 0)) > 0)
    for (int i = 0; i < n; i++) signalled(events[i].data.u32);
  return Worker::Recoverable(serve);
}

}  // namespace vhost
