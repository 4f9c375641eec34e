#include "net/switch/mac_table.h"

#include <sys/random.h>

#include <cstring>

namespace vhost {

namespace {

uint64_t RandomSeed() {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed) seed = reinterpret_cast<uintptr_t>(&seed);
  return seed | 1;
}

uint32_t CapacityFor(uint32_t max_entries) {
  uint32_t cap = 16;
  while (cap < 2 * max_entries) cap <<= 1;
  return cap;
}

}  // namespace

MacTable::MacTable(uint32_t max_entries, uint32_t ageing_s)
    : max_entries_(max_entries),
      ageing_s_(ageing_s),
      seed_(RandomSeed()),
      slots_(CapacityFor(max_entries), Slot{0, kNoPort, 0}),
      mask_(static_cast<uint32_t>(slots_.size() - 1)) {}

uint64_t MacTable::Key(const uint8_t* mac, uint16_t vlan) {
  uint64_t key = static_cast<uint64_t>(vlan) << 48;
  for (int i = 0; i < 6; i++) key |= static_cast<uint64_t>(mac[i]) << (40 - 8 * i);
  return key;
}

uint32_t MacTable::Home(uint64_t key) const {
  // A keyed multiply-xorshift: cheap, and without the seed a guest cannot predict the slot.
  uint64_t h = (key ^ seed_) * 0x9e3779b97f4a7c15ull;
  h ^= h >> 29;
  h *= seed_;
  return static_cast<uint32_t>(h >> 32) & mask_;
}

uint32_t MacTable::Find(uint64_t key) const {
  uint32_t i = Home(key);
  // Terminates: the table is never more than half full, so an empty slot exists.
  while (slots_[i].port != kNoPort && slots_[i].key != key) i = (i + 1) & mask_;
  return i;
}

void MacTable::Tick(uint32_t now_s) {
  if (now_s == now_s_) return;
  now_s_ = now_s;
  Sweep();
}

void MacTable::Learn(const uint8_t* mac, uint16_t vlan, int port) {
  const uint64_t key = Key(mac, vlan);
  const uint32_t i = Find(key);
  Slot& s = slots_[i];
  if (s.port != kNoPort) {
    if (s.port != port) {
      if (Fresh(s)) counters_.moves++;
      s.port = port;
    }
    s.seen_s = now_s_;
    return;
  }
  if (size_ >= max_entries_) {
    counters_.refused++;
    return;
  }
  s = Slot{key, port, now_s_};
  size_++;
}

int MacTable::Lookup(const uint8_t* mac, uint16_t vlan) const {
  const Slot& s = slots_[Find(Key(mac, vlan))];
  return s.port != kNoPort && Fresh(s) ? s.port : kNoPort;
}

// Backward-shift deletion: later entries of the probe chain move up, so no tombstones pile up.
void MacTable::Erase(uint32_t i) {
  uint32_t j = i;
  for (;;) {
    slots_[i] = Slot{0, kNoPort, 0};
    for (;;) {
      j = (j + 1) & mask_;
      if (slots_[j].port == kNoPort) {
        size_--;
        return;
      }
      const uint32_t home = Home(slots_[j].key);
      // slots_[j] may fill the hole at i unless its home lies cyclically in (i, j].
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) break;
    }
    slots_[i] = slots_[j];
    i = j;
  }
}

void MacTable::Sweep() {
  for (uint32_t i = 0; i <= mask_;) {
    // Erase may pull a later entry into i: look at i again before moving on.
    if (slots_[i].port != kNoPort && !Fresh(slots_[i])) Erase(i);
    else i++;
  }
}

void MacTable::ForgetPort(int port) {
  for (uint32_t i = 0; i <= mask_;) {
    if (slots_[i].port == port) Erase(i);
    else i++;
  }
}

std::vector<MacTable::Entry> MacTable::Entries() const {
  std::vector<Entry> out;
  for (const Slot& s : slots_) {
    if (s.port == kNoPort || !Fresh(s)) continue;
    Entry e;
    for (int i = 0; i < 6; i++) e.mac[i] = static_cast<uint8_t>(s.key >> (40 - 8 * i));
    e.vlan = static_cast<uint16_t>(s.key >> 48);
    e.port = s.port;
    e.age_s = now_s_ - s.seen_s;
    out.push_back(e);
  }
  return out;
}

}  // namespace vhost
