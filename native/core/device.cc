#include "core/device.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace vhost {

namespace {
constexpr size_t kMaxPendingEvents = 64;
// Worker tags: queue indexes for kicks, kGroupTag + group for the fds a group's kind watches.
constexpr uint32_t kGroupTag = VhostDevice::kGroupTag;
// ServeGroup keeps which queues of a group were broken in a bit mask.
constexpr int kMaxQueuesPerGroup = 32;

// The counters of `queues` queues, zeroed, on a cache-line boundary (see kStatsStride).
std::shared_ptr<uint64_t[]> NewStats(int queues) {
  const size_t bytes = static_cast<size_t>(queues) * kStatsStride * sizeof(uint64_t);
  void* p = aligned_alloc(64, bytes);
  if (!p) abort();
  memset(p, 0, bytes);
  return std::shared_ptr<uint64_t[]>(static_cast<uint64_t*>(p), [](uint64_t* q) { free(q); });
}

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// Accepts a kick/call/err fd only if it is an eventfd, and makes it non-blocking: a worker writes
// calls from its thread and must never block on an fd the front-end controls. On failure the fd is
// closed.
int AdoptEventfd(int fd, const char* what, std::string* err) {
  if (fd < 0) return 0;
  char link[64] = {};
  std::string proc = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = readlink(proc.c_str(), link, sizeof link - 1);
  if (n <= 0 || strcmp(link, "anon_inode:[eventfd]") != 0) {
    close(fd);
    *err = std::string(what) + " fd is not an eventfd";
    return EINVAL;
  }
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    int e = errno;
    close(fd);
    *err = std::string(what) + " fd: " + strerror(e);
    return e;
  }
  return 0;
}
}  // namespace

// Pauses the device's host (if it has one) for the lifetime of the scope.
class VhostDevice::HostPause {
 public:
  explicit HostPause(VhostDevice* d) : host_(d->host_) {
    if (host_) host_->Pause();
  }
  ~HostPause() {
    if (host_) host_->Resume();
  }
  HostPause(const HostPause&) = delete;

 private:
  DeviceHost* host_;
};

// Stops the workers a change touches for the lifetime of the scope (every worker, or the one that
// serves a queue; a host's thread always) and starts them again with the queues then ready.
class VhostDevice::Quiesce {
 public:
  explicit Quiesce(VhostDevice* d, int worker = kEveryWorker) : d_(d), worker_(worker), host_(d) {
    d_->StopWorkers(worker_);
  }
  static Quiesce ForQueue(VhostDevice* d, int q) { return Quiesce(d, d->WorkerOfQueue(q)); }
  ~Quiesce() {
    for (size_t w = 0; w < d_->workers_.size(); w++)
      if (worker_ == kEveryWorker || worker_ == static_cast<int>(w)) d_->StartWorker(static_cast<int>(w));
    if (d_->inline_) d_->WatchInline();
  }
  Quiesce(const Quiesce&) = delete;

 private:
  VhostDevice* d_;
  int worker_;
  HostPause host_;  // resumed after the workers started (members destroyed after the body)
};

VhostDevice::VhostDevice(int groups, int queues_per_group, int workers)
    : queues_per_group_(queues_per_group),
      stats_(NewStats(groups * queues_per_group)),
      memory_(std::make_unique<GuestMemory>()),
      queues_(groups * queues_per_group),
      report_([this](const std::string& what) { Report(what); }) {
  // Programming errors: the callers have checked these.
  if (queues_per_group < 1 || queues_per_group > kMaxQueuesPerGroup || workers < 0 || workers > groups) abort();
  if (workers == 0) inline_ = std::make_unique<InlineServer>();
  for (size_t i = 0; i < queues_.size(); i++) queues_[i].stats = stats_.get() + i * kStatsStride;
  // Thread names (`vhu-<device>-w<worker>`, /proc/PID/task/*/comm) tell the devices of a process apart.
  static std::atomic<unsigned> devices{0};
  const unsigned device = ++devices % 10000;
  for (int w = 0; w < workers; w++) {
    workers_.push_back(std::make_unique<Worker>("vhu-" + std::to_string(device) + "-w" + std::to_string(w)));
    Worker* worker = workers_.back().get();
    should_stop_.push_back([worker] { return worker->stop_requested(); });
  }
}

