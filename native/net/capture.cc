#include "net/capture.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/segment_cursor.h"

namespace vhost {

bool CaptureRing::Reserve(uint32_t bytes) {
  if (head_ + bytes - tail_seen_ <= size_) return true;
  tail_seen_ = __atomic_load_n(&shared_.tail, __ATOMIC_ACQUIRE);
  if (head_ + bytes - tail_seen_ <= size_) return true;
  Drop();
  return false;
}

void CaptureRing::CopyIn(const uint8_t* from, uint32_t n) {
  const uint64_t at = head_ & (size_ - 1);
  const uint64_t first = n < size_ - at ? n : size_ - at;
  memcpy(data_ + at, from, first);
  memcpy(data_, from + first, n - first);
  head_ += n;
}

void CaptureRing::MaybeWakeWriter() {
  tail_seen_ = __atomic_load_n(&shared_.tail, __ATOMIC_ACQUIRE);
  if (head_ - tail_seen_ < size_ / 4) return;
  // The flag is read before it is taken: the writer's line stays shared while it is awake.
  if (__atomic_load_n(&bell_->waiting, __ATOMIC_RELAXED) == 0) return;
  if (__atomic_exchange_n(&bell_->waiting, 0, __ATOMIC_ACQ_REL) == 0) return;
  uint64_t one = 1;
  (void)!write(bell_->fd, &one, sizeof one);  // non-blocking; a full counter is a wake-up already pending
}

void CaptureRing::Stamp() {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  stamp_sec_ = static_cast<uint32_t>(now.tv_sec);
  stamp_nsec_ = static_cast<uint32_t>(now.tv_nsec);
  stamped_ = true;
}

void CaptureRing::WriteHeader(uint32_t caplen, uint32_t len) {
  if (!stamped_) Stamp();
  const uint32_t header[4] = {stamp_sec_, stamp_nsec_, caplen, len};
  CopyIn(reinterpret_cast<const uint8_t*>(header), kRecordHeader);
  frames_++;
}

bool CaptureRing::PutSlow(const uint8_t* frame, uint32_t len) {
  const uint32_t caplen = len < snaplen_ ? len : snaplen_;
  if (!Reserve(kRecordHeader + caplen)) return false;
  WriteHeader(caplen, len);
  CopyIn(frame, caplen);
  return true;
}

bool CaptureRing::Put(const Segment* segs, int nseg, uint32_t skip, uint32_t len) {
  const uint32_t caplen = len < snaplen_ ? len : snaplen_;
  if (!Reserve(kRecordHeader + caplen)) return false;
  WriteHeader(caplen, len);
  // The ring's free space is at most two pieces (before and after the wrap); read into each.
  SegmentCursor src(segs, nseg);
  src.Skip(skip);
  const uint64_t at = head_ & (size_ - 1);
  const uint32_t first = caplen < size_ - at ? caplen : static_cast<uint32_t>(size_ - at);
  uint32_t got = src.Read(data_ + at, first);
  if (got == first) got += src.Read(data_, caplen - first);
  // The caller checked the chain holds the frame; zeros keep the record whole if it did not.
  for (uint32_t i = got; i < caplen; i++) data_[(head_ + i) & (size_ - 1)] = 0;
  head_ += caplen;
  return true;
}

void CaptureRing::Readable(uint64_t* offset, uint64_t* length) const {
  const uint64_t head = __atomic_load_n(&shared_.head, __ATOMIC_ACQUIRE);
  const uint64_t tail = shared_.tail;
  const uint64_t at = tail & (size_ - 1);
  const uint64_t ready = head - tail;
  *offset = at;
  *length = ready < size_ - at ? ready : size_ - at;
}

Capture::Capture(uint8_t* data, uint64_t ring_bytes, int pairs, uint32_t snaplen, int wake_fd)
    : data_(data), ring_bytes_(ring_bytes) {
  bell_.fd = wake_fd;
  for (int p = 0; p < pairs; p++)
    rings_.push_back(std::make_unique<CaptureRing>(data + ring_bytes * p, ring_bytes, snaplen, &bell_));
}

std::unique_ptr<Capture> Capture::Create(int pairs, uint64_t ring_bytes, uint32_t snaplen, int* err_no,
                                         std::string* err) {
  if (pairs < 1 || ring_bytes < 4096 || (ring_bytes & (ring_bytes - 1)) != 0 || snaplen == 0) {
    *err_no = EINVAL;
    *err = "capture: ring size must be a power of two of at least 4096 bytes and snaplen at least 1";
    return nullptr;
  }
  // A named memfd rather than anonymous memory: /proc/PID/maps shows whose mapping it is (leak tests).
  int fd = memfd_create("vhu-capture", MFD_CLOEXEC);
  const uint64_t bytes = ring_bytes * static_cast<uint64_t>(pairs);
  void* p = MAP_FAILED;
  if (fd >= 0 && ftruncate(fd, static_cast<off_t>(bytes)) == 0)
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  if (fd >= 0) close(fd);
  if (p == MAP_FAILED) {
    *err_no = e;
    *err = std::string("capture: mapping ") + std::to_string(bytes) + " bytes of rings: " + strerror(e);
    return nullptr;
  }
  int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    *err_no = errno;
    *err = std::string("capture: eventfd: ") + strerror(errno);
    munmap(p, bytes);
    return nullptr;
  }
  return std::unique_ptr<Capture>(new Capture(static_cast<uint8_t*>(p), ring_bytes, pairs, snaplen, wake_fd));
}

void Capture::Close() {
  if (!data_) return;
  munmap(data_, mapped_bytes());
  data_ = nullptr;
  close(bell_.fd);
  bell_.fd = -1;
}

}  // namespace vhost
