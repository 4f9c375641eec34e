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
# The data-path sources are compiled once (two at a time), then linked into each program: compiling
# them again per program made this the slowest step of npm test.
flags=(-std=c++17 -g -O1 -Inative)
objects=()
for src in "${sources[@]}"; do
  mkdir -p "$out/obj/$(dirname "$src")"
  objects+=("$out/obj/$src.o")
done
printf '%s\n' "${sources[@]}" | xargs -P 2 -I{} "${cxx[@]}" "${flags[@]}" -c {} -o "$out/obj/{}.o"
for test in native/test/*_test.cc; do
  bin="$out/$(basename "$test" .cc)"
  "${cxx[@]}" "${flags[@]}" "$test" "${objects[@]}" -o "$bin" -lpthread -ldl
  "$bin"
done
