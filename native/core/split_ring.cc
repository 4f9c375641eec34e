#include "core/split_ring.h"

#include <cstring>

namespace vhost {

namespace {

inline uint16_t LoadU16(const uint8_t* p) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_RELAXED);
}
inline void StoreU16(uint8_t* p, uint16_t v) { __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, __ATOMIC_RELAXED); }
inline void StoreU32(uint8_t* p, uint32_t v) { __atomic_store_n(reinterpret_cast<uint32_t*>(p), v, __ATOMIC_RELAXED); }

}  // namespace

bool SplitRing::Attach(const GuestMemory& mem, uint32_t num, uint64_t desc_ua, uint64_t avail_ua, uint64_t used_ua,
                       std::string* err) {
  if (num == 0 || num > kMaxRingSize || (num & (num - 1)) != 0) {
    *err = "ring size " + std::to_string(num) + " is not a power of two in 1..32768";
    return false;
  }
  const RingPart parts[3] = {{"descriptor table", desc_ua, 16ull * num, 16},
                             {"available ring", avail_ua, 6ull + 2ull * num, 2},
                             {"used ring", used_ua, 6ull + 8ull * num, 4}};
  uint8_t* p[3];
  if (!MapRingParts(mem, parts, p, err)) return false;
  uint8_t *d = p[0], *a = p[1], *u = p[2];
  desc_ = d;
  avail_ = a;
  used_ = u;
  num_ = num;
  mask_ = static_cast<uint16_t>(num - 1);
  avail_seen_ = last_avail_;
  used_flags_ = kUsedFlagsUnknown;
  SyncUsedIndex();
  return true;
}

void SplitRing::SyncUsedIndex() {
  used_idx_ = published_used_ = __atomic_load_n(reinterpret_cast<uint16_t*>(used_ + 2), __ATOMIC_ACQUIRE);
  shadow_n_ = 0;
}

uint16_t SplitRing::ReloadAvailable(bool* broken) {
  uint16_t idx = __atomic_load_n(reinterpret_cast<const uint16_t*>(avail_ + 2), __ATOMIC_ACQUIRE);
  uint16_t n = static_cast<uint16_t>(idx - last_avail_);
  if (n > num_) {
    *broken = true;
    return 0;
  }
  avail_seen_ = idx;
  return n;
}

SplitRing::Desc SplitRing::ReadDesc(const uint8_t* table, uint16_t i) const {
  uint64_t w[2];
  LoadDescriptor(table, i, w);
  Desc d;
  d.addr = w[0];
  d.len = static_cast<uint32_t>(w[1]);
  d.flags = static_cast<uint16_t>(w[1] >> 32);
  d.next = static_cast<uint16_t>(w[1] >> 48);
  return d;
}

void SplitRing::Pop(const GuestMemory& mem, bool device_writes, Segment* segs, int max_segs, Chain* c,
                    ChainError* err) {
  *c = Chain{0, 1, 0, 0};
  *err = ChainError::kNone;
  uint16_t head = LoadU16(avail_ + 4 + 2u * (last_avail_ & mask_));
  last_avail_++;
  c->head = head;
  if (head >= num_) {
    *err = ChainError::kBadHead;
    c->ndesc = 0;
    return;
  }
  const uint8_t* table = desc_;
  uint32_t table_size = num_;
  uint32_t walked = 0;
  bool in_indirect = false;
  uint16_t i = head;
  for (;;) {
    if (++walked > table_size) {
      *err = ChainError::kTooLong;
      return;
    }
    Desc d = ReadDesc(table, i);
    if (d.flags & kDescFlagIndirect) {
      if (!indirect_ || in_indirect || (d.flags & kDescFlagNext) || d.len == 0 || d.len % 16 != 0 ||
          d.len / 16 > kMaxRingSize) {
        *err = ChainError::kBadIndirect;
        return;
      }
      const uint8_t* t = mem.GpaToHost(d.addr, d.len);
      if (!t) {
        *err = ChainError::kBadAddress;
        return;
      }
      table = t;
      table_size = d.len / 16;
      walked = 0;
      in_indirect = true;
      i = 0;
      continue;
    }
    if (((d.flags & kDescFlagWrite) != 0) != device_writes) {
      *err = ChainError::kWrongDirection;
      return;
    }
    if (!AppendBuffer(mem, d.addr, d.len, segs, max_segs, c, err)) return;
    if (!(d.flags & kDescFlagNext)) return;
    i = d.next;
    if (i >= table_size) {
      *err = ChainError::kBadIndex;
      return;
    }
  }
}

