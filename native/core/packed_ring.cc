#include "core/packed_ring.h"

#include <algorithm>
#include <cstring>

namespace vhost {

namespace {

inline uint16_t LoadU16(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_RELAXED);
}
inline void StoreU16(uint8_t* p, uint16_t v) { __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, __ATOMIC_RELAXED); }

}  // namespace

bool PackedRing::Attach(const GuestMemory& mem, uint32_t num, uint64_t desc_ua, uint64_t driver_ua, uint64_t device_ua,
                        std::string* err) {
  if (num == 0 || num > kMaxRingSize) {
    *err = "ring size " + std::to_string(num) + " is not in 1..32768";
    return false;
  }
  const RingPart parts[3] = {{"descriptor ring", desc_ua, 16ull * num, 16},
                             {"driver event area", driver_ua, 4, 4},
                             {"device event area", device_ua, 4, 4}};
  uint8_t* p[3];
  if (!MapRingParts(mem, parts, p, err)) return false;
  if (last_avail_ >= num || used_idx_ >= num) {
    *err = "ring base (SET_VRING_BASE) lies beyond the ring size " + std::to_string(num);
    return false;
  }
  desc_ = p[0];
  driver_ = p[1];
  device_ = p[2];
  num_ = num;
  in_use_.assign(num, 0);
  taken_count_ = 0;
  shadow_n_ = 0;
  shadow_written_ = false;
  device_flags_ = kDeviceFlagsUnknown;
  signalled_idx_ = used_idx_;
  signalled_wrap_ = used_wrap_;
  return true;
}

uint32_t PackedRing::GetBase() const {
  uint32_t avail = last_avail_ | (avail_wrap_ ? kWrapBit : 0u);
  uint32_t used = used_idx_ | (used_wrap_ ? kWrapBit : 0u);
  return avail | used << 16;
}

void PackedRing::SetBase(uint32_t base) {
  last_avail_ = base & (kWrapBit - 1);
  avail_wrap_ = (base & kWrapBit) != 0;
  uint32_t used = base >> 16;
  if (used == 0) used = base & 0xffff;
  used_idx_ = used & (kWrapBit - 1);
  used_wrap_ = (used & kWrapBit) != 0;
  signalled_idx_ = used_idx_;
  signalled_wrap_ = used_wrap_;
  std::fill(in_use_.begin(), in_use_.end(), 0);
  taken_count_ = 0;
  shadow_n_ = 0;
  shadow_written_ = false;
}

PackedRing::Desc PackedRing::ReadDesc(const uint8_t* table, uint32_t i) const {
  uint64_t w[2];
  LoadDescriptor(table, i, w);
  Desc d;
  d.addr = w[0];
  d.len = static_cast<uint32_t>(w[1]);
  d.id = static_cast<uint16_t>(w[1] >> 32);
  d.flags = static_cast<uint16_t>(w[1] >> 48);
  return d;
}

// A packed indirect table is used in order, all of it: NEXT means nothing there (virtio 2.8.19).
bool PackedRing::WalkIndirect(const GuestMemory& mem, const Desc& d, bool device_writes, Segment* segs, int max_segs,
                              Chain* c, ChainError* err) const {
  if (d.len == 0 || d.len % 16 != 0 || d.len / 16 > kMaxRingSize) {
    *err = ChainError::kBadIndirect;
    return false;
  }
  const uint8_t* table = mem.GpaToHost(d.addr, d.len);
  if (!table) {
    *err = ChainError::kBadAddress;
    return false;
  }
  for (uint32_t k = 0; k < d.len / 16; k++) {
    Desc e = ReadDesc(table, k);
    if (e.flags & kDescFlagIndirect) {
      *err = ChainError::kBadIndirect;
      return false;
    }
    if (((e.flags & kDescFlagWrite) != 0) != device_writes) {
      *err = ChainError::kWrongDirection;
      return false;
    }
    if (!AppendBuffer(mem, e.addr, e.len, segs, max_segs, c, err)) return false;
  }
  return true;
}

__attribute__((always_inline)) inline bool PackedRing::TakeDesc(const GuestMemory& mem, const Desc& d, uint16_t nth,
                                                                bool device_writes, Segment* segs, int max_segs,
                                                                Chain* c, ChainError* err) const {
  if (d.flags & kDescFlagIndirect) {
    // An indirect descriptor stands alone in the ring (2.8.19: not chained, only when negotiated).
    if (!indirect_ || nth != 0 || (d.flags & kDescFlagNext)) {
      *err = ChainError::kBadIndirect;
      return false;
    }
    return WalkIndirect(mem, d, device_writes, segs, max_segs, c, err);
  }
  if (((d.flags & kDescFlagWrite) != 0) != device_writes) {
    *err = ChainError::kWrongDirection;
    return false;
  }
  return AppendBuffer(mem, d.addr, d.len, segs, max_segs, c, err);
}

