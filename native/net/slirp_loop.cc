#include "net/slirp_loop.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

namespace vhost {

namespace {

short ToPoll(int slirp_events) {
  short e = 0;
  if (slirp_events & kSlirpPollIn) e |= POLLIN;
  if (slirp_events & kSlirpPollOut) e |= POLLOUT;
  if (slirp_events & kSlirpPollPri) e |= POLLPRI;
  return e;  // POLLERR and POLLHUP are always reported
}

int FromPoll(short revents) {
  int e = 0;
  if (revents & POLLIN) e |= kSlirpPollIn;
  if (revents & POLLOUT) e |= kSlirpPollOut;
  if (revents & POLLPRI) e |= kSlirpPollPri;
  if (revents & POLLERR) e |= kSlirpPollErr;
  if (revents & POLLHUP) e |= kSlirpPollHup;
  return e;
}

}  // namespace

SlirpLoop::SlirpLoop(const SlirpApi& api) : api_(api), backlog_(kBacklogBytes, kBacklogFrames) {}

std::unique_ptr<SlirpLoop> SlirpLoop::Create(const SlirpApi& api, const SlirpConfigV1& cfg, std::string* err) {
  std::unique_ptr<SlirpLoop> loop(new SlirpLoop(api));
  loop->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  loop->timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = loop->timer_fd_;
  if (loop->epoll_fd_ < 0 || loop->timer_fd_ < 0 || epoll_ctl(loop->epoll_fd_, EPOLL_CTL_ADD, loop->timer_fd_, &ev)) {
    *err = std::string("user port: epoll/timerfd: ") + strerror(errno);
    return nullptr;
  }
  loop->stack_ = api.create(&cfg, Callbacks(), loop.get());
  if (!loop->stack_) {
    *err = "user port: libslirp " + api.version + " refused the configuration (its message is above)";
    return nullptr;
  }
  return loop;
}

SlirpLoop::~SlirpLoop() {
  if (stack_) api_.cleanup(stack_);  // closes its sockets, frees its timers through TimerFree
  if (timer_fd_ >= 0) close(timer_fd_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

void SlirpLoop::Input(const uint8_t* frame, size_t len) { api_.input(stack_, frame, static_cast<int>(len)); }

uint64_t SlirpLoop::TakeDrops() {
  uint64_t n = drops_;
  drops_ = 0;
  return n;
}

int SlirpLoop::AddForward(bool udp, in_addr host, int host_port, in_addr guest, int guest_port) {
  errno = 0;
  return api_.add_hostfwd(stack_, udp, host, host_port, guest, guest_port) == 0 ? 0 : -1;
}

int SlirpLoop::RemoveForward(bool udp, in_addr host, int host_port) {
  errno = 0;
  return api_.remove_hostfwd(stack_, udp, host, host_port) == 0 ? 0 : -1;
}

int SlirpLoop::SaveState(std::vector<uint8_t>* out) {
  if (!api_.state_save) return -1;
  out->clear();
  api_.state_save(
      stack_,
      [](const void* buf, size_t len, void* opaque) -> ssize_t {
        auto* bytes = static_cast<const uint8_t*>(buf);
        static_cast<std::vector<uint8_t>*>(opaque)->insert(static_cast<std::vector<uint8_t>*>(opaque)->end(), bytes,
                                                           bytes + len);
        return static_cast<ssize_t>(len);
      },
      out);
  return api_.state_version();
}

int SlirpLoop::LoadState(int version, const std::vector<uint8_t>& state, std::string* err) {
  std::vector<uint8_t> ours;
  const int our_version = SaveState(&ours);
  if (our_version < 0) {
    *err = "libslirp " + api_.version + " cannot load a saved state";
    return ENOTSUP;
  }
  if (version != our_version || state.size() != ours.size() || state.empty() || state[0] != 0) {
    *err = "libslirp state of version " + std::to_string(version) + ", " + std::to_string(state.size()) +
           " bytes: this libslirp (" + api_.version + ") takes version " + std::to_string(our_version) + ", " +
           std::to_string(ours.size()) + " bytes, without sockets";
    return EINVAL;
  }
  struct Reader {
    const std::vector<uint8_t>& bytes;
    size_t at;
  } reader{state, 0};
  const int rc = api_.state_load(
      stack_, version,
      [](void* buf, size_t len, void* opaque) -> ssize_t {
        auto* r = static_cast<Reader*>(opaque);
        const size_t n = std::min(len, r->bytes.size() - r->at);
        memcpy(buf, r->bytes.data() + r->at, n);
        r->at += n;
        return static_cast<ssize_t>(n);
      },
      &reader);
  if (rc < 0 || reader.at != state.size()) {
    *err = "libslirp " + api_.version + " refused the saved state (" + std::to_string(rc) + ")";
    return EINVAL;
  }
  return 0;
}

int64_t SlirpLoop::NowMs() { return ClockNs(nullptr) / 1000000; }

int SlirpLoop::Poll() {
  const int64_t now = NowMs();
  bool tick = false;
  if (armed_ms_ >= 0 && now >= armed_ms_) {
    uint64_t expirations;
    (void)!read(timer_fd_, &expirations, sizeof expirations);  // level-triggered in our epoll: consume it
    armed_ms_ = -1;
    tick = true;
  }
  int served = RunDueTimers(now);
  fds_.clear();
  uint32_t timeout_ms = UINT32_MAX;
  api_.pollfds_fill(stack_, &timeout_ms, &AddPoll, this);
  int poll_error = 0;
  if (!fds_.empty()) {
    int ready = poll(fds_.data(), fds_.size(), 0);
    if (ready > 0) served += ready;
    if (ready < 0 && errno != EINTR) poll_error = 1;
    if (ready < 0) fds_.clear();  // nothing known about them this round
  }
  // Always: its TCP timers (delayed ACKs, retransmissions) run in here, due or not.
  api_.pollfds_poll(stack_, poll_error, &GetREvents, this);
  SyncWatched(tick);
  int64_t deadline = now + std::min<uint32_t>(timeout_ms, 1000);
  for (const auto& t : timers_)
    if (t->deadline_ms >= 0) deadline = std::min(deadline, t->deadline_ms);
  ArmWakeUp(deadline);
  return served;
}

int SlirpLoop::RunDueTimers(int64_t now_ms) {
  // A callback may free or re-arm timers (its own included): pick the due ones first, then check each
  // is still there and still due before running it.
  std::vector<Timer*> due;
  for (const auto& t : timers_)
    if (t->deadline_ms >= 0 && t->deadline_ms <= now_ms) due.push_back(t.get());
  int ran = 0;
  for (Timer* t : due) {
    auto it = std::find_if(timers_.begin(), timers_.end(), [t](const auto& p) { return p.get() == t; });
    if (it == timers_.end() || t->deadline_ms < 0 || t->deadline_ms > now_ms) continue;
    t->deadline_ms = -1;
    t->cb(t->cb_opaque);
    ran++;
  }
  return ran;
}

void SlirpLoop::SyncWatched(bool all) {
  gone_.clear();
  for (auto& [fd, events] : watched_) events |= 1u << 31;  // not yet seen this round (no epoll bit there)
  for (const pollfd& p : fds_) {
    uint32_t want = 0;
    if (p.events & POLLIN) want |= EPOLLIN;
    if (p.events & POLLOUT) want |= EPOLLOUT;
    if (p.events & POLLPRI) want |= EPOLLPRI;
    auto it = watched_.find(p.fd);
    epoll_event ev{};
    ev.events = want;
    ev.data.fd = p.fd;
    if (it == watched_.end()) {
      // EEXIST: still in the set from before we forgot it (an unregister we missed): take it over.
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, p.fd, &ev) == 0 ||
          (errno == EEXIST && epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, p.fd, &ev) == 0))
        watched_[p.fd] = want;
      continue;
    }
    const bool changed = (it->second & ~(1u << 31)) != want;
    it->second = want;
    if (!changed && !all) continue;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, p.fd, &ev) != 0 && errno == ENOENT)
      (void)epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, p.fd, &ev);
  }
  for (const auto& [fd, events] : watched_)
    if (events & (1u << 31)) gone_.push_back(fd);
  for (int fd : gone_) {
    (void)epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);  // ENOENT/EBADF when already closed: fine
    watched_.erase(fd);
  }
}

