#include "core/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vhost {

namespace {

// True if [start, start+len) fits inside [base, base+size) without wrapping.
inline bool Contains(uint64_t base, uint64_t size, uint64_t start, uint64_t len) {
  if (start < base) return false;
  uint64_t off = start - base;
  return off <= size && len <= size - off;
}

inline bool Overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) { return a < b + blen && b < a + alen; }

}  // namespace

int GuestMemory::Add(const RegionSpec& s, int fd, std::string* err) {
  auto fail = [&](int code, const std::string& why) {
    if (fd >= 0) close(fd);
    *err = why;
    return code;
  };
  struct stat st;
  if (fstat(fd, &st) != 0) return fail(errno, std::string("fstat of region fd: ") + strerror(errno));
  for (int i = 0; i < count_; i++) {
    MappedRegion& o = regions_[i];
    if (o.spec.guest_phys_addr == s.guest_phys_addr && o.spec.size == s.size && o.spec.user_addr == s.user_addr &&
        o.spec.mmap_offset == s.mmap_offset && o.file_dev == st.st_dev && o.file_ino == st.st_ino) {
      if (o.refs >= kMaxRegionRefs) {
        return fail(ENOSPC, "memory region added " + std::to_string(o.refs) + " times already (limit " +
                                std::to_string(kMaxRegionRefs) + ")");
      }
      close(fd);
      o.refs++;
      return 0;
    }
  }
  if (count_ >= kMaxRegions) return fail(ENOSPC, "too many memory regions (limit " + std::to_string(kMaxRegions) + ")");
  if (s.size == 0) return fail(EINVAL, "memory region of size 0");
  uint64_t end;
  if (__builtin_add_overflow(s.mmap_offset, s.size, &end) ||
      __builtin_add_overflow(s.guest_phys_addr, s.size - 1, &end) ||
      __builtin_add_overflow(s.user_addr, s.size - 1, &end))
    return fail(EINVAL, "memory region wraps the address space (size + offset overflows)");
  for (int i = 0; i < count_; i++) {
    const RegionSpec& o = regions_[i].spec;
    if (Overlaps(o.guest_phys_addr, o.size, s.guest_phys_addr, s.size))
      return fail(EINVAL, "memory region overlaps another region's guest physical range");
    if (Overlaps(o.user_addr, o.size, s.user_addr, s.size))
      return fail(EINVAL, "memory region overlaps another region's front-end address range");
  }
  uint64_t need = s.mmap_offset + s.size;
  // mmap past the end of a file succeeds but faults on access: refuse it here.
  if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) < need)
    return fail(EINVAL, "memory region ends beyond its fd (mmap_offset + size > file size)");
  if (need > SIZE_MAX) return fail(EINVAL, "memory region too large");
  // mmap_offset need not be page aligned: map from 0 and skip it, as QEMU's back-ends do.
  void* base = mmap(nullptr, static_cast<size_t>(need), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return fail(errno, std::string("mmap of memory region: ") + strerror(errno));
  close(fd);
  // Insert in guest-physical order: after every region that starts below it (none overlaps it).
  int at = count_;
  while (at > 0 && regions_[at - 1].spec.guest_phys_addr > s.guest_phys_addr) {
    regions_[at] = regions_[at - 1];
    at--;
  }
  count_++;
  MappedRegion& r = regions_[at];
  r.spec = s;
  r.map_base = base;
  r.map_len = static_cast<size_t>(need);
  r.host = static_cast<uint8_t*>(base) + s.mmap_offset;
  r.file_dev = st.st_dev;
  r.file_ino = st.st_ino;
  r.refs = 1;
  last_hit_ = at;
  return 0;
}

bool GuestMemory::Remove(const RegionSpec& s) {
  for (int i = 0; i < count_; i++) {
    const RegionSpec& o = regions_[i].spec;
    if (o.guest_phys_addr == s.guest_phys_addr && o.size == s.size && o.user_addr == s.user_addr) {
      if (--regions_[i].refs > 0) return true;
      munmap(regions_[i].map_base, regions_[i].map_len);
      for (int j = i + 1; j < count_; j++) regions_[j - 1] = regions_[j];
      count_--;
      last_hit_ = 0;
      return true;
    }
  }
  return false;
}

void GuestMemory::Clear() {
  for (int i = 0; i < count_; i++) munmap(regions_[i].map_base, regions_[i].map_len);
  count_ = 0;
  last_hit_ = 0;
}

uint8_t* GuestMemory::GpaToHostScan(uint64_t gpa, uint64_t len, uint64_t* contiguous) const {
  // The last region that starts at or below gpa is the only one that can hold it.
  int lo = 0, hi = count_;  // regions_[lo, hi) still in question
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    if (regions_[mid].spec.guest_phys_addr <= gpa) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return nullptr;
  const MappedRegion& r = regions_[lo - 1];
  uint64_t off = gpa - r.spec.guest_phys_addr;
  if (off >= r.spec.size) return nullptr;
  last_hit_ = lo - 1;
  uint64_t room = r.spec.size - off;
  *contiguous = len < room ? len : room;
  return r.host + off;
}

uint8_t* GuestMemory::GpaToHost(uint64_t gpa, uint64_t len) const {
  uint64_t got;
  uint8_t* p = GpaToHostPartial(gpa, len, &got);
  return p && got == len ? p : nullptr;
}

uint8_t* GuestMemory::UserToHost(uint64_t uaddr, uint64_t len) const {
  for (int i = 0; i < count_; i++) {
    const MappedRegion& r = regions_[i];
    if (Contains(r.spec.user_addr, r.spec.size, uaddr, len)) return r.host + (uaddr - r.spec.user_addr);
  }
  return nullptr;
}

bool GuestMemory::UserToGpa(uint64_t uaddr, uint64_t len, uint64_t* gpa) const {
  for (int i = 0; i < count_; i++) {
    const MappedRegion& r = regions_[i];
    if (!Contains(r.spec.user_addr, r.spec.size, uaddr, len)) continue;
    *gpa = r.spec.guest_phys_addr + (uaddr - r.spec.user_addr);
    return true;
  }
  return false;
}

bool GuestMemory::MapsHostAddress(const void* p) const {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (int i = 0; i < count_; i++) {
    const uint8_t* base = static_cast<const uint8_t*>(regions_[i].map_base);
    if (b >= base && b < base + regions_[i].map_len) return true;
  }
  return false;
}

}  // namespace vhost