VhostDevice::~VhostDevice() {
  // A kind releases its host in its own destructor (the host calls the kind's hooks); this is a
  // last safety net.
  if (host_) host_->Release(this);
  StopAndClear();
}

void VhostDevice::SetHost(DeviceHost* host) {
  host_ = host;
  // Nobody serves a hosted device inline: its kicks are the host's to watch.
  if (inline_) WatchInline();
}

std::vector<Worker::Watch> VhostDevice::HostWatches() const {
  if (shut_down_ || memory_faulted_.load(std::memory_order_relaxed)) return {};
  std::vector<int> groups;
  for (int g = 0; g < group_count(); g++) groups.push_back(g);
  return WatchesOf(groups);
}

void VhostDevice::Signalled(uint32_t tag) {
  if (tag < kGroupTag && tag < queues_.size()) queues_[tag].Count(kStatKicks);
}

bool VhostDevice::ServeHosted(int group, bool arm_when_idle, const StopCheck& should_stop) {
  if (shut_down_ || !host_) return false;
  return ServeGroup(group, arm_when_idle, should_stop);
}

void VhostDevice::SetPollMicros(uint32_t us) {
  Quiesce q(this);
  poll_us_ = us;
}

bool VhostDevice::CheckQueue(int q, std::string* err) const {
  if (q >= 0 && q < queue_count()) return true;
  *err = "queue index " + std::to_string(q) + " out of range (device has " + std::to_string(queue_count()) + " queues)";
  return false;
}

int VhostDevice::AttachQueue(Queue& q, std::string* err) {
  if (!q.addr_set) return 0;
  if (q.num == 0) {
    *err = "SET_VRING_ADDR before SET_VRING_NUM";
    q.ring.Detach();
    return EINVAL;
  }
  q.SetRingFeatures(features_);  // the layout first: it decides how the addresses are read
  if (!q.ring.Attach(*memory_, q.num, q.desc_ua, q.avail_ua, q.used_ua, err)) {
    q.ring.Detach();
    return EINVAL;
  }
  if (q.log) q.SetLogRanges(*memory_);
  return 0;
}

void VhostDevice::Reattach() {
  for (size_t i = 0; i < queues_.size(); i++) {
    std::string err;
    if (queues_[i].addr_set && AttachQueue(queues_[i], &err) != 0)
      Report("queue " + std::to_string(i) + " detached after memory change: " + err);
  }
}

int VhostDevice::SetMemTable(const std::vector<RegionSpec>& regions, const std::vector<int>& fds, std::string* err) {
  auto next = std::make_unique<GuestMemory>();
  int rc = 0;
  for (size_t i = 0; i < regions.size(); i++) {
    if (rc == 0) {
      rc = next->Add(regions[i], fds[i], err);
      if (rc != 0) *err = "region " + std::to_string(i) + ": " + *err;
    } else if (fds[i] >= 0) {
      close(fds[i]);
    }
  }
  if (rc != 0) return rc;  // `next` unmaps what it had mapped
  Quiesce q(this);
  memory_ = std::move(next);
  memory_faulted_ = false;
  Reattach();
  CheckLogCovers();
  return 0;
}

int VhostDevice::AddMemRegion(const RegionSpec& region, int fd, std::string* err) {
  Quiesce q(this);
  int rc = memory_->Add(region, fd, err);
  if (rc == 0) Reattach();
  if (rc == 0) CheckLogCovers();
  return rc;
}

