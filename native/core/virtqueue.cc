#include "core/virtqueue.h"

namespace vhost {

void BreakQueue(Queue& q, const char* which, const std::string& why, const Reporter& report) {
  if (!q.broken) report(std::string(which) + " queue broken: " + why);
  q.broken = true;
  q.Count(kStatErrors);
}

}  // namespace vhost
