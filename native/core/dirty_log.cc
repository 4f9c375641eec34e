#include "core/dirty_log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace vhost {

std::unique_ptr<DirtyLog> DirtyLog::Map(int fd, uint64_t size, uint64_t offset, std::string* err) {
  struct stat st;
  std::string why;
  if (fstat(fd, &st) != 0) why = std::string("fstat: ") + strerror(errno);
  else if (!S_ISREG(st.st_mode)) why = "the log fd is not a regular file (a memfd)";
  else if (size == 0 || size > kMaxBytes)
    why = "log size " + std::to_string(size) + " is not in 1.." + std::to_string(kMaxBytes);
  else if (offset > static_cast<uint64_t>(st.st_size) || size > static_cast<uint64_t>(st.st_size) - offset)
    why = "the log (offset " + std::to_string(offset) + ", size " + std::to_string(size) + ") runs past its file (" +
          std::to_string(st.st_size) + " bytes)";
  else if (!(fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK))
    why = "the log's memfd is not sealed against shrinking (F_SEAL_SHRINK, as QEMU seals it)";
  if (!why.empty()) {
    close(fd);
    *err = why;
    return nullptr;
  }
  const size_t map_len = static_cast<size_t>(offset + size);
  void* map = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int e = errno;
  close(fd);
  if (map == MAP_FAILED) {
    *err = std::string("mmap of the log: ") + strerror(e);
    return nullptr;
  }
  return std::unique_ptr<DirtyLog>(new DirtyLog(static_cast<uint8_t*>(map) + offset, size, map, map_len));
}

std::unique_ptr<DirtyLog> DirtyLog::Anonymous(uint64_t bytes) {
  void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return nullptr;
  return std::unique_ptr<DirtyLog>(new DirtyLog(static_cast<uint8_t*>(map), bytes, map, bytes));
}

DirtyLog::~DirtyLog() { munmap(map_, map_len_); }

void DirtyLog::Or(size_t word, uint64_t bits) {
  const uint64_t at = static_cast<uint64_t>(word) * 8;
  if (at + 8 <= bytes_ && (reinterpret_cast<uintptr_t>(base_ + at) & 7) == 0) {
    __atomic_fetch_or(reinterpret_cast<uint64_t*>(base_ + at), bits, __ATOMIC_RELAXED);
    return;
  }
  // A log at an odd offset, or its last partial word: byte by byte (page 8k+j is bit j of byte k).
  for (uint64_t b = 0; b < 8 && at + b < bytes_; b++) {
    const uint8_t byte = static_cast<uint8_t>(bits >> (8 * b));
    if (byte) __atomic_fetch_or(base_ + at + b, byte, __ATOMIC_RELAXED);
  }
}

uint64_t DirtyLog::Take(size_t word) {
  uint64_t v = 0;
  const uint64_t at = static_cast<uint64_t>(word) * 8;
  for (uint64_t b = 0; b < 8 && at + b < bytes_; b++)
    v |= static_cast<uint64_t>(__atomic_exchange_n(base_ + at + b, 0, __ATOMIC_RELAXED)) << (8 * b);
  return v;
}

bool ShadowLog::Flush(DirtyLog& log) {
  if (touched_.empty()) return false;
  // The bytes the marks cover were written before this point; the front-end must not see a bit
  // before the write it stands for.
  std::atomic_thread_fence(std::memory_order_release);
  for (uint32_t word : touched_) {
    log.Or(word, bits_[word]);
    bits_[word] = 0;
  }
  touched_.clear();
  return true;
}

}  // namespace vhost
