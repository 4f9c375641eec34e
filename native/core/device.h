// The generic vhost device served to one front-end connection: its guest memory table, its queues
// (ring, eventfds, enable, counters), the negotiated ring features, the worker threads that serve
// the queues and which worker serves which queue, and the reasons the data path logged. What a
// device kind adds (virtio-net: settings, net header, ports) plugs in through the hooks below.
//
// All public methods run on the JS thread. A change the workers read stops the workers concerned
// first and starts them again afterwards (Quiesce): a memory-table or feature change stops every
// worker, a vring change only the worker that serves that vring.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/dirty_log.h"
#include "core/guest_memory.h"
#include "core/inline_server.h"
#include "core/report.h"
#include "core/virtqueue.h"
#include "core/worker.h"

namespace vhost {

class VhostDevice;

// A thread outside a device that serves it (a switch's, net/switch/switch.h), for a device made
// with no workers. The device treats it as its workers: every control change that a worker would be
// stopped for pauses the host's thread around it. All calls come on the device's control thread.
class DeviceHost {
 public:
  // Returns once the host's thread no longer touches the device; pauses nest (Resume each).
  virtual void Pause() = 0;
  // The last Resume starts the thread again, over what the devices then have ready.
  virtual void Resume() = 0;
  // The device's front-end went away (Reset, inside a pause): what was learnt about it is stale.
  virtual void Forget(VhostDevice* device) = 0;
  // The device is being closed or destroyed: let go of it (it calls SetHost(nullptr) back).
  virtual void Release(VhostDevice* device) = 0;

 protected:
  ~DeviceHost() = default;
};

class VhostDevice {
 public:
  // Polled by a service pass between bursts; true once its worker is asked to stop.
  using StopCheck = std::function<bool()>;

  // The queues come in groups of `queues_per_group` that are always served together (virtio-net:
  // an RX/TX pair), on `workers` threads (1..groups; see WorkerOfGroup), or with `workers` 0 on the
  // thread that owns the device, when it calls ServeInline (core/inline_server.h). The counters
  // (queue_count * kStatsStride) are shared with whoever reads them (the JS buffer), so that
  // they outlive the device if the reader does.
  VhostDevice(int groups, int queues_per_group, int workers);
  // A kind's destructor calls Reset first: the workers call its ServiceGroup until they stop.
  virtual ~VhostDevice();
  VhostDevice(const VhostDevice&) = delete;
  VhostDevice& operator=(const VhostDevice&) = delete;

  const std::shared_ptr<uint64_t[]>& stats() const { return stats_; }
  size_t stats_bytes() const { return queues_.size() * kStatsStride * sizeof(uint64_t); }
  int queue_count() const { return static_cast<int>(queues_.size()); }
  int group_count() const { return queue_count() / queues_per_group_; }
  int worker_count() const { return static_cast<int>(workers_.size()); }
  // Served inline (workers 0): the fd to watch (readable when a queue was kicked), and one pass over
  // every group, on the calling thread; `arm`: ask for kicks where idle (false while the caller
  // polls, as a busy-polling worker does). ServeInline returns whether anything moved.
  int inline_fd() const { return inline_ ? inline_->fd() : -1; }
  bool ServeInline(bool arm);
  // A device with 0 workers served by `host`'s thread from now on (null: by nobody). Called by the
  // host with its thread paused.
  void SetHost(DeviceHost* host);
  DeviceHost* host() const { return host_; }
  // For the host's thread: the watches it needs for this device (ready queues' kicks, tag = queue
  // index, and the groups' fds, tag = kGroupTag + group); none once shut down or faulted.
  std::vector<Worker::Watch> HostWatches() const;
  static constexpr uint32_t kGroupTag = 0x10000;
  // On the host's thread: a watched fd of `tag` was signalled (counts a kick).
  void Signalled(uint32_t tag);
  // On the host's thread: serves `group` as its worker would; false when shut down or faulted.
  bool ServeHosted(int group, bool arm_when_idle, const StopCheck& should_stop);
  // On the host's thread, after a SIGBUS it survived: whether `addr` lies in this device's guest
  // memory, and marking the device faulted (its data path stops until a new memory table).
  bool MapsHostAddress(const void* addr) const { return memory_->MapsHostAddress(addr); }
  void MemoryFaulted() { OnMemoryFault(); }
  bool memory_faulted() const { return memory_faulted_.load(std::memory_order_relaxed); }

