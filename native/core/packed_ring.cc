#include "core/packed_ring.h"

#include <algorithm>
#include <cstring>

namespace vhost {

namespace {

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
  DropShadow();
  in_use_.assign(num, 0);
  taken_count_ = 0;
  dry_valid_ = false;
  device_flags_ = kDeviceFlagsUnknown;
  used_since_signal_ = 0;
  return true;
}

uint32_t PackedRing::GetBase() const {
  uint32_t avail = last_avail_ | (avail_wrap_ ? kWrapBit : 0u);
  // Entries still in the shadow were never written: the driver has not seen them used.
  const uint16_t used_idx = shadow_n_ > 0 ? shadow_[0].pos : used_idx_;
  const bool used_wrap = shadow_n_ > 0 ? shadow_[0].wrap : used_wrap_;
  uint32_t used = used_idx | (used_wrap ? kWrapBit : 0u);
  return avail | used << 16;
}

void PackedRing::DropShadow() {
  if (shadow_n_ > 0) {
    used_idx_ = shadow_[0].pos;
    used_wrap_ = shadow_[0].wrap;
  }
  shadow_n_ = 0;
}

void PackedRing::SetBase(uint32_t base) {
  dry_valid_ = false;
  last_avail_ = base & (kWrapBit - 1);
  avail_wrap_ = (base & kWrapBit) != 0;
  // An empty upper half with the avail wrap counter set is DPDK virtio-user's start (1 << 15): the
  // used position is the avail one. Used (0, wrap 0) itself is legal only with avail wrap 0 too.
  uint32_t used = base >> 16;
  if (used == 0 && (base & kWrapBit) != 0) used = base & 0xffff;
  used_idx_ = used & (kWrapBit - 1);
  used_wrap_ = (used & kWrapBit) != 0;
  used_since_signal_ = 0;
  std::fill(in_use_.begin(), in_use_.end(), 0);
  taken_count_ = 0;
  shadow_n_ = 0;
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
    if (e.flags & kDescFlagIndirect) {  // reserved here (2.8.19); refused rather than ignored
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
  device_reads_ = !device_writes;
  const uint16_t from = last_avail_;
  const bool from_wrap = avail_wrap_;
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
  dry_valid_ = false;
  c->head = d.id;  // the buffer id is the last descriptor's (2.8.6)
  if (d.id >= num_ || in_use_[d.id]) {
    // Not returned as used: a bad id cannot be, and an id in use is its holder's to return.
    if (*err == ChainError::kNone) *err = d.id >= num_ ? ChainError::kBadHead : ChainError::kIdInUse;
    Claim(from, from_wrap, kNoId);
    return;
  }
  in_use_[d.id] = 1;
  Claim(from, from_wrap, d.id);
  c->ndesc = n;
  return;
}

void PackedRing::Claim(uint16_t idx, bool wrap, uint16_t id) {
  taken_[taken_top_] = Taken{taken_seq_++, idx, wrap, id};
  taken_top_ = (taken_top_ + 1) % kTakenLog;
  if (taken_count_ < kTakenLog) taken_count_++;
}

void PackedRing::Rewind(RingPos pos) {
  // Newest first, back to the chain taken when the count was `pos` (wrap-safe comparison).
  while (taken_count_ > 0) {
    const uint32_t top = (taken_top_ + kTakenLog - 1) % kTakenLog;
    const Taken& t = taken_[top];
    if (static_cast<int32_t>(t.seq - pos) < 0) break;
    if (t.id != kNoId) in_use_[t.id] = 0;
    last_avail_ = t.idx;
    avail_wrap_ = t.wrap;
    taken_seq_ = t.seq;
    taken_top_ = top;
    taken_count_--;
  }
}

void PackedRing::FlushShadowUsed() {
  if (shadow_n_ == 0) return;
  if (in_order_ && device_reads_) {
    // IN_ORDER (2.8.23): one used descriptor, the burst's last id at its first slot, stands for all.
    // Transmit rings only: the driver takes every buffer of such a batch as written in full.
    WriteUsed(shadow_[0], shadow_[shadow_n_ - 1].id);
  } else {
    // The first entry's flags go last: the driver reads in order, so it sees the burst at once.
    for (uint32_t k = 1; k < shadow_n_; k++) WriteUsed(shadow_[k], shadow_[k].id);
    WriteUsed(shadow_[0], shadow_[0].id);
  }
  shadow_n_ = 0;
}

Published PackedRing::PublishUsed() {
  FlushShadowUsed();
  if (used_since_signal_ == 0) return Published::kNone;
  // The driver's suppression fields must be read after it can see the new used descriptors.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  const uint32_t used = used_since_signal_;
  used_since_signal_ = 0;
  // One 32-bit read: off_wrap and flags of the same moment (bits 2-15 of flags are reserved).
  const uint32_t area = __atomic_load_n(reinterpret_cast<const uint32_t*>(driver_), __ATOMIC_RELAXED);
  const uint16_t flags = static_cast<uint16_t>(area >> 16) & 3;
  if (flags == kEventDisable) return Published::kQuiet;
  if (flags != kEventDesc || !event_idx_) return Published::kCall;
  if (used >= num_) return Published::kCall;  // a lap or more: whatever slot the driver named was passed
  // Call only if the slot the driver named lies in what was used since the last call: positions on
  // one line, the named one a lap back if its wrap counter is the previous lap's.
  const uint16_t off_wrap = static_cast<uint16_t>(area);
  int off = off_wrap & (kWrapBit - 1);
  const int now = used_idx_;
  const int old = now - static_cast<int>(used);
  if (((off_wrap & kWrapBit) != 0) != used_wrap_) off -= static_cast<int>(num_);
  return static_cast<uint16_t>(now - off - 1) < static_cast<uint16_t>(now - old) ? Published::kCall : Published::kQuiet;
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
  // Ask for a kick on the first descriptor past those the burst saw: where it found the ring dry.
  // Not past those available now: buffers the driver added since the burst gave up would count as
  // seen, and with its kick decided while ours were off nobody would look at them (the split
  // ring's avail_seen_ rule). Without a dry position since the last chain taken (a burst that
  // stopped for another reason), past those available now.
  if (dry_valid_) {
    ArmAt(dry_idx_, dry_wrap_);
    return IsAvailable(dry_idx_, dry_wrap_);
  }
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
