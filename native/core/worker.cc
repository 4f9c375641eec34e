#include "core/worker.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vhost {

namespace {
constexpr uint32_t kWakeTag = UINT32_MAX;
}

int Worker::Start(const std::vector<Watch>& watches, Handler handler, Poll poll, uint32_t poll_us,
                  std::string* err) {
  Stop();
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int e = 0;
  if (epoll_fd_ < 0 || wake_fd_ < 0) e = errno;
  // Edge-triggered: an eventfd raises an edge on every write, so kicks need no read() — a read of
  // an fd the front-end controls could block this thread.
  auto add = [&](int fd, uint32_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u32 = tag;
    if (e == 0 && epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) e = errno;
  };
  add(wake_fd_, kWakeTag);
  for (const Watch& w : watches) add(w.fd, w.tag);
  if (e != 0) {
    *err = std::string("worker setup (epoll/eventfd): ") + strerror(e);
    if (epoll_fd_ >= 0) close(epoll_fd_);
    if (wake_fd_ >= 0) close(wake_fd_);
    epoll_fd_ = wake_fd_ = -1;
    return e;
  }
  stop_.store(false);
  try {
    thread_ = std::thread(&Worker::Run, this, watches, std::move(handler), std::move(poll), poll_us);
  } catch (const std::exception& ex) {
    *err = std::string("starting the worker thread: ") + ex.what();
    close(epoll_fd_);
    close(wake_fd_);
    epoll_fd_ = wake_fd_ = -1;
    return EAGAIN;
  }
  return 0;
}

void Worker::Stop() {
  if (thread_.joinable()) {
    stop_.store(true);
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  epoll_fd_ = wake_fd_ = -1;
}

namespace {
uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

void Worker::Run(std::vector<Watch> watches, Handler handler, Poll poll, uint32_t poll_us) noexcept {
  for (const Watch& w : watches) {
    if (stop_requested()) return;
    handler(w.tag, false);
  }
  const uint64_t budget = static_cast<uint64_t>(poll_us) * 1000;
  // Adaptive: poll while work keeps coming, sleep in epoll once `budget` passed without any.
  bool polling = budget > 0;
  uint64_t deadline = NowNs() + budget;
  epoll_event events[16];
  while (!stop_requested()) {
    int n = epoll_wait(epoll_fd_, events, 16, polling ? 0 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    bool signalled = false;
    for (int i = 0; i < n && !stop_requested(); i++) {
      if (events[i].data.u32 == kWakeTag) continue;
      handler(events[i].data.u32, true);
      signalled = true;
    }
    if (budget == 0 || stop_requested()) continue;
    uint64_t now = NowNs();
    if (signalled && !polling) {
      polling = true;
      deadline = now + budget;
    }
    if (!polling) continue;
    if (poll(false)) {
      deadline = now + budget;
    } else if (now >= deadline) {
      polling = false;
      if (poll(true)) {  // work arrived while arming: keep polling
        polling = true;
        deadline = now + budget;
      }
    }
  }
}

}  // namespace vhost