int VhostDevice::RemoveMemRegion(const RegionSpec& region, std::string* err) {
  Quiesce q(this);
  if (!memory_->Remove(region)) {
    *err = "REM_MEM_REG: no region with that guest address, size and user address";
    return ENOENT;
  }
  Reattach();
  return 0;
}

int VhostDevice::SetFeatures(uint64_t features, std::string* err) {
  if (closed_) {
    *err = "the device is closed";
    return EBADF;
  }
  Quiesce q(this);
  // LOG_ALL alone switched (a migration starts or ends): nothing else about the rings changed, and
  // re-attaching them would disturb a running guest (rust-vmm learnt this the hard way).
  const bool log_all_only = features_ != 0 && (features ^ features_) == (1ull << kFeatureLogAll);
  features_ = features;
  if (!log_all_only) {
    for (Queue& queue : queues_) queue.SetRingFeatures(features);
    Reattach();  // the layout may have changed (split or packed)
    int rc = OnFeatures(features, err);
    if (rc != 0) return rc;
  }
  ApplyLogging();
  return 0;
}

int VhostDevice::SetVringNum(int qi, uint32_t num, std::string* err) {
  if (!CheckQueue(qi, err)) return EINVAL;
  // A packed ring may have any size (virtio 2.8.10.1), a split one only a power of two.
  const bool packed = (features_ >> kFeatureRingPacked) & 1;
  if (num == 0 || num > kMaxRingSize || (!packed && (num & (num - 1)) != 0)) {
    *err = "ring size " + std::to_string(num) + (packed ? " is not in 1..32768" : " is not a power of two in 1..32768");
    return EINVAL;
  }
  Quiesce q = Quiesce::ForQueue(this, qi);
  queues_[qi].num = num;
  return AttachQueue(queues_[qi], err);
}

int VhostDevice::SetVringBase(int qi, uint32_t base, std::string* err) {
  if (!CheckQueue(qi, err)) return EINVAL;
  Quiesce q = Quiesce::ForQueue(this, qi);
  queues_[qi].ring.SetBase(base);
  // An attached ring checks the new base against its size (packed: an index beyond it).
  int rc = AttachQueue(queues_[qi], err);
  if (rc != 0) queues_[qi].addr_set = false;
  return rc;
}

int VhostDevice::SetVringAddr(int qi, uint64_t desc_ua, uint64_t used_ua, uint64_t avail_ua, bool log, uint64_t log_gpa,
                              std::string* err) {
  if (!CheckQueue(qi, err)) return EINVAL;
  Quiesce q = Quiesce::ForQueue(this, qi);
  Queue& queue = queues_[qi];
  queue.log_addr = log;
  queue.log_gpa = log_gpa;
  queue.addr_set = true;
  queue.desc_ua = desc_ua;
  queue.used_ua = used_ua;
  queue.avail_ua = avail_ua;
  queue.broken = false;
  int rc = AttachQueue(queue, err);
  if (rc != 0) queue.addr_set = false;
  return rc;
}

bool VhostDevice::RingsStopped() const {
  for (const Queue& q : queues_)
    if (q.kick_fd >= 0) return false;
  return true;
}

int VhostDevice::GetVringBase(int qi, uint32_t* base, std::string* err) {
  if (!CheckQueue(qi, err)) return EINVAL;
  Quiesce q = Quiesce::ForQueue(this, qi);
  Queue& queue = queues_[qi];
  *base = queue.ring.GetBase();
  // What the ring wrote after its last publish (a kick asked for, event index) reaches the log
  // before the front-end's last read of it.
  if (queue.log) queue.FlushLog();
  // The ring is stopped: it starts again only after a new kick fd (vhost-user "Starting and
  // stopping rings").
  std::string why;
  if (SetEnabled(qi, false, &why) != 0) Report(why);
  CloseFd(&queue.kick_fd);
  return 0;
}

