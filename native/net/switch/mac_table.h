// The switch's MAC table: which port a MAC address sits behind, per VLAN. Learnt from the source
// MAC of every frame, forgotten after `ageing` seconds without a frame from it, at once when its port
// goes. A fixed-size open-addressing table (linear probing, backward-shift deletion, at most half
// full), so a lookup never allocates and a guest that sends from ever new MACs fills it, never grows
// it: beyond `max_entries` new MACs are refused and counted (their frames are flooded instead). The
// hash is keyed per table with random bits, so a guest cannot aim its MACs at one probe chain.
// Used by one thread at a time (the switch's thread, or the control thread while it is paused).
#pragma once

#include <cstdint>
#include <vector>

namespace vhost {

class MacTable {
 public:
  static constexpr int kNoPort = -1;

  struct Entry {
    uint8_t mac[6];
    uint16_t vlan;
    int port;
    uint32_t age_s;  // seconds since its last frame
  };

  struct Counters {
    uint64_t refused = 0;  // new MACs not learnt: the table was full
    uint64_t moves = 0;    // MACs seen on another port than the one learnt
  };

  MacTable(uint32_t max_entries, uint32_t ageing_s);

  // The clock, in whole seconds, once per round of the switch (not per frame). When the second
  // changes, entries older than the ageing time are swept out.
  void Tick(uint32_t now_s);
  // `mac` (unicast: the caller checked) in `vlan` was the source of a frame from `port`.
  void Learn(const uint8_t* mac, uint16_t vlan, int port);
  // The port behind `mac` in `vlan`, or kNoPort (unknown, or aged out).
  int Lookup(const uint8_t* mac, uint16_t vlan) const;
  // Every entry of `port` goes (its device left the switch or lost its front-end).
  void ForgetPort(int port);
  // The live entries.
  std::vector<Entry> Entries() const;
  uint32_t size() const { return size_; }
  uint32_t max_entries() const { return max_entries_; }
  const Counters& counters() const { return counters_; }

 private:
  struct Slot {
    uint64_t key;  // vlan << 48 | mac; 0 with port kNoPort when empty
    int32_t port;
    uint32_t seen_s;
  };

  static uint64_t Key(const uint8_t* mac, uint16_t vlan);
  uint32_t Home(uint64_t key) const;
  bool Fresh(const Slot& s) const { return now_s_ - s.seen_s <= ageing_s_; }
  // The slot holding `key`, or the empty slot ending its probe chain.
  uint32_t Find(uint64_t key) const;
  void Erase(uint32_t i);
  void Sweep();

  const uint32_t max_entries_;
  const uint32_t ageing_s_;
  const uint64_t seed_;
  std::vector<Slot> slots_;  // a power of two, at least twice max_entries
  uint32_t mask_;
  uint32_t size_ = 0;
  uint32_t now_s_ = 0;
  Counters counters_;
};

}  // namespace vhost
