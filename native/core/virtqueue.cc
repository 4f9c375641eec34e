#include "core/virtqueue.h"

namespace vhost {

void BreakQueue(Queue& q, const char* which, const std::string& why, const Reporter& report) {
  if (!q.broken) report(std::string(which) + " queue broken: " + why);
  q.broken = true;
  q.Count(kStatErrors);
}

void Queue::SetLogRanges(const GuestMemory& mem) {
  log_ring[0] = log_ring[1] = LogRange{0, 0};
  if (!addr_set || num == 0) return;
  auto range = [&](LogRange* r, uint64_t ua, uint64_t len) {
    uint64_t gpa = 0;
    if (mem.UserToGpa(ua, len, &gpa)) *r = LogRange{gpa, len};
  };
  if (!ring.packed()) {
    // flags, idx, the entries and avail_event (EVENT_IDX): everything the device writes there.
    const uint64_t len = 6 + 8ull * num;
    if (log_addr) log_ring[0] = LogRange{log_gpa, len};
    else range(&log_ring[0], used_ua, len);
    return;
  }
  // Used elements are written back into the descriptors; flags and event into the device area.
  range(&log_ring[0], desc_ua, 16ull * num);
  if (log_addr) log_ring[1] = LogRange{log_gpa, 4};
  else range(&log_ring[1], used_ua, 4);
}

}  // namespace vhost
