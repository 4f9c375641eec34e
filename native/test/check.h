// The one check of the native unit programs: counts, and on failure prints where and why, then
// exits 1 (the first failure ends the program; native/test/run.sh stops there).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace vhost_test {
inline int checks = 0;
}  // namespace vhost_test

#define CHECK(cond, ...)                                     \
  do {                                                       \
    vhost_test::checks++;                                    \
    if (!(cond)) {                                           \
      fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                          \
      fputc('\n', stderr);                                   \
      exit(1);                                               \
    }                                                        \
  } while (0)
