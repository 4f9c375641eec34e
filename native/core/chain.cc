#include "core/chain.h"

namespace vhost {

const char* ChainErrorName(ChainError e) {
  switch (e) {
    case ChainError::kNone: return "none";
    case ChainError::kBadHead: return "head index or buffer id out of range";
    case ChainError::kIdInUse: return "buffer id still in use";
    case ChainError::kBadIndex: return "next index out of range";
    case ChainError::kTooLong: return "chain longer than its table (loop)";
    case ChainError::kEndless: return "chain runs round the whole ring";
    case ChainError::kBadAddress: return "buffer outside guest memory";
    case ChainError::kBadIndirect: return "invalid indirect table";
    case ChainError::kWrongDirection: return "buffer of the wrong direction";
    case ChainError::kTooManySegments: return "too many buffer pieces";
  }
  return "unknown";
}

bool MapRingParts(const GuestMemory& mem, const RingPart (&parts)[3], uint8_t* (&out)[3], std::string* err) {
  for (int i = 0; i < 3; i++) {
    out[i] = mem.UserToHost(parts[i].ua, parts[i].size);
    if (!out[i]) {
      *err = std::string(parts[i].name) +
             " is not inside the memory table (SET_VRING_ADDR before SET_MEM_TABLE, or a bad address)";
      return false;
    }
  }
  for (int i = 0; i < 3; i++) {
    if ((reinterpret_cast<uintptr_t>(out[i]) & (parts[i].align - 1)) != 0) {
      *err = "ring address misaligned (" + std::string(parts[0].name) + " " + std::to_string(parts[0].align) + ", " +
             parts[1].name + " " + std::to_string(parts[1].align) + ", " + parts[2].name + " " +
             std::to_string(parts[2].align) + " bytes)";
      return false;
    }
  }
  return true;
}

}  // namespace vhost
