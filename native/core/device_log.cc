// The device's side of dirty-page logging (core/dirty_log.h): the front-end's log mapped at
// SET_LOG_BASE, logging switched on and off with VHOST_F_LOG_ALL, and for each queue its shadow and
// the guest-physical ranges of its ring the device writes. Control thread only, workers stopped
// around every change; the data path sees a queue's `log` pointer and nothing else.
#include <unistd.h>

#include <cerrno>

#include "core/device.h"

namespace vhost {

int VhostDevice::SetLogBase(int fd, uint64_t size, uint64_t offset, std::string* err) {
  if (closed_) {
    if (fd >= 0) close(fd);
    *err = "the device is closed";
    return EBADF;
  }
  std::unique_ptr<DirtyLog> log = DirtyLog::Map(fd, size, offset, err);
  if (!log) return EINVAL;
  if (log->covers() < memory_->EndGpa()) {
    *err = "a log of " + std::to_string(size) + " bytes covers " + std::to_string(log->covers()) +
           " bytes of guest memory, which ends at " + std::to_string(memory_->EndGpa());
    return EINVAL;
  }
  return RunQuiesced([&] {
    // The shadows are empty between bursts; flush them anyway so nothing marked for the old log is
    // lost, then let every queue log into the new one.
    for (Queue& queue : queues_)
      if (queue.log) queue.log->Flush(*queue.dirty_log);
    shadows_.clear();
    for (Queue& queue : queues_) queue.log = nullptr;
    dirty_log_ = std::move(log);
    ApplyLogging();
    return 0;
  });
}

void VhostDevice::ApplyLogging() {
  const bool on = dirty_log_ && ((features_ >> kFeatureLogAll) & 1);
  if (on == logging()) return;
  shadows_.clear();
  for (Queue& queue : queues_) {
    queue.log = nullptr;
    queue.dirty_log = nullptr;
    if (!on) continue;
    shadows_.push_back(std::make_unique<ShadowLog>(dirty_log_->words()));
    queue.log = shadows_.back().get();
    queue.dirty_log = dirty_log_.get();
    queue.SetLogRanges(*memory_);
  }
}

void VhostDevice::CheckLogCovers() {
  if (dirty_log_ && memory_->EndGpa() > dirty_log_->covers())
    Report("guest memory (ending at " + std::to_string(memory_->EndGpa()) + ") grew past the dirty log (" +
           std::to_string(dirty_log_->covers()) + " bytes): pages beyond it are not logged until a larger log comes");
}

}  // namespace vhost
