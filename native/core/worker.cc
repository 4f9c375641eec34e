#include "core/worker.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>

namespace vhost {

namespace {
constexpr uint32_t kWakeTag = UINT32_MAX;
// Interrupts a worker stuck in a syscall (see Stop). Nothing else in Node or libuv uses SIGURG.
constexpr int kInterruptSignal = SIGURG;

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// Guest memory is a file the front-end owns: if it shrinks the file after we mapped it, touching
// the lost pages raises SIGBUS. A worker survives that: while it serves, its thread has a recovery
// point, and the handler jumps back to it. Any other SIGBUS goes to whoever handled it before.
thread_local jmp_buf* t_recovery = nullptr;
thread_local const void* t_fault_address = nullptr;
struct sigaction g_previous_sigbus;

void OnSigbus(int sig, siginfo_t* info, void* context) {
  if (jmp_buf* j = t_recovery) {
    t_recovery = nullptr;
    t_fault_address = info ? info->si_addr : nullptr;
    longjmp(*j, 1);
  }
  if (g_previous_sigbus.sa_flags & SA_SIGINFO) {
    g_previous_sigbus.sa_sigaction(sig, info, context);
  } else if (g_previous_sigbus.sa_handler != SIG_DFL && g_previous_sigbus.sa_handler != SIG_IGN) {
    g_previous_sigbus.sa_handler(sig);
  } else {
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
  }
}
}  // namespace

void Worker::InstallFaultHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction interrupt {};
    interrupt.sa_handler = [](int) {};  // no SA_RESTART: the interrupted syscall fails with EINTR
    sigemptyset(&interrupt.sa_mask);
    sigaction(kInterruptSignal, &interrupt, nullptr);
    struct sigaction sa {};
    sa.sa_sigaction = OnSigbus;
    // NODEFER: we leave the handler by longjmp, so SIGBUS must not stay blocked afterwards.
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous_sigbus);
  });
}

int Worker::Start(const std::vector<Watch>& watches, Handler handler, Poll poll, uint32_t poll_us, OnFault on_fault,
                  std::string* err) {
  InstallFaultHandler();
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
  exited_.store(false);
  try {
    thread_ =
        std::thread(&Worker::Run, this, watches, std::move(handler), std::move(poll), poll_us, std::move(on_fault));
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
    // A worker blocked in a syscall on an fd the front-end controls (a call eventfd it filled and
    // made blocking) is interrupted: the signal's handler does nothing, but the syscall returns EINTR.
    const uint64_t start = NowNs();
    uint64_t next_signal = start + 20'000'000;
    for (int spins = 0; !exited_.load(); spins++) {
      if (spins < 200) {
        sched_yield();  // the usual case: the worker leaves epoll within microseconds
        continue;
      }
      uint64_t now = NowNs();
      if (now >= next_signal) {
        pthread_kill(thread_.native_handle(), kInterruptSignal);
        next_signal = now + 20'000'000;
      }
      usleep(100);
    }
    thread_.join();
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  epoll_fd_ = wake_fd_ = -1;
}

void Worker::Run(std::vector<Watch> watches, Handler handler, Poll poll, uint32_t poll_us, OnFault on_fault) noexcept {
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  jmp_buf recovery;
  while (!stop_requested()) {
    if (setjmp(recovery) == 0) {
      t_recovery = &recovery;
      Serve(watches, handler, poll, poll_us);
      t_recovery = nullptr;
      break;
    }
    // Back from a SIGBUS inside Serve: nothing it held needs releasing (no locks, no allocations
    // are made while guest memory is touched). The owner stops using guest memory; serve on.
    on_fault();
  }
  exited_.store(true);
}

const void* Worker::FaultAddress() { return t_fault_address; }

bool Worker::Recoverable(const std::function<void()>& fn) {
  InstallFaultHandler();
  jmp_buf recovery;
  jmp_buf* const outer = t_recovery;
  if (setjmp(recovery) == 0) {
    t_recovery = &recovery;
    fn();
    t_recovery = outer;
    return true;
  }
  // Back from a SIGBUS inside fn (the handler cleared t_recovery).
  t_recovery = outer;
  return false;
}

void Worker::Serve(const std::vector<Watch>& watches, const Handler& handler, const Poll& poll, uint32_t poll_us) {
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