void SplitRing::PushUsed(const Chain& c, uint32_t len) {
  if (shadow_n_ == kShadowUsed) FlushShadowUsed();
  shadow_[shadow_n_++] = UsedElem{c.head, len};
  used_idx_++;
}

void SplitRing::FlushShadowUsed() {
  uint16_t idx = static_cast<uint16_t>(used_idx_ - shadow_n_);
  for (uint32_t i = 0; i < shadow_n_; i++) {
    uint8_t* e = used_ + 4 + 8u * (static_cast<uint16_t>(idx + i) & mask_);
    StoreU32(e, shadow_[i].id);
    StoreU32(e + 4, shadow_[i].len);
  }
  shadow_n_ = 0;
}

Published SplitRing::PublishUsed() {
  FlushShadowUsed();
  if (used_idx_ == published_used_) return Published::kNone;
  __atomic_store_n(reinterpret_cast<uint16_t*>(used_ + 2), used_idx_, __ATOMIC_RELEASE);
  // The guest's suppression fields must be read after it can see the new index.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  uint16_t old_used = published_used_;
  published_used_ = used_idx_;
  if (event_idx_) {
    // Call only if used_event lies in [old, new): the guest asked to be told once the device
    // passes used_event. Unsigned 16-bit arithmetic makes this hold across wrap-around.
    uint16_t used_event = LoadU16(avail_ + 4 + 2u * num_);
    return static_cast<uint16_t>(used_idx_ - used_event - 1) < static_cast<uint16_t>(used_idx_ - old_used)
               ? Published::kCall
               : Published::kQuiet;
  }
  return (LoadU16(avail_) & kAvailFlagNoInterrupt) == 0 ? Published::kCall : Published::kQuiet;
}

void SplitRing::SetUsedFlags(uint16_t flags) {
  // The guest polls used->idx on the same cache line: a store there, even of the same value, takes
  // the line away from its CPU. The worker calls this on every idle poll, so store only changes.
  if (used_flags_ == flags) return;
  StoreU16(used_, flags);
  used_flags_ = flags;
}

void SplitRing::SuppressKicks() {
  if (!event_idx_) SetUsedFlags(kUsedFlagNoNotify);
}

bool SplitRing::ArmKick() {
  if (event_idx_) StoreU16(used_ + 4 + 8u * num_, last_avail_);
  else SetUsedFlags(0);
  // Without this fence the guest could add a buffer after our last look but before it sees the
  // event index, and neither side would act.
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  uint16_t idx = __atomic_load_n(reinterpret_cast<const uint16_t*>(avail_ + 2), __ATOMIC_ACQUIRE);
  return idx != last_avail_;
}

bool SplitRing::ArmKickBeyondAvail() {
  // "Beyond" what the burst saw when it gave up (avail_seen_), not a fresh read: buffers the guest
  // added since then would otherwise count as seen, and with its kick already decided against the
  // old event index nobody would look at them (a stall with both rings full of work).
  uint16_t seen = avail_seen_;
  if (event_idx_) StoreU16(used_ + 4 + 8u * num_, seen);
  else SetUsedFlags(0);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(avail_ + 2), __ATOMIC_ACQUIRE) != seen;
}

}  // namespace vhost
