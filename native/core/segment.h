// A piece of a buffer the guest gave us: where it is in this process and where it is in the
// guest. Ports read and write through `ptr`; `gpa` is what a dirty-page log marks after a write.
#pragma once

#include <cstdint>

namespace vhost {

struct Segment {
  uint8_t* ptr;
  uint64_t gpa;
  uint32_t len;
};

}  // namespace vhost
