// A thread that serves some of one device's queues (the groups the device's worker map gives it):
// epoll over their kick eventfds plus a wake eventfd. It is named (pthread_setname_np) for ps and top.
// Its owner stops and joins it before changing anything the thread reads (memory table, rings),
// then starts a new one with the new set of fds: the quiesce rule in one place.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace vhost {

class Worker {
 public:
  struct Watch {
    int fd;        // an eventfd, watched edge-triggered and never read; owned by the caller
    uint32_t tag;  // passed to the handler (the queue index)
  };
  // Called on the worker thread: once per tag right after start (buffers may be waiting already),
  // then each time that tag's fd was signalled (kicked = true).
  using Handler = std::function<void(uint32_t tag, bool kicked)>;
  // Busy polling: called over and over while traffic flows (arm = false; returns whether anything
  // moved), then once with arm = true when `poll_us` passed without work, before the thread sleeps.
  using Poll = std::function<bool(bool arm)>;

  // `name`: the thread's name (at most 15 characters are kept).
  explicit Worker(std::string name) : name_(std::move(name)) {}
  ~Worker() { Stop(); }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Returns 0 or an errno value with *err set.
  // Called on the worker thread after it survived a SIGBUS while serving (guest memory the front-end
  // shrank under us). The owner must stop touching guest memory until it is replaced.
  using OnFault = std::function<void()>;

  // poll_us = 0: event-driven only (the handler arms kicks itself before the thread sleeps).
  int Start(const std::vector<Watch>& watches, Handler handler, Poll poll, uint32_t poll_us, OnFault on_fault,
            std::string* err);
  // Runs `fn` on the calling thread with the recovery point a worker has: a SIGBUS inside (guest
  // memory shrunk under us) returns false instead of killing the process. For serving inline.
  static bool Recoverable(const std::function<void()>& fn);
  // The address whose touch raised the last SIGBUS survived on this thread (to tell whose guest
  // memory it was, when one thread serves several devices).
  static const void* FaultAddress();
  // Wakes the thread and joins it. Safe to call when not running.
  void Stop();
  bool running() const { return thread_.joinable(); }
  const std::string& name() const { return name_; }
  // Long-running handlers check this between bursts so that Stop is prompt.
  bool stop_requested() const { return stop_.load(std::memory_order_relaxed); }

 private:
  void Run(std::vector<Watch> watches, Handler handler, Poll poll, uint32_t poll_us, OnFault on_fault) noexcept;
  void Serve(const std::vector<Watch>& watches, const Handler& handler, const Poll& poll, uint32_t poll_us);

  static void InstallFaultHandler();

  const std::string name_;
  std::thread thread_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> exited_{false};
};

}  // namespace vhost
