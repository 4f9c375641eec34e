// Guest memory table: the regions the front-end shared with us, mapped into this process.
// Two address spaces are translated: guest-physical addresses (descriptor buffers) and the
// front-end's own virtual addresses (ring addresses in SET_VRING_ADDR). Every translation is
// bounds-checked against one mapped region; nothing outside the table is ever returned.
// Regions are kept sorted by guest-physical address: a translation that misses the last-hit
// region is a binary search, so 509 slots (QEMU's memory hotplug) cost O(log n) per miss.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace vhost {

struct RegionSpec {
  uint64_t guest_phys_addr;
  uint64_t size;
  uint64_t user_addr;
  uint64_t mmap_offset;
};

struct MappedRegion {
  RegionSpec spec;
  uint8_t* host;   // host address of guest_phys_addr (map_base + mmap_offset)
  void* map_base;  // what mmap returned
  size_t map_len;
  dev_t file_dev;  // the backing file, to recognise the same region added again
  ino_t file_ino;
  int refs;  // times added (QEMU before 8.0 adds each region once per queue pair), removes to go
};

class GuestMemory {
 public:
  // What QEMU's libvhost-user offers with CONFIGURE_MEM_SLOTS (VHOST_USER_MAX_RAM_SLOTS), for
  // memory hotplug. The table is a fixed array (~28 KiB) inside the object: it never reallocates
  // under a reader, and the inline fast path below stays one indexed load as with fewer slots.
  static constexpr int kMaxRegions = 509;
  // Times one region may be added again (QEMU before 8.0: once per vhost device, i.e. per queue
  // pair); the bound keeps a hostile front-end from overflowing the count.
  static constexpr int kMaxRegionRefs = 1024;

  GuestMemory() = default;
  ~GuestMemory() { Clear(); }
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Maps `fd` for `spec`. The fd is always consumed (closed), mapped or not. On failure returns an
  // errno-style code and fills *err with what was wrong; the table is unchanged. The new region
  // is inserted in guest-physical order (callers quiesce readers around every change). A region
  // identical to one in the table (all of spec, same file) is not mapped again but counted: QEMU
  // before 8.0 sends ADD_MEM_REG and REM_MEM_REG once per queue pair of a multiqueue device.
  int Add(const RegionSpec& spec, int fd, std::string* err);
  // Removes the region that matches gpa/size/user_addr exactly (unmapped once removed as often as
  // it was added), keeping the others in order. Returns false if none does.
  bool Remove(const RegionSpec& spec);
  void Clear();
  int count() const { return count_; }
  // Region i in guest-physical order.
  const MappedRegion& region(int i) const { return regions_[i]; }

  // Host pointer for [gpa, gpa+len) if it lies inside one region; otherwise nullptr.
  uint8_t* GpaToHost(uint64_t gpa, uint64_t len) const;
  // Like GpaToHost, but for a range that may span adjacent regions: returns the host pointer of gpa
  // and in *contiguous how many bytes from there lie in the same region (<= len).
  // Inline for the common case, the region of the previous translation (buffers cluster).
  uint8_t* GpaToHostPartial(uint64_t gpa, uint64_t len, uint64_t* contiguous) const {
    if (count_ > 0) {
      const MappedRegion& r = regions_[last_hit_];
      if (gpa >= r.spec.guest_phys_addr && gpa - r.spec.guest_phys_addr < r.spec.size) {
        uint64_t off = gpa - r.spec.guest_phys_addr;
        uint64_t room = r.spec.size - off;
        *contiguous = len < room ? len : room;
        return r.host + off;
      }
    }
    return GpaToHostScan(gpa, len, contiguous);
  }
  // Host pointer for the front-end virtual range [uaddr, uaddr+len) inside one region, else nullptr.
  // A linear scan: only the control path asks (ring addresses at SET_VRING_ADDR and after each
  // memory change), so a second index sorted by user address would not pay for its upkeep.
  uint8_t* UserToHost(uint64_t uaddr, uint64_t len) const;
  // The guest-physical address of the front-end virtual range [uaddr, uaddr+len) inside one region
  // (the rings' pages, for the dirty log); false if it lies in none. A linear scan, as UserToHost.
  bool UserToGpa(uint64_t uaddr, uint64_t len, uint64_t* gpa) const;
  // One past the highest guest-physical address in the table (0 when empty).
  uint64_t EndGpa() const {
    return count_ ? regions_[count_ - 1].spec.guest_phys_addr + regions_[count_ - 1].spec.size : 0;
  }
  // Whether host address `p` lies in one of the mappings (to tell whose memory faulted).
  bool MapsHostAddress(const void* p) const;

 private:
  // GpaToHostPartial by binary search over the sorted regions (and remembering the hit).
  uint8_t* GpaToHostScan(uint64_t gpa, uint64_t len, uint64_t* contiguous) const;

  MappedRegion regions_[kMaxRegions];  // [0, count_) sorted by guest_phys_addr, never overlapping
  int count_ = 0;
  mutable int last_hit_ = 0;  // region of the previous translation; buffers cluster
};

}  // namespace vhost
