// One packed virtqueue as the device sees it (virtio 1.1+, 2.8 "Packed Virtqueues"): a single ring
// of descriptors that the driver makes available and the device writes back as used, each lap of
// the ring told apart by a wrap counter, plus two event-suppression areas (the driver's, which we
// read before a call; ours, which tells the driver whether to kick).
// As for the split ring, the guest may rewrite the ring at any moment: each descriptor is read once
// into a local, chains are bounded by the ring size, ids by the ring size and by what we hold, and
// every buffer is translated through GuestMemory with bounds checks. Used descriptors of a burst
// are kept aside and written at PublishUsed, the first one's flags last, so the driver sees the
// burst at once; with IN_ORDER a burst of a transmit ring is one used descriptor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/chain.h"
#include "core/guest_memory.h"

namespace vhost {

class PackedRing {
 public:
  // `desc_ua` is the descriptor ring, `driver_ua` the driver's event-suppression area (what
  // SET_VRING_ADDR calls the available ring) and `device_ua` ours (the used ring). Keeps the ring
  // position (SetBase): a memory-table change re-attaches without moving it.
  bool Attach(const GuestMemory& mem, uint32_t num, uint64_t desc_ua, uint64_t driver_ua, uint64_t device_ua,
              std::string* err);
  void Detach() { desc_ = nullptr; }
  bool attached() const { return desc_ != nullptr; }
  void set_event_idx(bool on) { event_idx_ = on; }
  void set_indirect(bool on) { indirect_ = on; }
  void set_in_order(bool on) { in_order_ = on; }
  uint32_t size() const { return num_; }

  // vhost-user's ring base for packed rings: bits 0-14 the next descriptor to take, bit 15 its wrap
  // counter, bits 16-30 the next used slot, bit 31 its wrap counter. A base whose upper half is 0
  // while the avail wrap counter is set (DPDK's virtio-user sends 1 << 15 at start) puts the used
  // position where the available one is.
  uint32_t GetBase() const;
  void SetBase(uint32_t base);

  // 1 if the driver has made the descriptor at our position available, else 0 (a packed ring has
  // no index to count by). Never broken: there is no index the driver can run ahead with. A 0
  // records where the ring ran dry, for ArmKickBeyondAvail.
  uint16_t Available(bool* /*broken*/) {
    if (IsAvailable(last_avail_, avail_wrap_)) return 1;
    dry_idx_ = last_avail_;
    dry_wrap_ = avail_wrap_;
    dry_valid_ = true;
    return 0;
  }
  // Walks the chain at our position and takes it (call only after Available). As SplitRing::Pop;
  // on an error the whole chain is still skipped, and returned with length 0 when it can be
  // (Chain::returnable). kEndless: the ring is beyond repair.
  // The chain goes to *c, written in place: returned by value, its fields were stored one by one
  // and loaded back as one word, a store-forwarding stall on every chain.
  void Pop(const GuestMemory& mem, bool device_writes, Segment* segs, int max_segs, Chain* c, ChainError* err);
  // The count of chains taken: exact where an index and wrap counter repeat every two laps.
  RingPos Position() const { return taken_seq_; }
  // Gives back the chains taken since Position() was `pos` (the last kTakenLog at most: callers
  // rewind over a frame's buffers, 65 chains or fewer), releasing their ids.
  void Rewind(RingPos pos);

  // Inline: once per chain on every port's path.
  void PushUsed(const Chain& c, uint32_t len) {
    if (!c.returnable()) return;
    in_use_[c.head] = 0;
    if (shadow_n_ == kShadowUsed) FlushShadowUsed();
    shadow_[shadow_n_++] = UsedElem{c.head, used_idx_, len, used_wrap_};
    used_since_signal_ += c.ndesc;
    used_idx_ = static_cast<uint16_t>(used_idx_ + c.ndesc);
    if (used_idx_ >= num_) {
      used_idx_ = static_cast<uint16_t>(used_idx_ - num_);
      used_wrap_ = !used_wrap_;
    }
  }
  Published PublishUsed();
  bool ArmKick();
  void SuppressKicks() { SetDeviceFlags(kEventDisable); }
  bool ArmKickBeyondAvail();

 private:
  static constexpr uint16_t kFlagAvail = 1 << 7;
  static constexpr uint16_t kFlagUsed = 1 << 15;
  static constexpr uint32_t kWrapBit = 1 << 15;
  // Event-suppression flags (both areas: off_wrap u16, flags u16).
  static constexpr uint16_t kEventEnable = 0;
  static constexpr uint16_t kEventDisable = 1;
  static constexpr uint16_t kEventDesc = 2;

  struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
  };
  struct UsedElem {
    uint16_t id;
    uint16_t pos;
    uint32_t len;
    bool wrap;
  };
  // Chains taken, newest last, so Rewind can restore the position and release the ids.
  struct Taken {
    uint32_t seq;  // taken_seq_ before the chain
    uint16_t idx;  // where it started
    bool wrap;
    uint16_t id;  // kNoId: the chain claimed no id
  };
  static constexpr uint16_t kNoId = 0xffff;
  static constexpr uint32_t kTakenLog = 256;
  static constexpr uint32_t kShadowUsed = 256;

  bool IsAvailable(uint16_t i, bool wrap) const {
    uint16_t f = __atomic_load_n(reinterpret_cast<const uint16_t*>(desc_ + 16u * i + 14), __ATOMIC_ACQUIRE);
    return ((f & kFlagAvail) != 0) == wrap && ((f & kFlagUsed) != 0) != wrap;
  }
  Desc ReadDesc(const uint8_t* table, uint32_t i) const;
  // Appends an indirect table's buffers; returns false with *err set.
  bool WalkIndirect(const GuestMemory& mem, const Desc& d, bool device_writes, Segment* segs, int max_segs, Chain* c,
                    ChainError* err) const;
  // Checks one descriptor of the ring and appends its buffer(s); false with *err set.
  bool TakeDesc(const GuestMemory& mem, const Desc& d, uint16_t nth, bool device_writes, Segment* segs, int max_segs,
                Chain* c, ChainError* err) const;
  void Claim(uint16_t idx, bool wrap, uint16_t id);
  // Entries pushed but not written when the ring is re-attached or read (after a memory fault cut a
  // burst short) are dropped, and the used position goes back to the first of them.
  void DropShadow();
  void WriteUsed(const UsedElem& e, uint16_t id) {
    uint8_t* p = desc_ + 16u * e.pos;
    __atomic_store_n(reinterpret_cast<uint32_t*>(p + 8), e.len, __ATOMIC_RELAXED);
    __atomic_store_n(reinterpret_cast<uint16_t*>(p + 12), id, __ATOMIC_RELAXED);
    uint16_t flags = (e.wrap ? kFlagAvail | kFlagUsed : 0) | (e.len ? kDescFlagWrite : 0);
    __atomic_store_n(reinterpret_cast<uint16_t*>(p + 14), flags, __ATOMIC_RELEASE);
  }
  void FlushShadowUsed();
  void SetDeviceFlags(uint16_t flags);
  void ArmAt(uint16_t i, bool wrap);

  uint8_t* desc_ = nullptr;
  const uint8_t* driver_ = nullptr;  // off_wrap u16, flags u16: when the driver wants calls
  uint8_t* device_ = nullptr;        // off_wrap u16, flags u16: when we want kicks
  uint32_t num_ = 0;
  uint16_t last_avail_ = 0;
  bool avail_wrap_ = true;
  // Where Available last found nothing, while no chain was taken since (Pop clears it; Rewind,
  // which only goes back, keeps it): the position a burst gave up at.
  uint16_t dry_idx_ = 0;
  bool dry_wrap_ = true;
  bool dry_valid_ = false;
  uint16_t used_idx_ = 0;  // where the next used entry goes
  bool used_wrap_ = true;
  // The used position when the driver was last considered for a call.
  // Descriptors used since the driver was last considered for a call (more than a lap is possible
  // when a long burst fills the shadow and the driver refills meanwhile).
  uint32_t used_since_signal_ = 0;
  std::vector<uint8_t> in_use_;  // per buffer id: taken and not yet returned
  Taken taken_[kTakenLog];       // a circular log of the last kTakenLog chains
  uint32_t taken_top_ = 0;
  uint32_t taken_count_ = 0;
  uint32_t taken_seq_ = 0;  // chains taken, free-running
  UsedElem shadow_[kShadowUsed];
  uint32_t shadow_n_ = 0;
  bool device_reads_ = false;  // the last chain taken was device-readable: a transmit ring
  static constexpr uint32_t kDeviceFlagsUnknown = 0x10000;
  uint32_t device_flags_ = kDeviceFlagsUnknown;  // as we last wrote them
  bool event_idx_ = false;
  bool indirect_ = false;
  bool in_order_ = false;
};

}  // namespace vhost
