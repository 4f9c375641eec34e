// Unit checks of FrameBacklog (net/frame_backlog.h): order and contents across many wraps of its
// ring, against a std::deque model; refusals when full (bytes or frames) and for a frame larger than
// the ring; Clear. Built and run by native/test/run.sh; exits 1 on the first failed check.
#include "net/frame_backlog.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <vector>

#include "test/check.h"

using namespace vhost;

namespace {

std::vector<uint8_t> Frame(uint32_t n, size_t len) {
  std::vector<uint8_t> f(len);
  for (size_t i = 0; i < len; i++) f[i] = static_cast<uint8_t>(n * 31 + i);
  return f;
}

// Random pushes and pops against a model: whatever was accepted comes out in order, intact, and a
// push is refused only when the model says the ring cannot hold it.
void AgainstModel(size_t capacity, size_t max_frames, size_t max_len, unsigned seed) {
  FrameBacklog b(capacity, max_frames);
  std::deque<std::vector<uint8_t>> model;
  size_t model_bytes = 0;
  srand(seed);
  const size_t max_record = 8 + ((max_len + 7) & ~size_t{7});
  uint32_t n = 0;
  for (int step = 0; step < 200000; step++) {
    if (rand() % 2) {
      std::vector<uint8_t> f = Frame(n++, static_cast<size_t>(rand()) % max_len);
      const size_t record = 8 + ((f.size() + 7) & ~size_t{7});
      const bool ok = b.Push(f.data(), f.size());
      // Accepted only within the bounds; always accepted when there is room for it and one record of
      // the largest size (the end a wrap skips is shorter than the record that wrapped).
      if (ok) {
        model_bytes += record;
        model.push_back(std::move(f));
        CHECK(model.size() <= max_frames && model_bytes <= capacity, "accepted past the bounds");
      } else {
        CHECK(model.size() == max_frames || model_bytes + record + max_record > capacity,
              "refused a %zu-byte frame with %zu of %zu bytes used", f.size(), model_bytes, capacity);
      }
    } else if (!model.empty()) {
      CHECK(!b.empty() && b.front_len() == model.front().size(), "front length %u, want %zu", b.front_len(),
            model.front().size());
      CHECK(std::equal(model.front().begin(), model.front().end(), b.front()), "front contents differ");
      model_bytes -= 8 + ((model.front().size() + 7) & ~size_t{7});
      model.pop_front();
      b.Pop();
    }
    CHECK(b.frames() == model.size(), "%zu frames, want %zu", b.frames(), model.size());
  }
}

void Refusals() {
  FrameBacklog b(1024, 4);
  std::vector<uint8_t> big(1024);
  CHECK(!b.Push(big.data(), big.size()), "a frame larger than the ring was kept");
  std::vector<uint8_t> f = Frame(1, 60);
  for (int i = 0; i < 4; i++) CHECK(b.Push(f.data(), f.size()), "push %d refused", i);
  CHECK(!b.Push(f.data(), f.size()), "a fifth frame past max_frames was kept");
  b.Clear();
  CHECK(b.empty() && b.frames() == 0, "Clear left frames");
  CHECK(b.Push(big.data(), 1000), "an empty ring refused a frame that fits");
  CHECK(!b.Push(f.data(), f.size()), "a full ring kept a frame");
  b.Pop();
  CHECK(b.Push(f.data(), 0) && b.front_len() == 0, "an empty frame");
}

}  // namespace

int main() {
  Refusals();
  AgainstModel(4096, 1000, 600, 1);  // bytes bind
  AgainstModel(1 << 16, 8, 300, 2);  // frames bind
  AgainstModel(256, 100, 250, 3);    // records close to the ring's size
  printf("frame backlog: %d checks passed\n", vhost_test::checks);
  return 0;
}