  // The thread name of worker w (`vhu-<device>-w<w>`, as /proc/PID/task/*/comm shows it).
  const std::string& worker_name(int w) const { return workers_[w]->name(); }

  // Each returns 0 or an errno value with *err set. Fds passed in are always consumed.
  int SetMemTable(const std::vector<RegionSpec>& regions, const std::vector<int>& fds, std::string* err);
  int AddMemRegion(const RegionSpec& region, int fd, std::string* err);
  int RemoveMemRegion(const RegionSpec& region, std::string* err);
  int SetFeatures(uint64_t features, std::string* err);
  // Busy-poll budget of the workers in microseconds; 0: event-driven only (idle CPU ~0).
  void SetPollMicros(uint32_t us);
  int SetVringNum(int q, uint32_t num, std::string* err);
  int SetVringBase(int q, uint32_t base, std::string* err);  // in the layout's format
  // `log`: VHOST_VRING_F_LOG, the ring's own writes logged at `log_gpa` while migrating.
  int SetVringAddr(int q, uint64_t desc_ua, uint64_t used_ua, uint64_t avail_ua, bool log, uint64_t log_gpa,
                   std::string* err);
  // SET_LOG_BASE: the front-end's dirty-page log (core/dirty_log.h), `size` bytes at `offset` of `fd`
  // (consumed). Logging runs while it is mapped and VHOST_F_LOG_ALL is acked (device_log.cc).
  int SetLogBase(int fd, uint64_t size, uint64_t offset, std::string* err);
  bool logging() const { return !shadows_.empty(); }
  // Whether no ring runs: none has a kick fd (GET_VRING_BASE closes it, vhost-user "Ring states"),
  // so the device is suspended as DEVICE_STATE's transfer asks.
  bool RingsStopped() const;
  // Stops the queue and returns where it stands: split, the next available index it would have
  // taken; packed, that index and the used one with their wrap counters (vhost-user "Ring states").
  int GetVringBase(int q, uint32_t* base, std::string* err);
  int SetVringKick(int q, int fd, std::string* err);  // fd -1: none
  int SetVringCall(int q, int fd, std::string* err);
  int SetVringErr(int q, int fd, std::string* err);
  int SetVringEnable(int q, bool on, std::string* err);
  // Back to the state of a new connection: workers stopped, fds closed, memory unmapped.
  void Reset();
  // Stops the workers for good (env teardown); the device only accepts Reset afterwards.
  void Shutdown();
  // Shutdown, Reset, and the kind's resources released (a tap interface is closed): the device is done.
  void Close();
  // Reasons logged by the workers since the last call (queue broken, chains dropped, memory faulted).
  std::vector<std::string> TakeEvents();

 protected:
  // The hooks of a device kind. All but ServiceGroup run on the JS thread with every worker of the
  // device stopped; ServiceGroup runs on a worker thread, once per wake-up, never per descriptor.

