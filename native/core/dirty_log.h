// Dirty-page logging for live migration (vhost-user LOG_SHMFD with VHOST_F_LOG_ALL): while the
// front-end migrates the guest it reads a bitmap we share with it, one bit per 4 KiB page of
// guest-physical memory, and copies again every page whose bit it finds set. Every page the back-end
// writes (RX buffers, used rings) must be marked, and marked after the bytes are written: the
// front-end clears the bits it reads, so a bit set before the write could be consumed early.
//
// DirtyLog is the front-end's bitmap, mapped here (SET_LOG_BASE). ShadowLog is one queue's private
// bitmap: a burst marks it (plain stores, no atomics per frame) and Flush ORs what it marked into the
// DirtyLog once per burst, after the burst's writes, behind a release fence. A shadow has as many
// words as the log, so marking never runs out of room.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/segment.h"

namespace vhost {

constexpr uint64_t kLogPageShift = 12;  // VHOST_LOG_PAGE: 4 KiB
constexpr int kFeatureLogAll = 26;      // VHOST_F_LOG_ALL: the front-end asks for every write logged

class DirtyLog {
 public:
  // The largest log taken: 64 MiB of bits covers 2 TiB of guest memory.
  static constexpr uint64_t kMaxBytes = 64ull << 20;

  // Maps `size` bytes at `offset` of `fd` (always consumed). The file must be sealed against
  // shrinking (F_SEAL_SHRINK, as QEMU's memfd is): a front-end that could truncate the log under a
  // worker would make its next mark a SIGBUS. Returns null with *err set.
  static std::unique_ptr<DirtyLog> Map(int fd, uint64_t size, uint64_t offset, std::string* err);
  // A log over memory we own (tests, benchmarks): `bytes` zeroed bytes.
  static std::unique_ptr<DirtyLog> Anonymous(uint64_t bytes);
  ~DirtyLog();
  DirtyLog(const DirtyLog&) = delete;
  DirtyLog& operator=(const DirtyLog&) = delete;

  uint64_t bytes() const { return bytes_; }
  // 64-page words, the last one possibly partial (a log whose size is not a multiple of 8).
  size_t words() const { return static_cast<size_t>((bytes_ + 7) / 8); }
  // Guest-physical bytes the log has bits for.
  uint64_t covers() const { return bytes_ * 8 << kLogPageShift; }
  // ORs `bits` into word `word` atomically (the front-end exchanges words with zero as it reads).
  void Or(size_t word, uint64_t bits);
  // Reads word `word` and clears it, as the front-end reads the log (tests).
  uint64_t Take(size_t word);

 private:
  DirtyLog(uint8_t* base, uint64_t bytes, void* map, size_t map_len)
      : base_(base), bytes_(bytes), map_(map), map_len_(map_len) {}

  uint8_t* base_;
  uint64_t bytes_;
  void* map_;
  size_t map_len_;
};

class ShadowLog {
 public:
  explicit ShadowLog(size_t words) : bits_(words, 0) { touched_.reserve(64); }

  // Marks the pages of [gpa, gpa + len). Pages beyond the log are counted in beyond(), not marked
  // (a log smaller than guest memory was refused at SET_LOG_BASE; a table grown since is the
  // front-end's to follow with a new log).
  void Mark(uint64_t gpa, uint64_t len) {
    if (len == 0) return;
    const uint64_t last = (gpa + len - 1) >> kLogPageShift;
    for (uint64_t page = gpa >> kLogPageShift; page <= last; page++) {
      const uint64_t word = page >> 6;
      if (word >= bits_.size()) {
        beyond_++;
        return;
      }
      if (bits_[word] == 0) touched_.push_back(static_cast<uint32_t>(word));
      bits_[word] |= 1ull << (page & 63);
    }
  }
  void Mark(const Segment* segs, int n) {
    for (int i = 0; i < n; i++) Mark(segs[i].gpa, segs[i].len);
  }
  // After the writes the marks cover: ORs every marked word into `log` (release fence first) and
  // clears them here. Returns whether anything was marked.
  bool Flush(DirtyLog& log);
  uint64_t beyond() const { return beyond_; }

 private:
  std::vector<uint64_t> bits_;
  std::vector<uint32_t> touched_;  // words not zero in bits_, each once
  uint64_t beyond_ = 0;
};

}  // namespace vhost
