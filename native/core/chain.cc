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

}  // namespace vhost
