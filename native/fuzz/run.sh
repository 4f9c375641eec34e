#!/usr/bin/env bash
# Builds the libFuzzer target (clang, ASan + UBSan) over the addon's data-path sources (the list
# binding.gyp uses, from scripts/native-sources.js) and runs it for $1 seconds (default 60).
# Needs Debian's clang and libclang-rt-14-dev. The corpus persists in build/fuzz/corpus.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
out=build/fuzz
mkdir -p "$out/corpus"
python3 native/fuzz/seeds.py "$out/corpus"
mapfile -t sources < <(node scripts/native-sources.js data-path)
[ "${#sources[@]}" -gt 0 ] || { echo "scripts/native-sources.js listed no sources" >&2; exit 1; }
clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Inative native/fuzz/ring_fuzzer.cc "${sources[@]}" -o "$out/ring_fuzzer"
rc=0
"$out/ring_fuzzer" -max_total_time="$seconds" -max_len=8300 -print_final_stats=1 -artifact_prefix="$out/" \
  "$out/corpus" > "$out/ring_fuzzer.log" 2>&1 || rc=$?
grep -E "^#[0-9]+ *DONE|stat::number_of_executed_units|ERROR|SUMMARY" "$out/ring_fuzzer.log" || true
if [ "$rc" -ne 0 ]; then
  echo "ring_fuzzer failed (exit $rc): see $out/ring_fuzzer.log and the crash-* input in $out/" >&2
  exit "$rc"
fi