int VhostDevice::SetVringFd(int qi, int fd, int Queue::*slot, const char* what, std::string* err) {
  if (!CheckQueue(qi, err)) {
    if (fd >= 0) close(fd);
    return EINVAL;
  }
  int rc = AdoptEventfd(fd, what, err);
  if (rc != 0) return rc;
  Quiesce q = Quiesce::ForQueue(this, qi);
  CloseFd(&(queues_[qi].*slot));
  queues_[qi].*slot = fd;
  return 0;
}

int VhostDevice::SetVringKick(int q, int fd, std::string* err) {
  return SetVringFd(q, fd, &Queue::kick_fd, "kick", err);
}
int VhostDevice::SetVringCall(int q, int fd, std::string* err) {
  return SetVringFd(q, fd, &Queue::call_fd, "call", err);
}
int VhostDevice::SetVringErr(int q, int fd, std::string* err) { return SetVringFd(q, fd, &Queue::err_fd, "err", err); }

int VhostDevice::SetVringEnable(int qi, bool on, std::string* err) {
  if (!CheckQueue(qi, err)) return EINVAL;
  Quiesce q = Quiesce::ForQueue(this, qi);
  return SetEnabled(qi, on, err);
}

bool VhostDevice::GroupEnabled(int group) const {
  for (int i = 0; i < queues_per_group_; i++)
    if (!queues_[group * queues_per_group_ + i].enabled) return false;
  return true;
}

int VhostDevice::SetEnabled(int qi, bool on, std::string* err) {
  int group = qi / queues_per_group_;
  bool was = GroupEnabled(group);
  queues_[qi].enabled = on;
  bool now = GroupEnabled(group);
  return now == was ? 0 : OnGroupEnable(group, now, err);
}

void VhostDevice::StopAndClear() {
  StopWorkers(kEveryWorker);
  for (Queue& queue : queues_) {
    CloseFd(&queue.kick_fd);
    CloseFd(&queue.call_fd);
    CloseFd(&queue.err_fd);
    uint64_t* stats = queue.stats;
    queue = Queue();
    queue.stats = stats;
  }
  memory_->Clear();
  memory_faulted_ = false;
  features_ = 0;
  shadows_.clear();
  dirty_log_.reset();
}

void VhostDevice::Reset() {
  HostPause pause(this);
  StopAndClear();
  OnReset();
  if (host_) host_->Forget(this);
}

int VhostDevice::RunQuiesced(const std::function<int()>& change) {
  Quiesce q(this);
  return change();
}

void VhostDevice::Shutdown() {
  HostPause pause(this);
  shut_down_ = true;
  StopWorkers(kEveryWorker);
  if (inline_) inline_->SetWatches({});
}

void VhostDevice::Close() {
  if (host_) host_->Release(this);
  Shutdown();
  Reset();
  closed_ = true;
  inline_.reset();  // its epoll fd: the owner stopped watching it before closing
  OnClose();
}

void VhostDevice::StopWorkers(int worker) {
  for (size_t w = 0; w < workers_.size(); w++)
    if (worker == kEveryWorker || worker == static_cast<int>(w)) workers_[w]->Stop();
}

std::vector<Worker::Watch> VhostDevice::WatchesOf(const std::vector<int>& groups) const {
  std::vector<Worker::Watch> watches;
  for (int g : groups)
    for (int i = g * queues_per_group_; i < (g + 1) * queues_per_group_; i++)
      if (queues_[i].Ready()) watches.push_back(Worker::Watch{queues_[i].kick_fd, static_cast<uint32_t>(i)});
  if (watches.empty()) return watches;  // nothing to serve: no reason to wake for the groups' fds either
  for (int g : groups)
    for (int fd : GroupWatchFds(g)) watches.push_back(Worker::Watch{fd, kGroupTag + static_cast<uint32_t>(g)});
  return watches;
}

