// Capture of a device's frames for a pcap writer in JS (lib/observe/pcap.ts). Each queue pair has a
// byte ring, filled by the pair's worker and drained by JS, whose content is the pcap record stream
// itself (16-byte record header, then the frame cut to snaplen), so the writer copies whole slices to
// the file with no work per frame. One producer (the worker), one consumer (JS), free-running 64-bit
// byte indexes. The worker never waits: a record that does not fit is not written, and counted.
// All the rings of a capture live in one mapping of a memfd named vhu-capture (JS sees it as one
// ArrayBuffer), unmapped by Close once the device no longer uses it and JS let go of its view.
#pragma once

#include <time.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/segment.h"

namespace vhost {

// How a worker wakes the writer: an eventfd JS watches, written only when the writer said it sleeps
// (waiting = 1) and a ring is a quarter full, so at most once per time the writer goes idle. Between
// wake-ups the writer also looks every few milliseconds, for the last records of a quiet period.
struct CaptureBell {
  alignas(64) uint32_t waiting = 0;  // JS stores 1 before it sleeps; the worker that rings it takes it
  int fd = -1;
};

class CaptureRing {
 public:
  static constexpr uint32_t kRecordHeader = 16;  // pcap: ts_sec, ts_nsec, incl_len, orig_len

  CaptureRing(uint8_t* data, uint64_t size, uint32_t snaplen, CaptureBell* bell)
      : data_(data), size_(size), snaplen_(snaplen), bell_(bell) {}

  // Worker side. Each returns false when the record did not fit (the frame is not captured).
  // The common case inline: the record lies before the ring's end, a 16-byte store and one copy.
  bool Put(const uint8_t* frame, uint32_t len) {
    const uint32_t caplen = len < snaplen_ ? len : snaplen_;
    const uint32_t bytes = kRecordHeader + caplen;
    const uint64_t at = head_ & (size_ - 1);
    if (size_ - at < bytes || head_ + bytes - tail_seen_ > size_) return PutSlow(frame, len);
    if (!stamped_) Stamp();
    const uint32_t header[4] = {stamp_sec_, stamp_nsec_, caplen, len};
    memcpy(data_ + at, header, kRecordHeader);
    memcpy(data_ + at + kRecordHeader, frame, caplen);
    head_ += bytes;
    frames_++;
    return true;
  }
  bool Put(const Segment* segs, int nseg, uint32_t skip, uint32_t len);
  // The end of a burst: makes its records visible to the reader (one release store), and the next
  // burst takes a new timestamp.
  void EndBurst() {
    if (head_ != published_head_) {
      __atomic_store_n(&shared_.frames, frames_, __ATOMIC_RELAXED);
      __atomic_store_n(&shared_.head, head_, __ATOMIC_RELEASE);
      published_head_ = head_;
      if (head_ - tail_seen_ >= size_ / 4) MaybeWakeWriter();
    }
    stamped_ = false;
  }

  // Reader side (JS thread).
  // The readable bytes from the tail that lie in one piece of the ring: offset in the ring, length.
  void Readable(uint64_t* offset, uint64_t* length) const;
  // The reader is done with `n` bytes (written to the file): the worker may reuse them.
  void Consume(uint64_t n) { __atomic_store_n(&shared_.tail, shared_.tail + n, __ATOMIC_RELEASE); }
  uint64_t frames() const { return __atomic_load_n(&shared_.frames, __ATOMIC_RELAXED); }
  uint64_t dropped() const { return __atomic_load_n(&shared_.dropped, __ATOMIC_RELAXED); }

 private:
  // Room for `bytes` more, looking at the reader's tail again only when the last look says no.
  bool Reserve(uint32_t bytes);
  bool PutSlow(const uint8_t* frame, uint32_t len);  // across the wrap, or after a new look at the tail
  // One clock read per burst: the frames of a burst share its timestamp.
  void Stamp();
  // A quarter full by the last look: look at the tail again, and ring the bell if still so.
  void MaybeWakeWriter();
  void WriteHeader(uint32_t caplen, uint32_t len);
  void CopyIn(const uint8_t* from, uint32_t n);  // at head_, across the wrap
  void Drop() { __atomic_store_n(&shared_.dropped, shared_.dropped + 1, __ATOMIC_RELAXED); }

  uint8_t* const data_;
  const uint64_t size_;  // a power of two
  const uint32_t snaplen_;
  CaptureBell* const bell_;
  // Worker-only state.
  uint64_t head_ = 0;
  uint64_t published_head_ = 0;
  uint64_t tail_seen_ = 0;
  uint64_t frames_ = 0;
  bool stamped_ = false;
  uint32_t stamp_sec_ = 0, stamp_nsec_ = 0;
  // What both sides see, each on its own line: the worker writes head, frames and dropped, JS tail.
  struct Shared {
    alignas(64) uint64_t head = 0;
    uint64_t frames = 0;
    uint64_t dropped = 0;
    alignas(64) uint64_t tail = 0;
  } shared_;
};

// One capture: a ring per queue pair in one mapping, the snap length, and the mapping's lifetime.
class Capture {
 public:
  // Maps `pairs` rings of `ring_bytes` (a power of two) each. Returns null with *err set.
  static std::unique_ptr<Capture> Create(int pairs, uint64_t ring_bytes, uint32_t snaplen, int* err_no,
                                         std::string* err);
  ~Capture() { Close(); }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  int pairs() const { return static_cast<int>(rings_.size()); }
  // The eventfd a worker writes when the writer sleeps and a ring fills (CaptureBell); -1 once closed.
  int wake_fd() const { return bell_.fd; }
  // The writer found every ring empty and is about to sleep: wake it when one fills. Then it must
  // look at the rings once more (a burst may have published before it saw this).
  void WriterSleeps() { __atomic_store_n(&bell_.waiting, 1, __ATOMIC_SEQ_CST); }
  CaptureRing& ring(int pair) { return *rings_[pair]; }
  uint8_t* data() const { return data_; }
  uint64_t ring_bytes() const { return ring_bytes_; }
  uint64_t mapped_bytes() const { return ring_bytes_ * rings_.size(); }
  // Unmaps the rings and closes the eventfd. Only once no worker writes them (detached from the
  // device) and no JS view or watch is left.
  void Close();

 private:
  Capture(uint8_t* data, uint64_t ring_bytes, int pairs, uint32_t snaplen, int wake_fd);

  CaptureBell bell_;
  uint8_t* data_;
  const uint64_t ring_bytes_;
  std::vector<std::unique_ptr<CaptureRing>> rings_;
};

}  // namespace vhost
