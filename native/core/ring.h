// The ring verbs: what every port and TX/RX helper does to a virtqueue, whatever its layout. The
// layout (split or packed) is chosen once, when the driver's features are set. SplitRing and
// PackedRing have the same verbs, so a burst is written once as a template on the layout and
// picked once per Service call (WithLayout): no virtual call and no branch per descriptor. The verbs
// of Ring itself branch on the layout, for what runs once per burst or on the control path.
#pragma once

#include <cstdint>
#include <string>

#include "core/chain.h"
#include "core/guest_memory.h"
#include "core/packed_ring.h"
#include "core/split_ring.h"

namespace vhost {

// Ring features (virtio 1.x, 6): they change how every queue is walked, whatever the device kind.
constexpr int kFeatureIndirectDesc = 28;
constexpr int kFeatureEventIdx = 29;
constexpr int kFeatureRingPacked = 34;
constexpr int kFeatureInOrder = 35;

class Ring {
 public:
  // The driver's features: the layout and how it is walked. Attach again after a layout change.
  void SetFeatures(uint64_t features) {
    auto has = [features](int bit) { return ((features >> bit) & 1) != 0; };
    packed_ = has(kFeatureRingPacked);
    split_.set_event_idx(has(kFeatureEventIdx));
    split_.set_indirect(has(kFeatureIndirectDesc));
    packed_ring_.set_event_idx(has(kFeatureEventIdx));
    packed_ring_.set_indirect(has(kFeatureIndirectDesc));
    packed_ring_.set_in_order(has(kFeatureInOrder));
  }
  bool packed() const { return packed_; }
  // The layout itself, for a burst templated on it (L: SplitRing or PackedRing, the one in use):
  // its verbs are the ones below, without the branch.
  template <typename L>
  L& As();

  // Addresses as SET_VRING_ADDR gives them (packed: avail = the driver's event area, used = ours).
  bool Attach(const GuestMemory& mem, uint32_t num, uint64_t desc_ua, uint64_t avail_ua, uint64_t used_ua,
              std::string* err) {
    Detach();
    return packed_ ? packed_ring_.Attach(mem, num, desc_ua, avail_ua, used_ua, err)
                   : split_.Attach(mem, num, desc_ua, avail_ua, used_ua, err);
  }
  void Detach() {
    split_.Detach();
    packed_ring_.Detach();
  }
  bool attached() const { return packed_ ? packed_ring_.attached() : split_.attached(); }
  // SET/GET_VRING_BASE's number, in the layout's own format (vhost-user "Ring states").
  uint32_t GetBase() const { return packed_ ? packed_ring_.GetBase() : split_.GetBase(); }
  void SetBase(uint32_t base) {
    split_.SetBase(base);
    packed_ring_.SetBase(base);
  }

  // The per-chain verbs (Available, Pop, Position, Rewind, PushUsed) are the layouts' own, reached
  // through As<L>() in a burst instantiated by WithLayout; what follows runs once per burst.
  // Makes the pushed entries visible; says whether the guest wants a call.
  Published PublishUsed() { return packed_ ? packed_ring_.PublishUsed() : split_.PublishUsed(); }
  // Asks for a kick on the next buffer and looks again: true if one is already there.
  bool ArmKick() { return packed_ ? packed_ring_.ArmKick() : split_.ArmKick(); }
  // Asks for a kick on any buffer beyond those already available; true if one came meanwhile.
  bool ArmKickBeyondAvail() { return packed_ ? packed_ring_.ArmKickBeyondAvail() : split_.ArmKickBeyondAvail(); }
  // While busy-polling: no kicks wanted.
  void SuppressKicks() { packed_ ? packed_ring_.SuppressKicks() : split_.SuppressKicks(); }

 private:
  bool packed_ = false;
  SplitRing split_;
  PackedRing packed_ring_;
};

template <>
inline SplitRing& Ring::As<SplitRing>() {
  return split_;
}
template <>
inline PackedRing& Ring::As<PackedRing>() {
  return packed_ring_;
}

// Names a layout for a generic lambda: [&](auto layout) { using L = typename decltype(layout)::type; }.
template <typename L>
struct LayoutTag {
  using type = L;
};

// Runs `burst` instantiated for the layout of `ring` (SplitRing or PackedRing): one branch per
// call, none inside it.
template <typename Burst>
decltype(auto) WithLayout(const Ring& ring, Burst&& burst) {
  return ring.packed() ? burst(LayoutTag<PackedRing>{}) : burst(LayoutTag<SplitRing>{});
}

}  // namespace vhost