void SlirpLoop::ArmWakeUp(int64_t deadline_ms) {
  // Earlier than asked is harmless (one pass that finds nothing), so a timer already set to fire
  // sooner is left alone: no syscall per pass while the deadline keeps moving ahead.
  if (armed_ms_ >= 0 && armed_ms_ <= deadline_ms) return;
  itimerspec when{};
  when.it_value.tv_sec = deadline_ms / 1000;
  when.it_value.tv_nsec = (deadline_ms % 1000) * 1000000 + 1;  // never all zero: that would disarm
  if (timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &when, nullptr) == 0) armed_ms_ = deadline_ms;
}

ssize_t SlirpLoop::SendPacket(const void* buf, size_t len, void* opaque) {
  auto* self = static_cast<SlirpLoop*>(opaque);
  if (!self->backlog_.Push(static_cast<const uint8_t*>(buf), len)) self->drops_++;
  return static_cast<ssize_t>(len);  // dropped or kept, it has left libslirp's hands
}

void SlirpLoop::GuestError(const char*, void*) {}  // what the guest did wrong is counted by the rings

int64_t SlirpLoop::ClockNs(void*) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

void* SlirpLoop::TimerNew(SlirpTimerCb cb, void* cb_opaque, void* opaque) {
  auto* self = static_cast<SlirpLoop*>(opaque);
  self->timers_.push_back(std::make_unique<Timer>(Timer{cb, cb_opaque, -1}));
  return self->timers_.back().get();
}