  // The driver's features (SET_FEATURES), after the ring features were applied to every queue.
  virtual int OnFeatures(uint64_t features, std::string* err) = 0;
  // Moves what can be moved for the queues of `group` (queues group * queues_per_group and on);
  // returns whether anything moved. `arm_when_idle` false while the worker busy-polls: leave the
  // guest's kicks suppressed.
  virtual bool ServiceGroup(int group, bool arm_when_idle, const StopCheck& should_stop) = 0;
  // Every queue of `group` is now enabled (`on`), or one of them no longer is (SET_VRING_ENABLE,
  // GET_VRING_BASE). Runs with the group's worker stopped (the others may run).
  virtual int OnGroupEnable(int group, bool on, std::string* err) { return 0; }
  // Fds of `group` the worker must watch besides the kicks (edge-triggered), e.g. a tap's.
  virtual std::vector<int> GroupWatchFds(int group) const { return {}; }
  // The front-end went away: drop the kind's per-connection state.
  virtual void OnReset() {}
  // Close: release what the kind holds for good.
  virtual void OnClose() {}

  // Runs `change` with every worker stopped (for a kind's own control changes); returns its result.
  int RunQuiesced(const std::function<int()>& change);

  const GuestMemory& memory() const { return *memory_; }
  Queue& queue(int q) { return queues_[q]; }
  const Reporter& reporter() const { return report_; }

 private:
  class Quiesce;
  class HostPause;
  static constexpr int kEveryWorker = -1;

  // The worker map: which worker serves the queues of `group`. Round robin rather than blocks: a
  // guest that enables fewer groups than offered enables the first ones, and these then still get
  // a thread each.
  int WorkerOfGroup(int group) const { return workers_.empty() ? 0 : group % static_cast<int>(workers_.size()); }
  int WorkerOfQueue(int q) const { return WorkerOfGroup(q / queues_per_group_); }

  // Reset without the kind's hook (the destructor's: the kind is gone by then).
  void StopAndClear();
  bool CheckQueue(int q, std::string* err) const;
  bool GroupEnabled(int group) const;
  // Sets queue q's enable and calls OnGroupEnable when that changed its group's.
  int SetEnabled(int q, bool on, std::string* err);
  int SetVringFd(int q, int fd, int Queue::*slot, const char* what, std::string* err);
  int AttachQueue(Queue& q, std::string* err);
  // Logging on or off as the log and LOG_ALL say, every queue's shadow and ring ranges (workers
  // stopped).
  void ApplyLogging();
  // Memory grew past the log while migrating: said once in the events (the front-end sends a
  // bigger log; pages beyond the old one are not logged until it does).
  void CheckLogCovers();
  void Reattach();
  void StopWorkers(int worker);  // kEveryWorker: all of them
  void StartWorker(int worker);
  // The watches a worker (or the inline server) needs for `groups`: ready queues' kicks, the groups' fds.
  std::vector<Worker::Watch> WatchesOf(const std::vector<int>& groups) const;
  void WatchInline();
  bool ServeGroup(int group, bool arm_when_idle, const StopCheck& should_stop);
  void OnMemoryFault();
  void Report(const std::string& what);

  const int queues_per_group_;
  std::shared_ptr<uint64_t[]> stats_;
  std::unique_ptr<GuestMemory> memory_;
  std::vector<Queue> queues_;
  uint64_t features_ = 0;
  std::unique_ptr<DirtyLog> dirty_log_;              // SET_LOG_BASE's, until replaced or reset
  std::vector<std::unique_ptr<ShadowLog>> shadows_;  // one per queue while logging, else empty
  std::vector<std::unique_ptr<Worker>> workers_;     // indexed by WorkerOfGroup; empty when served inline
  std::unique_ptr<InlineServer> inline_;             // workers 0
  std::vector<StopCheck> should_stop_;               // one per worker
  DeviceHost* host_ = nullptr;                       // serves the device instead of workers (a switch), or null
  bool shut_down_ = false;
  bool closed_ = false;
  uint32_t poll_us_ = 0;
  // Set by a worker when guest memory faulted (SIGBUS: the front-end shrank its file); the data
  // path stays off until the front-end sends a new memory table.
  std::atomic<bool> memory_faulted_{false};
  const Reporter report_;

  std::mutex events_mu_;
  std::vector<std::string> events_;
};

}  // namespace vhost
