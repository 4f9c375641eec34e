// One libslirp stack and what it waits on, driven from the worker thread of the pair that owns it.
// libslirp asks, on every pollfds_fill, for a new set of host sockets to watch (connections come and
// go; it wants POLLOUT only while it has bytes to write), and runs its TCP timers off the timeout that
// fill returns, plus its own timers (timer_new). A worker's watch set is fixed when it starts, so this
// class gives the worker one fd: an epoll fd of its own, holding the sockets libslirp asked for (kept in
// line with each fill by a diff) and a timerfd for the earliest deadline. That fd is readable whenever
// something libslirp waits on is ready, and every new readiness inside wakes the worker's own epoll.
// Frames libslirp sends toward the guest are copied into a FrameBacklog, never straight into guest
// memory: a guest memory fault (SIGBUS, the worker longjmps out) must never find libslirp on the stack.
// Not thread-safe: one thread at a time (the worker, or the JS thread while the worker is stopped).
#pragma once

#include <poll.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/frame_backlog.h"
#include "net/slirp_api.h"

namespace vhost {

class SlirpLoop {
 public:
  // Frames toward the guest wait in a backlog of this many bytes and frames.
  static constexpr size_t kBacklogBytes = 4 << 20;
  static constexpr size_t kBacklogFrames = 4096;

  // A stack made from `cfg`; null with *err set (one line) if libslirp or the system refuses.
  static std::unique_ptr<SlirpLoop> Create(const SlirpApi& api, const SlirpConfigV1& cfg, std::string* err);
  ~SlirpLoop();
  SlirpLoop(const SlirpLoop&) = delete;
  SlirpLoop& operator=(const SlirpLoop&) = delete;

  // The fd the worker watches (edge-triggered): readable when Poll has work.
  int fd() const { return epoll_fd_; }
  // A frame from the guest (Ethernet, no virtio-net header), in memory the guest cannot touch.
  void Input(const uint8_t* frame, size_t len);
  // Runs the timers that are due and the sockets that are ready, then sets up the next wake-up.
  // Returns how many timers and sockets it served (0: nothing was ready).
  int Poll();
  // Frames libslirp sent toward the guest, oldest first.
  FrameBacklog& backlog() { return backlog_; }
  // Frames refused by a full backlog since the last call.
  uint64_t TakeDrops();

  // Host -> guest forwards (IPv4). 0, or -1 with errno when libslirp gave one.
  int AddForward(bool udp, in_addr host, int host_port, in_addr guest, int guest_port);
  int RemoveForward(bool udp, in_addr host, int host_port);

  // libslirp's state (slirp_state_save: DHCP leases, the IP id; no host sockets, which belong to the
  // process) into *out; returns its format version, or -1 when the library cannot save it.
  int SaveState(std::vector<uint8_t>* out);
  // Takes in a state SaveState wrote (maybe in another process). Only one that holds no socket
  // record and is exactly as long as ours is loaded: libslirp's loader then reads fixed fields only,
  // so it cannot stop halfway, and a socket record would have it build a socket from foreign bytes.
  // Returns 0, or an errno with *err set and nothing changed.
  int LoadState(int version, const std::vector<uint8_t>& state, std::string* err);

 private:
  struct Timer {
    SlirpTimerCb cb;
    void* cb_opaque;
    int64_t deadline_ms;  // -1: not armed
  };

  explicit SlirpLoop(const SlirpApi& api);

  // libslirp's callbacks; `opaque` is the SlirpLoop.
  static const SlirpCallbacks* Callbacks();
  static ssize_t SendPacket(const void* buf, size_t len, void* opaque);
  static void GuestError(const char* msg, void* opaque);
  static int64_t ClockNs(void* opaque);
  static void* TimerNew(SlirpTimerCb cb, void* cb_opaque, void* opaque);
  static void TimerFree(void* timer, void* opaque);
  static void TimerMod(void* timer, int64_t expire_ms, void* opaque);
  static void RegisterFd(int fd, void* opaque);
  static void UnregisterFd(int fd, void* opaque);
  static void Notify(void* opaque);
  static int AddPoll(int fd, int events, void* opaque);
  static int GetREvents(int idx, void* opaque);

  static int64_t NowMs();
  int RunDueTimers(int64_t now_ms);
  // The epoll set after a fill: what changed is added, modified or removed; all = re-assert every fd
  // (an fd libslirp closed without telling us and reused for a new socket is then watched again).
  void SyncWatched(bool all);
  void ArmWakeUp(int64_t deadline_ms);

  const SlirpApi& api_;
  SlirpStack* stack_ = nullptr;
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  int64_t armed_ms_ = -1;                      // when timer_fd_ fires; -1: not armed
  std::vector<pollfd> fds_;                    // this round's fill; the index is libslirp's
  std::unordered_map<int, uint32_t> watched_;  // fd -> epoll events in epoll_fd_
  std::vector<int> gone_;                      // scratch of SyncWatched
  std::vector<std::unique_ptr<Timer>> timers_;
  FrameBacklog backlog_;
  uint64_t drops_ = 0;
};

}  // namespace vhost
