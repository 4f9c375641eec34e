// A device queue: the split ring plus what the control plane attached to it (size, addresses,
// eventfds, enable) and its counters. Owned by NetDevice; touched by the worker only while running.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <functional>
#include <string>

#include "core/split_ring.h"

namespace vhost {

// Counter slots per queue, in this order; lib/net/stats.ts reads the same layout.
enum QueueStat : int { kStatPackets, kStatBytes, kStatDrops, kStatErrors, kStatKicks, kStatCalls, kStatsPerQueue };

struct Queue {
  SplitRing ring;
  uint32_t num = 0;
  bool addr_set = false;
  uint64_t desc_ua = 0, avail_ua = 0, used_ua = 0;
  int kick_fd = -1;
  int call_fd = -1;
  int err_fd = -1;
  bool enabled = false;
  bool broken = false;
  uint64_t* stats = nullptr;  // kStatsPerQueue counters, inside the device's shared stats buffer

  bool Ready() const { return enabled && !broken && ring.attached() && kick_fd >= 0; }
  // Relaxed stores: JS reads the counters from another thread, a torn or stale read is fine.
  void Count(QueueStat s, uint64_t n = 1) { __atomic_store_n(&stats[s], stats[s] + n, __ATOMIC_RELAXED); }
  void Call() {
    if (call_fd < 0) return;
    uint64_t one = 1;
    (void)!write(call_fd, &one, sizeof one);
    Count(kStatCalls);
  }
};

// Where the data path sends reasons for the log (a queue broken, frames dropped); the device queues
// them for JS (takeEvents).
using Reporter = std::function<void(const std::string&)>;

// Marks a queue broken (it is served no more until reconfigured) and logs why, once.
void BreakQueue(Queue& q, const char* which, const std::string& why, const Reporter& report);

}  // namespace vhost
