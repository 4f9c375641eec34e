#include "net/frame_rings.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace vhost {

namespace {
size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }
}  // namespace

FrameRings::FrameRings(int pairs, uint32_t slots, uint32_t slot_size)
    : pairs_(pairs),
      slots_(slots),
      slot_size_(slot_size),
      ring_stride_(RoundUp(sizeof(FrameRingHeader) + slots * sizeof(FrameDesc), 64)),
      slots_start_(RoundUp(kRingsStart + 2 * pairs * ring_stride_, 4096)) {}

std::shared_ptr<FrameRings> FrameRings::Create(int pairs, uint32_t slots, uint32_t slot_size, int* err_no,
                                               std::string* err) {
  if (slots < kMinSlots || slots > kMaxSlots || (slots & (slots - 1)) != 0 || slot_size < kMinSlotSize ||
      slot_size > kMaxSlotSize || slot_size % 64 != 0 || pairs < 1) {
    *err_no = EINVAL;
    *err = "frame rings: slots must be a power of two in 64..4096 and the slot size a multiple of 64 in 2048..65664";
    return nullptr;
  }
  std::shared_ptr<FrameRings> r(new FrameRings(pairs, slots, slot_size));
  r->size_ = r->slots_start_ + 2 * static_cast<size_t>(pairs) * slots * slot_size;
  // A named memfd rather than anonymous memory: /proc/PID/maps then shows it (leak checks find it).
  int fd = memfd_create("vhu-js-rings", MFD_CLOEXEC);
  void* p = MAP_FAILED;
  if (fd >= 0 && ftruncate(fd, static_cast<off_t>(r->size_)) == 0)
    p = mmap(nullptr, r->size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int saved = errno;
  if (fd >= 0) close(fd);
  if (p == MAP_FAILED) {
    *err_no = saved;
    *err = std::string("frame rings: mapping ") + std::to_string(r->size_ >> 10) + " KiB: " + strerror(saved);
    return nullptr;
  }
  r->base_ = static_cast<uint8_t*>(p);
  return r;
}

FrameRings::~FrameRings() {
  if (base_) munmap(base_, size_);
}

FrameRing FrameRings::ring(int pair, bool from_js) const {
  auto* h = reinterpret_cast<FrameRingHeader*>(base_ + ring_offset(pair, from_js));
  return FrameRing(h, reinterpret_cast<FrameDesc*>(h + 1), slots_);
}

const uint8_t* FrameRings::CheckFrame(const FrameDesc& d) const {
  if (d.offset < slots_start_ || d.len == 0 || d.len > slot_size_) return nullptr;
  size_t rel = d.offset - slots_start_;
  if (rel >= size_ - slots_start_ || rel % slot_size_ + d.len > slot_size_) return nullptr;
  return base_ + d.offset;
}

}  // namespace vhost
