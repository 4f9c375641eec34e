#!/usr/bin/env bash
# Builds the libFuzzer target (clang, ASan + UBSan) over the addon's data-path sources (the list
# binding.gyp uses, from scripts/native-sources.js), then either
#   run.sh [SECONDS]   fuzzes for SECONDS (default 60); the corpus persists in build/fuzz/corpus
#   run.sh replay      runs every input in native/fuzz/regressions/ once and fails if one crashes.
# regressions/ keeps each input that once crashed ring_fuzzer, named for what it found plus the
# hash libFuzzer gave it; the fuzzing runs also start from them. A new crash-* file from build/fuzz/
# goes there once the bug is fixed.
# Needs Debian's clang and libclang-rt-14-dev.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-60}
if [ "$mode" != replay ] && ! [[ $mode =~ ^[0-9]+$ ]]; then
  echo "usage: native/fuzz/run.sh [SECONDS | replay]" >&2
  exit 2
fi
out=build/fuzz
regressions=native/fuzz/regressions
mkdir -p "$out"
mapfile -t sources < <(node scripts/native-sources.js data-path)
[ "${#sources[@]}" -gt 0 ] || { echo "scripts/native-sources.js listed no sources" >&2; exit 1; }
# Built again only when a native source, the source list or this script is newer than the binary
# (npm test replays, then fuzzes: one build of half a minute serves both).
if [ ! -x "$out/ring_fuzzer" ] || [ -n "$(find native scripts/native-sources.js -newer "$out/ring_fuzzer" -print -quit)" ]; then
  clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Inative native/fuzz/ring_fuzzer.cc "${sources[@]}" -o "$out/ring_fuzzer.new" -ldl
  mv "$out/ring_fuzzer.new" "$out/ring_fuzzer"
fi

if [ "$mode" = replay ]; then
  shopt -s nullglob
  inputs=("$regressions"/*)
  # Without file arguments libFuzzer would start fuzzing instead of replaying nothing.
  if [ "${#inputs[@]}" -eq 0 ]; then
    echo "no inputs in $regressions/ to replay" >&2
    exit 1
  fi
  rc=0
  "$out/ring_fuzzer" "${inputs[@]}" > "$out/replay.log" 2>&1 || rc=$?
  grep -E "^Executed |ERROR|SUMMARY" "$out/replay.log" || true
  if [ "$rc" -ne 0 ]; then
    echo "ring_fuzzer replay failed (exit $rc): an input in $regressions/ crashes again; see $out/replay.log" >&2
    exit "$rc"
  fi
  echo "replayed ${#inputs[@]} inputs from $regressions/"
  exit 0
fi

seconds=$mode
mkdir -p "$out/corpus"
python3 native/fuzz/seeds.py "$out/corpus"
rc=0
# New inputs go to the first corpus folder only; regressions/ is read as extra seeds.
"$out/ring_fuzzer" -max_total_time="$seconds" -max_len=8300 -print_final_stats=1 -artifact_prefix="$out/" \
  "$out/corpus" "$regressions" > "$out/ring_fuzzer.log" 2>&1 || rc=$?
grep -E "^#[0-9]+ *DONE|stat::number_of_executed_units|ERROR|SUMMARY" "$out/ring_fuzzer.log" || true
if [ "$rc" -ne 0 ]; then
  echo "ring_fuzzer failed (exit $rc): see $out/ring_fuzzer.log and the crash-* input in $out/" >&2
  exit "$rc"
fi
