#!/usr/bin/env bash
# Builds and runs the native unit checks (native/test/*_test.cc) against the data-path sources, with
# ASan and UBSan when clang's runtime is there (as for the fuzzer), else plain g++. Exit 0 when
# every program passed. -ldl: the user port loads libslirp at run time (glibc before 2.34 needs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/native-test
mkdir -p "$out"
mapfile -t sources < <(node scripts/native-sources.js data-path)
if command -v clang++ > /dev/null; then
  cxx=(clang++ -fsanitize=address,undefined -fno-sanitize-recover=undefined)
else
  cxx=(g++)
fi
for test in native/test/*_test.cc; do
  bin="$out/$(basename "$test" .cc)"
  "${cxx[@]}" -std=c++17 -g -O1 -Inative "$test" "${sources[@]}" -o "$bin" -lpthread -ldl
  "$bin"
done
