// A device queue: the ring (split or packed, behind the ring verbs) plus what the control plane
// attached to it (size, addresses, eventfds, enable) and its counters. Owned by the core device
// (VhostDevice); touched by the worker that serves it only while that worker runs. Any device
// kind's data path works on these.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>

#include "core/report.h"
#include "core/ring.h"

namespace vhost {

// Counter slots per queue, in this order; lib/net/stats.ts reads the same layout.
enum QueueStat : int { kStatPackets, kStatBytes, kStatDrops, kStatErrors, kStatKicks, kStatCalls, kStatsPerQueue };

struct Queue {
  Ring ring;
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
  // The ring features the driver negotiated; decided at SET_FEATURES, never per chain.
  void SetRingFeatures(uint64_t features) { ring.SetFeatures(features); }
  // Relaxed stores: JS reads the counters from another thread, a torn or stale read is fine.
  void Count(QueueStat s, uint64_t n = 1) { __atomic_store_n(&stats[s], stats[s] + n, __ATOMIC_RELAXED); }
  void Call() {
    if (call_fd < 0) return;
    uint64_t one = 1;
    (void)!write(call_fd, &one, sizeof one);
    Count(kStatCalls);
  }
};

// Marks a queue broken (it is served no more until reconfigured) and logs why, once.
void BreakQueue(Queue& q, const char* which, const std::string& why, const Reporter& report);

}  // namespace vhost
