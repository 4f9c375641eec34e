// A device queue: the ring (split or packed, behind the ring verbs) plus what the control plane
// attached to it (size, addresses, eventfds, enable) and its counters. Owned by the core device
// (VhostDevice); touched by the worker that serves it only while that worker runs. Any device
// kind's data path works on these.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>

#include "core/dirty_log.h"
#include "core/report.h"
#include "core/ring.h"

namespace vhost {

// Counter slots per queue, in this order; lib/net/stats.ts reads them by the names kQueueStatNames
// gives (native checks nothing more: JS compares the two lists once at load). The per-frame ones
// come first, on one line with the packet count. Their meanings are DPDK's vhost library's
// (lib/vhost vhost_queue_stats_update): frames moved (not dropped), length without the virtio-net
// header, RFC 2819 size bins, multicast or else broadcast by the destination MAC.
enum QueueStat : int {
  kStatPackets,
  kStatBytes,
  kStatMulticast,
  kStatBroadcast,
  kStatUndersize,  // < 64 bytes; the next seven bins follow in order
  kStatSize64,
  kStatSize65To127,
  kStatSize128To255,
  kStatSize256To511,
  kStatSize512To1023,
  kStatSize1024To1518,
  kStatSize1519ToMax,
  kStatDrops,
  kStatErrors,
  kStatKicks,
  kStatCalls,            // guest notifications written to the call eventfd
  kStatCallsSuppressed,  // used entries published without a call because the guest asked for none
  kStatCallErrors,       // a call eventfd write that failed
  kStatCaptureDrops,     // frames the capture ring had no room for (net/capture.h)
  kStatsPerQueue
};
// The JS-visible names of the slots, in QueueStat order.
inline constexpr const char* kQueueStatNames[kStatsPerQueue] = {
    "packets",      "bytes",        "multicast",       "broadcast",      "undersize",     "size64", "size65To127",
    "size128To255", "size256To511", "size512To1023",   "size1024To1518", "size1519ToMax", "drops",  "errors",
    "kicks",        "calls",        "callsSuppressed", "callErrors",     "captureDrops"};
// Each queue's counters start on a cache line of their own: the queues of two pairs are written by
// two workers, and a shared line would bounce between their CPUs on every frame.
constexpr int kStatsStride = (kStatsPerQueue + 7) / 8 * 8;

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
  uint64_t* stats = nullptr;  // kStatsPerQueue counters (kStatsStride apart), in the device's shared stats buffer
  // SET_VRING_ADDR's VHOST_VRING_F_LOG and log_guest_addr: where the front-end wants the ring's own
  // writes logged (QEMU: the used ring's, or a packed ring's device area, guest-physical address).
  bool log_addr = false;
  uint64_t log_gpa = 0;
  // While the front-end migrates the guest (core/dirty_log.h; both null otherwise): this queue's
  // shadow, marked by the bursts, and the front-end's log it is flushed into at each publish; the
  // guest-physical ranges of the ring that the device writes (split: the used ring; packed: the
  // descriptors and the device event area), marked at each flush.
  ShadowLog* log = nullptr;
  DirtyLog* dirty_log = nullptr;
  struct LogRange {
    uint64_t gpa;
    uint64_t len;
  } log_ring[2] = {};

  bool Ready() const { return enabled && !broken && ring.attached() && kick_fd >= 0; }
  // The ring features the driver negotiated; decided at SET_FEATURES, never per chain.
  void SetRingFeatures(uint64_t features) { ring.SetFeatures(features); }
  // Relaxed stores: JS reads the counters from another thread, a torn or stale read is fine.
  void Count(QueueStat s, uint64_t n = 1) { __atomic_store_n(&stats[s], stats[s] + n, __ATOMIC_RELAXED); }
  // Notifies the guest through its call eventfd. A write that fails is counted, never retried: the
  // data path never blocks on an fd the front-end controls.
  void Call() {
    if (call_fd < 0) return;
    uint64_t one = 1;
    Count(write(call_fd, &one, sizeof one) == sizeof one ? kStatCalls : kStatCallErrors);
  }
  // Publishes the used entries pushed since the last time and notifies the guest if it asked to be;
  // published entries it asked not to be told about count as a suppressed notification.
  void PublishUsed() {
    const Published p = ring.PublishUsed();
    if (log) FlushLog();
    if (p == Published::kCall) Call();
    else if (p == Published::kQuiet) Count(kStatCallsSuppressed);
  }
  // log_ring from the ring's addresses (log_gpa where the front-end gave one), for a ring attached
  // in `mem`; empty ranges for what lies outside it.
  void SetLogRanges(const GuestMemory& mem);
  // The ring's own pages marked, then everything this queue marked since the last flush into the
  // front-end's log (after the writes: see core/dirty_log.h).
  void FlushLog() {
    for (const LogRange& r : log_ring) log->Mark(r.gpa, r.len);
    log->Flush(*dirty_log);
  }
};

// Marks a queue broken (it is served no more until reconfigured) and logs why, once.
void BreakQueue(Queue& q, const char* which, const std::string& why, const Reporter& report);

}  // namespace vhost
