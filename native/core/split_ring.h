// One split virtqueue as the device sees it (virtio 1.x, 2.6 "Split Virtqueues").
// The ring lives in guest memory, which the guest may rewrite at any moment: every shared field is
// read exactly once into a local, every index is bounded by the ring size, every buffer address is
// translated through GuestMemory with bounds checks. Used entries of a burst are kept aside (a shadow
// used ring) and written into the ring together at PublishUsed, followed by a single store of
// used->idx, so each used-ring line crosses between the CPUs once and the guest sees one update per
// burst.
#pragma once

#include <cstdint>
#include <string>

#include "core/chain.h"
#include "core/guest_memory.h"

namespace vhost {

constexpr uint16_t kAvailFlagNoInterrupt = 1;
constexpr uint16_t kUsedFlagNoNotify = 1;

class SplitRing {
 public:
  // Validates and resolves ring addresses (front-end virtual addresses) against `mem`.
  // Returns false with *err set when a part is outside mapped memory or misaligned.
  bool Attach(const GuestMemory& mem, uint32_t num, uint64_t desc_ua, uint64_t avail_ua, uint64_t used_ua,
              std::string* err);
  void Detach() { desc_ = nullptr; }
  bool attached() const { return desc_ != nullptr; }
  void set_event_idx(bool on) { event_idx_ = on; }
  void set_indirect(bool on) { indirect_ = on; }

  uint32_t size() const { return num_; }
  // vhost-user's ring base: the next available index we will take (bits 16-31 unused).
  uint32_t GetBase() const { return last_avail_; }
  void SetBase(uint32_t base) { last_avail_ = avail_seen_ = static_cast<uint16_t>(base); }
  // Picks up the guest's used index as the starting point (used entries already returned).
  void SyncUsedIndex();

  // Number of chains the guest has made available and we have not taken. Sets *broken when the guest
  // claims more than the ring holds. The guest's index lives on a cache line its CPU keeps writing:
  // it is re-read only when what it said last time is used up (once per burst, not per frame).
  uint16_t Available(bool* broken) {
    uint16_t n = static_cast<uint16_t>(avail_seen_ - last_avail_);
    if (n != 0 && n <= num_) return n;
    return ReloadAvailable(broken);
  }
  // Walks the chain at last_avail and takes it. Segments go to segs[0..max_segs). All descriptors must
  // be device-writable (device_writes) or all readable. On error the chain is still taken (when
  // its head is valid the caller returns it with length 0) and *err says why.
  // The chain goes to *c, written in place: returned by value, its fields were stored one by one
  // and loaded back as one word, a store-forwarding stall on every chain.
  void Pop(const GuestMemory& mem, bool device_writes, Segment* segs, int max_segs, Chain* c, ChainError* err);
  // Where the next Pop takes from; Rewind(pos) gives back every chain taken since (none of them
  // may have been pushed as used).
  RingPos Position() const { return last_avail_; }
  void Rewind(RingPos pos) { last_avail_ = static_cast<uint16_t>(pos); }

  // Adds a used entry; the guest sees it after PublishUsed.
  void PushUsed(const Chain& c, uint32_t len);
  // Publishes the used entries written since the last publish; says whether the guest wants a call.
  Published PublishUsed();
  // Tells the guest to kick us when it adds buffers past what we have taken (EVENT_IDX), then re-checks
  // whether it already did: returns true if more buffers are available (the race is closed).
  bool ArmKick();
  // While the worker busy-polls: tells the guest not to kick (VRING_USED_F_NO_NOTIFY). With
  // EVENT_IDX nothing needs writing: an avail_event left behind already stops its kicks.
  void SuppressKicks();
  // Like ArmKick, but asks for a kick on any buffer beyond those already available (used while
  // waiting for more room than the guest has given). Returns true if the index moved meanwhile.
  bool ArmKickBeyondAvail();

 private:
  struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
  };
  uint16_t ReloadAvailable(bool* broken);
  void SetUsedFlags(uint16_t flags);
  // Writes the shadowed used entries into the ring (not yet visible: used->idx is not moved).
  void FlushShadowUsed();
  Desc ReadDesc(const uint8_t* table, uint16_t i) const;

  uint8_t* desc_ = nullptr;
  uint8_t* avail_ = nullptr;  // flags u16, idx u16, ring[num] u16, used_event u16
  uint8_t* used_ = nullptr;   // flags u16, idx u16, ring[num] {id u32, len u32}, avail_event u16
  uint32_t num_ = 0;
  uint16_t mask_ = 0;
  uint16_t last_avail_ = 0;
  uint16_t avail_seen_ = 0;  // the guest's avail->idx as last read
  uint16_t used_idx_ = 0;    // our next used index (not yet published beyond published_used_)
  // Used entries of the burst, written into the ring all together when published: the guest reads
  // the used ring on another CPU, and writing its lines entry by entry would move each line back
  // and forth between the CPUs once per entry instead of once.
  struct UsedElem {
    uint32_t id;
    uint32_t len;
  };
  static constexpr uint32_t kShadowUsed = 256;
  UsedElem shadow_[kShadowUsed];
  uint32_t shadow_n_ = 0;
  uint16_t published_used_ = 0;
  // used->flags as we last wrote them (only the device writes them); unknown after Attach.
  static constexpr uint32_t kUsedFlagsUnknown = 0x10000;
  uint32_t used_flags_ = kUsedFlagsUnknown;
  bool event_idx_ = false;
  bool indirect_ = false;
};

}  // namespace vhost
