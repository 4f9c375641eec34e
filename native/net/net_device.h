// One virtio-net device served to one front-end connection: its guest memory, its queues, the worker
// thread that services them and the port its frames go to. All methods except the worker's own
// run on the JS thread; each one that changes what the worker reads stops the worker first and
// starts it again afterwards (Quiesce), so the worker never sees a half-changed device.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/guest_memory.h"
#include "core/virtqueue.h"
#include "core/worker.h"
#include "net/port.h"
#include "net/virtio_net.h"

namespace vhost {

class NetDevice {
 public:
  static constexpr int kMaxQueuePairs = 16;

  // The counters (queue_count() * kStatsPerQueue) are shared with whoever reads them (the JS
  // buffer), so that they outlive the device if the reader does.
  NetDevice(int queue_pairs, std::unique_ptr<Port> port);
  const std::shared_ptr<uint64_t[]>& stats() const { return stats_; }
  size_t stats_bytes() const { return queues_.size() * kStatsPerQueue * sizeof(uint64_t); }
  ~NetDevice();

  int queue_count() const { return static_cast<int>(queues_.size()); }

  // Each returns 0 or an errno value with *err set. Fds passed in are always consumed.
  int SetMemTable(const std::vector<RegionSpec>& regions, const std::vector<int>& fds, std::string* err);
  int AddMemRegion(const RegionSpec& region, int fd, std::string* err);
  int RemoveMemRegion(const RegionSpec& region, std::string* err);
  int SetFeatures(uint64_t features, std::string* err);
  // Busy-poll budget of the worker in microseconds; 0: event-driven only (idle CPU ~0).
  void SetPollMicros(uint32_t us);
  int SetVringNum(int q, uint32_t num, std::string* err);
  int SetVringBase(int q, uint16_t base, std::string* err);
  int SetVringAddr(int q, uint64_t desc_ua, uint64_t used_ua, uint64_t avail_ua, std::string* err);
  // Stops the queue and returns the index of the next available entry it would have processed.
  int GetVringBase(int q, uint16_t* base, std::string* err);
  int SetVringKick(int q, int fd, std::string* err);  // fd -1: none
  int SetVringCall(int q, int fd, std::string* err);
  int SetVringErr(int q, int fd, std::string* err);
  int SetVringEnable(int q, bool on, std::string* err);
  // Back to the state of a new connection: worker stopped, fds closed, memory unmapped.
  void Reset();
  // Stops the worker for good (env teardown); the device only accepts Reset afterwards.
  void Shutdown();
  // Shutdown, Reset, and the port released (a tap interface is closed): the device is done.
  void Close();
  // Reasons logged by the worker since the last call (queue broken, chains dropped).
  std::vector<std::string> TakeEvents();

 private:
  class Quiesce;
  bool CheckQueue(int q, std::string* err) const;
  int SetVringFd(int q, int fd, int Queue::*slot, const char* what, std::string* err);
  int AttachQueue(Queue& q, std::string* err);
  void Reattach();
  void StartWorker();
  bool ServicePair(int pair, bool arm_when_idle);
  void Report(const std::string& what);

  std::unique_ptr<Port> port_;
  std::shared_ptr<uint64_t[]> stats_;
  std::unique_ptr<GuestMemory> memory_;
  std::vector<Queue> queues_;
  NetSettings settings_;
  uint64_t features_ = 0;
  Worker worker_;
  bool shut_down_ = false;
  uint32_t poll_us_ = 0;
  // Set by the worker when guest memory faulted (SIGBUS: the front-end shrank its file); the data
  // path stays off until the front-end sends a new memory table.
  std::atomic<bool> memory_faulted_{false};
  const std::function<bool()> should_stop_;
  const Reporter report_;

  std::mutex events_mu_;
  std::vector<std::string> events_;
};

}  // namespace vhost