void SlirpLoop::TimerFree(void* timer, void* opaque) {
  auto& timers = static_cast<SlirpLoop*>(opaque)->timers_;
  timers.erase(std::remove_if(timers.begin(), timers.end(), [timer](const auto& t) { return t.get() == timer; }),
               timers.end());
}

void SlirpLoop::TimerMod(void* timer, int64_t expire_ms, void* opaque) {
  auto* self = static_cast<SlirpLoop*>(opaque);
  for (const auto& t : self->timers_)
    if (t.get() == timer) t->deadline_ms = expire_ms < 0 ? 0 : expire_ms;
  // Only ever called from inside our calls into libslirp, from Poll or Input: Poll re-arms the timerfd.
  // After Input the next Poll follows in the same burst.
}

void SlirpLoop::RegisterFd(int, void*) {}

void SlirpLoop::UnregisterFd(int fd, void* opaque) {
  // It is about to close fd: forget it, so that a new socket given the same number is added afresh.
  auto* self = static_cast<SlirpLoop*>(opaque);
  if (self->watched_.erase(fd)) (void)epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void SlirpLoop::Notify(void*) {}  // the next fill (every burst has one) asks for the fds again

int SlirpLoop::AddPoll(int fd, int events, void* opaque) {
  auto& fds = static_cast<SlirpLoop*>(opaque)->fds_;
  fds.push_back(pollfd{fd, ToPoll(events), 0});
  return static_cast<int>(fds.size()) - 1;
}

int SlirpLoop::GetREvents(int idx, void* opaque) {
  const auto& fds = static_cast<SlirpLoop*>(opaque)->fds_;
  return idx >= 0 && static_cast<size_t>(idx) < fds.size() ? FromPoll(fds[idx].revents) : 0;
}

const SlirpCallbacks* SlirpLoop::Callbacks() {
  // libslirp keeps the pointer: the table lives as long as the process.
  static const SlirpCallbacks table{&SendPacket, &GuestError,   &ClockNs, &TimerNew, &TimerFree, &TimerMod,
                                    &RegisterFd, &UnregisterFd, &Notify,  nullptr,   nullptr};
  return &table;
}

}  // namespace vhost