void PackedRing::Pop(const GuestMemory& mem, bool device_writes, Segment* segs, int max_segs, Chain* c,
                     ChainError* err) {
  *c = Chain{0, 0, 0, 0};
  *err = ChainError::kNone;
  const RingPos from = Position();
  uint16_t i = last_avail_;
  bool wrap = avail_wrap_;
  uint16_t n = 0;
  Desc d;
  do {
    if (n == num_) {  // the whole ring read and still NEXT: no end to skip to
      *err = ChainError::kEndless;
      return;
    }
    d = ReadDesc(desc_, i);
    if (++i == num_) {
      i = 0;
      wrap = !wrap;
    }
    // After an error the rest of the chain is only skipped.
    if (*err == ChainError::kNone) TakeDesc(mem, d, n, device_writes, segs, max_segs, c, err);
    n++;
  } while (d.flags & kDescFlagNext);
  last_avail_ = i;
  avail_wrap_ = wrap;
  c->head = d.id;  // the buffer id is the last descriptor's (2.8.6)
  if (d.id >= num_ || in_use_[d.id]) {
    // Not returned as used: a bad id cannot be, and an id in use is its holder's to return.
    if (*err == ChainError::kNone) *err = d.id >= num_ ? ChainError::kBadHead : ChainError::kIdInUse;
    Claim(from, kNoId);
    return;
  }
  in_use_[d.id] = 1;
  Claim(from, d.id);
  c->ndesc = n;
  return;
}

void PackedRing::Claim(RingPos from, uint16_t id) {
  taken_[taken_top_] = Taken{from, id};
  taken_top_ = (taken_top_ + 1) % kTakenLog;
  if (taken_count_ < kTakenLog) taken_count_++;
}

void PackedRing::Rewind(RingPos pos) {
  while (taken_count_ > 0) {
    taken_top_ = (taken_top_ + kTakenLog - 1) % kTakenLog;
    taken_count_--;
    const Taken& t = taken_[taken_top_];
    if (t.id != kNoId) in_use_[t.id] = 0;
    if (t.from == pos) break;
  }
  last_avail_ = static_cast<uint16_t>(pos & (kWrapBit - 1));
  avail_wrap_ = (pos & kWrapBit) != 0;
}

void PackedRing::FlushShadowUsed() {
  if (shadow_n_ == 0) return;
  if (in_order_ && !shadow_written_) {
    // IN_ORDER (2.8.23): one used descriptor, the burst's last id at its first slot, stands for all.
    WriteUsed(shadow_[0], shadow_[shadow_n_ - 1].id);
  } else {
    // The first entry's flags go last: the driver reads in order, so it sees the burst at once.
    for (uint32_t k = 1; k < shadow_n_; k++) WriteUsed(shadow_[k], shadow_[k].id);
    WriteUsed(shadow_[0], shadow_[0].id);
  }
  shadow_n_ = 0;
  shadow_written_ = false;
}

bool PackedRing::PublishUsed() {
  FlushShadowUsed();
  if (used_idx_ == signalled_idx_ && used_wrap_ == signalled_wrap_) return false;
  // The driver's suppression fields must be read after it can see the new used descriptors.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  int old = signalled_idx_;
  signalled_idx_ = used_idx_;
  signalled_wrap_ = used_wrap_;
  uint16_t flags = LoadU16(driver_ + 2);
  if (flags == kEventDisable) return false;
  if (flags != kEventDesc || !event_idx_) return true;
  // Call only if the slot the driver named lies in what was used since the last call. Positions are
  // taken on one line: the old one a lap back if we wrapped since, the named one a lap back if its
  // wrap counter is the previous lap's.
  uint16_t off_wrap = LoadU16(driver_);
  int off = off_wrap & (kWrapBit - 1);
  int now = used_idx_;
  if (now <= old) old -= static_cast<int>(num_);
  if (((off_wrap & kWrapBit) != 0) != used_wrap_) off -= static_cast<int>(num_);
  return static_cast<uint16_t>(now - off - 1) < static_cast<uint16_t>(now - old);
}

void PackedRing::SetDeviceFlags(uint16_t flags) {
  // The driver reads these before each kick it considers: store only changes.
  if (device_flags_ == flags) return;
  StoreU16(device_ + 2, flags);
  device_flags_ = flags;
}

void PackedRing::ArmAt(uint16_t i, bool wrap) {
  if (event_idx_) {
    StoreU16(device_, static_cast<uint16_t>(i | (wrap ? kWrapBit : 0u)));
    SetDeviceFlags(kEventDesc);
  } else {
    SetDeviceFlags(kEventEnable);
  }
  // Without this fence the driver could make a buffer available after our last look but before it
  // sees our request, and neither side would act.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool PackedRing::ArmKick() {
  ArmAt(last_avail_, avail_wrap_);
  return IsAvailable(last_avail_, avail_wrap_);
}

bool PackedRing::ArmKickBeyondAvail() {
  // Ask for a kick on the first descriptor past those already available.
  uint16_t i = last_avail_;
  bool wrap = avail_wrap_;
  for (uint32_t n = 0; n < num_ && IsAvailable(i, wrap); n++) {
    if (++i == num_) {
      i = 0;
      wrap = !wrap;
    }
  }
  ArmAt(i, wrap);
  return IsAvailable(i, wrap);
}

}  // namespace vhost
