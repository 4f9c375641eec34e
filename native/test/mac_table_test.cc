// Unit checks of MacTable (net/switch/mac_table.h) against a std::map model: random learns, lookups,
// port removals and clock ticks over a small table (collisions, wrap-around probe chains and
// backward-shift deletions all happen), then the edges: a full table refusing new MACs but taking
// known ones, a move counted, VLANs apart, ageing at exactly the limit. Built and run by
// native/test/run.sh; exits 1 on the first failed check.
#include "net/switch/mac_table.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <utility>

#include "test/check.h"

using namespace vhost;

namespace {

struct Seen {
  int port;
  uint32_t at;
};
using Key = std::pair<uint16_t, uint64_t>;  // VLAN, MAC

void MacOf(uint64_t m, uint8_t* mac) {
  for (int i = 0; i < 6; i++) mac[i] = static_cast<uint8_t>(m >> (40 - 8 * i));
}

// Few MACs and VLANs, so that the same ones come back, move and age; a table smaller than them, so
// that it fills and refuses.
void AgainstModel(uint32_t max_entries, uint32_t ageing, unsigned seed) {
  MacTable t(max_entries, ageing);
  std::map<Key, Seen> model;
  uint32_t now = 1;
  t.Tick(now);
  srand(seed);
  uint64_t refused = 0, moves = 0;
  auto fresh = [&](const Seen& s) { return now - s.at <= ageing; };
  auto sweep = [&] {
    for (auto it = model.begin(); it != model.end();) it = fresh(it->second) ? std::next(it) : model.erase(it);
  };
  for (int step = 0; step < 300000; step++) {
    const int op = rand() % 100;
    const Key k{static_cast<uint16_t>(1 + rand() % 3), static_cast<uint64_t>(rand() % 48) * 0x10001 + 2};
    uint8_t mac[6];
    MacOf(k.second, mac);
    if (op < 60) {
      const int port = rand() % 5;
      auto it = model.find(k);
      if (it != model.end()) {
        if (it->second.port != port && fresh(it->second)) moves++;
        it->second = Seen{port, now};
      } else if (model.size() >= max_entries) {
        refused++;
      } else {
        model[k] = Seen{port, now};
      }
      t.Learn(mac, k.first, port);
    } else if (op < 97) {
      auto it = model.find(k);
      const int want = it != model.end() && fresh(it->second) ? it->second.port : MacTable::kNoPort;
      CHECK(t.Lookup(mac, k.first) == want, "step %d: lookup of %012llx vlan %u gave %d, want %d", step,
            static_cast<unsigned long long>(k.second), k.first, t.Lookup(mac, k.first), want);
    } else if (op < 98) {
      const int port = rand() % 5;
      t.ForgetPort(port);
      for (auto it = model.begin(); it != model.end();) it = it->second.port == port ? model.erase(it) : std::next(it);
    } else {
      now += 1 + rand() % 2;
      t.Tick(now);
      sweep();
    }
    CHECK(t.size() <= max_entries, "step %d: %u entries, bound %u", step, t.size(), max_entries);
  }
  // The table swept at its last tick, the model now: both hold exactly the fresh entries.
  sweep();
  CHECK(t.Entries().size() == model.size(), "%zu entries, model %zu", t.Entries().size(), model.size());
  for (const MacTable::Entry& e : t.Entries()) {
    uint64_t m = 0;
    for (int i = 0; i < 6; i++) m = m << 8 | e.mac[i];
    auto it = model.find(Key{e.vlan, m});
    CHECK(it != model.end() && it->second.port == e.port && e.age_s == now - it->second.at, "entry %012llx vlan %u",
          static_cast<unsigned long long>(m), e.vlan);
  }
  CHECK(t.counters().refused == refused, "refused %llu, model %llu",
        static_cast<unsigned long long>(t.counters().refused), static_cast<unsigned long long>(refused));
  CHECK(t.counters().moves == moves, "moves %llu, model %llu", static_cast<unsigned long long>(t.counters().moves),
        static_cast<unsigned long long>(moves));
}

void Edges() {
  MacTable t(2, 10);
  t.Tick(100);
  const uint8_t a[6] = {2, 0, 0, 0, 0, 1}, b[6] = {2, 0, 0, 0, 0, 2}, c[6] = {2, 0, 0, 0, 0, 3};
  t.Learn(a, 1, 0);
  t.Learn(a, 2, 1);  // the same MAC in another VLAN is another entry
  CHECK(t.Lookup(a, 1) == 0 && t.Lookup(a, 2) == 1 && t.Lookup(a, 3) == MacTable::kNoPort, "VLANs apart");
  t.Learn(b, 1, 0);  // full: refused, counted
  CHECK(t.size() == 2 && t.Lookup(b, 1) == MacTable::kNoPort && t.counters().refused == 1, "a full table refuses");
  t.Learn(a, 1, 3);  // known: moves, counted, even when full
  CHECK(t.Lookup(a, 1) == 3 && t.counters().moves == 1, "a move when full");
  t.Tick(110);
  CHECK(t.Lookup(a, 1) == 3, "still there at exactly the ageing time");
  t.Tick(111);
  CHECK(t.Lookup(a, 1) == MacTable::kNoPort && t.size() == 0, "gone after it, and swept");
  t.Learn(c, 1, 4);
  t.ForgetPort(4);
  CHECK(t.size() == 0 && t.Lookup(c, 1) == MacTable::kNoPort, "forgotten with its port");
}

}  // namespace

int main() {
  Edges();
  AgainstModel(16, 3, 1);  // capacity 32 slots: long chains, wrap-around
  AgainstModel(64, 5, 2);
  AgainstModel(1000, 2, 3);  // never full
  printf("mac table: %d checks passed\n", vhost_test::checks);
  return 0;
}