void VhostDevice::WatchInline() {
  if (host_) {
    inline_->SetWatches({});
    return;
  }
  std::vector<int> groups;
  for (int g = 0; g < group_count(); g++) groups.push_back(g);
  int rc = inline_->SetWatches(shut_down_ ? std::vector<Worker::Watch>{} : WatchesOf(groups));
  if (rc != 0) Report(std::string("watching the queues' kicks: ") + strerror(rc));
}

bool VhostDevice::ServeInline(bool arm) {
  if (!inline_ || host_ || shut_down_ || memory_faulted_.load(std::memory_order_relaxed)) return false;
  static const StopCheck kNever = [] { return false; };
  bool moved = false;
  auto signalled = [this](uint32_t tag) {
    if (tag < kGroupTag) queues_[tag].Count(kStatKicks);
  };
  auto serve = [&] {
    for (int g = 0; g < group_count(); g++) moved = ServeGroup(g, arm, kNever) || moved;
  };
  if (!inline_->Serve(signalled, serve)) OnMemoryFault();
  return moved;
}

void VhostDevice::StartWorker(int w) {
  if (shut_down_) return;
  std::vector<int> groups;
  for (int g = 0; g < group_count(); g++)
    if (WorkerOfGroup(g) == w) groups.push_back(g);
  std::vector<Worker::Watch> watches = WatchesOf(groups);
  if (watches.empty()) return;
  // With a poll budget the worker arms kicks only when it stops polling (Poll(true)).
  const bool arm = poll_us_ == 0;
  const StopCheck& stop = should_stop_[w];
  auto handler = [this, arm, &stop](uint32_t tag, bool kicked) {
    if (tag >= kGroupTag) {
      ServeGroup(static_cast<int>(tag - kGroupTag), arm, stop);
      return;
    }
    if (kicked) queues_[tag].Count(kStatKicks);
    ServeGroup(static_cast<int>(tag) / queues_per_group_, arm, stop);
  };
  auto poll = [this, groups, &stop](bool arm_now) {
    bool moved = false;
    for (int g : groups) moved = ServeGroup(g, arm_now, stop) || moved;
    return moved;
  };
  std::string err;
  if (workers_[w]->Start(
          watches, handler, poll, poll_us_, [this] { OnMemoryFault(); }, &err) != 0)
    Report(err);
}

// Runs on the worker thread, once per wake-up of `group` (or per busy-poll pass).
bool VhostDevice::ServeGroup(int group, bool arm_when_idle, const StopCheck& should_stop) {
  if (memory_faulted_.load(std::memory_order_relaxed)) return false;
  Queue* first = &queues_[group * queues_per_group_];
  uint32_t was_broken = 0;
  for (int i = 0; i < queues_per_group_; i++)
    if (first[i].broken) was_broken |= 1u << i;
  bool moved = ServiceGroup(group, arm_when_idle, should_stop);
  // A broken queue raises its error eventfd (VHOST_USER_SET_VRING_ERR) once.
  for (int i = 0; i < queues_per_group_; i++) {
    if (first[i].broken && !(was_broken & (1u << i)) && first[i].err_fd >= 0) {
      uint64_t one = 1;
      (void)!write(first[i].err_fd, &one, sizeof one);
    }
  }
  return moved;
}

void VhostDevice::OnMemoryFault() {
  memory_faulted_ = true;
  Report(
      "guest memory faulted (SIGBUS): the front-end shrank a memory region's file under us; the data path is "
      "stopped until it sends a new memory table");
}

void VhostDevice::Report(const std::string& what) {
  std::lock_guard<std::mutex> lock(events_mu_);
  if (events_.size() < kMaxPendingEvents) events_.push_back(what);
}

std::vector<std::string> VhostDevice::TakeEvents() {
  std::lock_guard<std::mutex> lock(events_mu_);
  std::vector<std::string> out;
  out.swap(events_);
  return out;
}

}  // namespace vhost
