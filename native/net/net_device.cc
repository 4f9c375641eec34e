#include "net/net_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vhost {

namespace {
constexpr size_t kMaxPendingEvents = 64;
// Worker tags: queue indexes for kicks, kPortTag + pair for a port's own fds.
constexpr uint32_t kPortTag = 0x10000;

void CloseFd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// Accepts a kick/call/err fd only if it is an eventfd, and makes it non-blocking: the worker
// writes calls from its thread and must never block on an fd the front-end controls. On failure
// the fd is closed.
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

// Stops the worker for the lifetime of the scope and starts it again with the queues then ready.
class NetDevice::Quiesce {
 public:
  explicit Quiesce(NetDevice* d) : d_(d) { d_->worker_.Stop(); }
  ~Quiesce() { d_->StartWorker(); }

 private:
  NetDevice* d_;
};

NetDevice::NetDevice(int queue_pairs, std::unique_ptr<Port> port)
    : port_(std::move(port)),
      stats_(new uint64_t[2 * queue_pairs * kStatsPerQueue]()),
      memory_(std::make_unique<GuestMemory>()),
      queues_(2 * queue_pairs),
      should_stop_([this] { return worker_.stop_requested(); }),
      report_([this](const std::string& what) { Report(what); }) {
  for (size_t i = 0; i < queues_.size(); i++) queues_[i].stats = stats_.get() + i * kStatsPerQueue;
}

NetDevice::~NetDevice() { Reset(); }

void NetDevice::SetPollMicros(uint32_t us) {
  Quiesce q(this);
  poll_us_ = us;
}

bool NetDevice::CheckQueue(int q, std::string* err) const {
  if (q >= 0 && q < queue_count()) return true;
  *err = "queue index " + std::to_string(q) + " out of range (device has " + std::to_string(queue_count()) + " queues)";
  return false;
}

int NetDevice::AttachQueue(Queue& q, std::string* err) {
  if (!q.addr_set) return 0;
  if (q.num == 0) {
    *err = "SET_VRING_ADDR before SET_VRING_NUM";
    q.ring.Detach();
    return EINVAL;
  }
  if (!q.ring.Attach(*memory_, q.num, q.desc_ua, q.avail_ua, q.used_ua, err)) {
    q.ring.Detach();
    return EINVAL;
  }
  q.SetRingFeatures(features_);
  return 0;
}

void NetDevice::Reattach() {
  for (size_t i = 0; i < queues_.size(); i++) {
    std::string err;
    if (queues_[i].addr_set && AttachQueue(queues_[i], &err) != 0)
      Report("queue " + std::to_string(i) + " detached after memory change: " + err);
  }
}

int NetDevice::SetMemTable(const std::vector<RegionSpec>& regions, const std::vector<int>& fds, std::string* err) {
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
  return 0;
}

int NetDevice::AddMemRegion(const RegionSpec& region, int fd, std::string* err) {
  Quiesce q(this);
  int rc = memory_->Add(region, fd, err);
  if (rc == 0) Reattach();
  return rc;
}

int NetDevice::RemoveMemRegion(const RegionSpec& region, std::string* err) {
  Quiesce q(this);
  if (!memory_->Remove(region)) {
    *err = "REM_MEM_REG: no region with that guest address, size and user address";
    return ENOENT;
  }
  Reattach();
  return 0;
}

int NetDevice::SetFeatures(uint64_t features, std::string* err) {
  if (!port_) {
    *err = "the device is closed";
    return EBADF;
  }
  Quiesce q(this);
  settings_ = NetSettings::FromFeatures(features);
  features_ = features;
  for (Queue& queue : queues_) queue.SetRingFeatures(features);
  return port_->OnFeatures(features, settings_, err);
}

int NetDevice::SetVringNum(int qi, uint32_t num, std::string* err) {
  if (!CheckQueue(qi, err)) return EINVAL;
  if (num == 0 || num > kMaxRingSize || (num & (num - 1)) != 0) {
    *err = "ring size " + std::to_string(num) + " is not a power of two in 1..32768";
    return EINVAL;
  }
  Quiesce q(this);
  queues_[qi].num = num;
  return AttachQueue(queues_[qi], err);
}

int NetDevice::SetVringBase(int qi, uint16_t base, std::string* err) {
  if (!CheckQueue(qi, err)) return EINVAL;
  Quiesce q(this);
  queues_[qi].ring.set_last_avail(base);
  return 0;
}

int NetDevice::SetVringAddr(int qi, uint64_t desc_ua, uint64_t used_ua, uint64_t avail_ua, std::string* err) {
  if (!CheckQueue(qi, err)) return EINVAL;
  Quiesce q(this);
  Queue& queue = queues_[qi];
  queue.addr_set = true;
  queue.desc_ua = desc_ua;
  queue.used_ua = used_ua;
  queue.avail_ua = avail_ua;
  queue.broken = false;
  int rc = AttachQueue(queue, err);
  if (rc != 0) queue.addr_set = false;
  return rc;
}

int NetDevice::GetVringBase(int qi, uint16_t* base, std::string* err) {
  if (!CheckQueue(qi, err)) return EINVAL;
  Quiesce q(this);
  Queue& queue = queues_[qi];
  *base = queue.ring.last_avail();
  // The ring is stopped: it starts again only after a new kick fd (vhost-user "Starting and
  // stopping rings").
  queue.enabled = false;
  CloseFd(&queue.kick_fd);
  return 0;
}

int NetDevice::SetVringFd(int qi, int fd, int Queue::*slot, const char* what, std::string* err) {
  if (!CheckQueue(qi, err)) {
    if (fd >= 0) close(fd);
    return EINVAL;
  }
  int rc = AdoptEventfd(fd, what, err);
  if (rc != 0) return rc;
  Quiesce q(this);
  CloseFd(&(queues_[qi].*slot));
  queues_[qi].*slot = fd;
  return 0;
}

int NetDevice::SetVringKick(int q, int fd, std::string* err) { return SetVringFd(q, fd, &Queue::kick_fd, "kick", err); }
int NetDevice::SetVringCall(int q, int fd, std::string* err) { return SetVringFd(q, fd, &Queue::call_fd, "call", err); }
int NetDevice::SetVringErr(int q, int fd, std::string* err) { return SetVringFd(q, fd, &Queue::err_fd, "err", err); }

int NetDevice::SetVringEnable(int qi, bool on, std::string* err) {
  if (!CheckQueue(qi, err)) return EINVAL;
  Quiesce q(this);
  queues_[qi].enabled = on;
  return 0;
}

void NetDevice::Reset() {
  worker_.Stop();
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
  settings_ = NetSettings();
  features_ = 0;
  if (port_) port_->OnReset();
}

void NetDevice::Shutdown() {
  shut_down_ = true;
  worker_.Stop();
}

void NetDevice::Close() {
  Shutdown();
  Reset();
  port_.reset();
}

void NetDevice::StartWorker() {
  if (shut_down_) return;
  std::vector<Worker::Watch> watches;
  for (size_t i = 0; i < queues_.size(); i++)
    if (queues_[i].Ready()) watches.push_back(Worker::Watch{queues_[i].kick_fd, static_cast<uint32_t>(i)});
  if (watches.empty() || !port_) return;
  for (int pair = 0; pair < queue_count() / 2; pair++)
    for (int fd : port_->WatchFds(pair)) watches.push_back(Worker::Watch{fd, kPortTag + static_cast<uint32_t>(pair)});
  std::string err;
  // With a poll budget the worker arms kicks only when it stops polling (Poll(true)).
  const bool arm = poll_us_ == 0;
  auto handler = [this, arm](uint32_t tag, bool kicked) {
    if (tag >= kPortTag) {
      ServicePair(static_cast<int>(tag - kPortTag), arm);
      return;
    }
    if (kicked) queues_[tag].Count(kStatKicks);
    ServicePair(static_cast<int>(tag / 2), arm);
  };
  auto poll = [this](bool arm_now) {
    bool moved = false;
    for (int pair = 0; pair < queue_count() / 2; pair++) moved = ServicePair(pair, arm_now) || moved;
    return moved;
  };
  auto on_fault = [this] {
    memory_faulted_ = true;
    Report(
        "guest memory faulted (SIGBUS): the front-end shrank a memory region's file under us; the data path is "
        "stopped until it sends a new memory table");
  };
  if (worker_.Start(watches, handler, poll, poll_us_, on_fault, &err) != 0) Report(err);
}

bool NetDevice::ServicePair(int pair, bool arm_when_idle) {
  if (memory_faulted_.load(std::memory_order_relaxed)) return false;
  Queue& rx = queues_[2 * pair];
  Queue& tx = queues_[2 * pair + 1];
  bool rx_was_broken = rx.broken, tx_was_broken = tx.broken;
  PairContext c{*memory_, settings_, rx, tx, arm_when_idle, should_stop_, report_};
  bool moved = port_->Service(c);
  // A broken queue raises its error eventfd (VHOST_USER_SET_VRING_ERR) once.
  for (Queue* q : {&rx, &tx}) {
    bool was = q == &rx ? rx_was_broken : tx_was_broken;
    if (q->broken && !was && q->err_fd >= 0) {
      uint64_t one = 1;
      (void)!write(q->err_fd, &one, sizeof one);
    }
  }
  return moved;
}

void NetDevice::Report(const std::string& what) {
  std::lock_guard<std::mutex> lock(events_mu_);
  if (events_.size() < kMaxPendingEvents) events_.push_back(what);
}

std::vector<std::string> NetDevice::TakeEvents() {
  std::lock_guard<std::mutex> lock(events_mu_);
  std::vector<std::string> out;
  out.swap(events_);
  return out;
}

}  // namespace vhost
