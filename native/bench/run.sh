#!/usr/bin/env bash
# A/B of the data path's own work per frame (native/bench/ring_microbench.cc) between the working
# tree and a git revision: both built with the addon's flags (g++ -O2 -flto), run interleaved on one
# CPU, and the median and best ns/frame of each printed. Usage:
#   native/bench/run.sh [REV (default HEAD)] [RUNS (default 10)] [split|packed (default split)] [FRAME (default 64)]
# The benchmark source is the working tree's, so REV must have the same data-path interfaces.
# With --capture instead of REV: the working tree alone, without and with every frame captured
# (the device's cost of --pcap).
set -euo pipefail
cd "$(dirname "$0")/../.."
capture=no
if [ "${1:-}" = --capture ]; then
  capture=yes
  shift
  set -- HEAD "$@"
fi
rev=${1:-HEAD}
runs=${2:-10}
layout=${3:-split}
frame=${4:-64}
out=build/microbench
mkdir -p "$out"
build() {  # build <source root> <binary>
  mapfile -t sources < <(cd "$1" && node scripts/native-sources.js data-path)
  # -I of this tree after the built one: an older revision has no native/test/ring_driver.h.
  (cd "$1" && g++ -std=c++17 -O2 -flto=auto -Inative -I"$OLDPWD/native" "$OLDPWD/native/bench/ring_microbench.cc" "${sources[@]}" \
    -o "$OLDPWD/$2" -lpthread)
}
if [ "$capture" = yes ]; then
  build . "$out/b"
  a=("$out/b" "$layout" 300000 "$frame")
  b=("$out/b" "$layout" 300000 "$frame" capture)
  names=("capture off" "capture on")
else
  tree=$(mktemp -d)
  trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
  git worktree add --detach "$tree" "$rev" >/dev/null 2>&1
  build "$tree" "$out/a"
  build . "$out/b"
  a=("$out/a" "$layout" 300000 "$frame")
  b=("$out/b" "$layout" 300000 "$frame")
  names=("$rev" "working tree")
fi
for _ in $(seq "$runs"); do
  echo "a $(taskset -c 0 "${a[@]}")"
  echo "b $(taskset -c 0 "${b[@]}")"
done | sort -k1,1 -k2n | awk -v na="${names[0]}" -v nb="${names[1]}" '
  { v[$1] = v[$1] " " $2; n[$1]++; all[$1, n[$1]] = $2 }
  END {
    for (k in n) {
      name = k == "a" ? na : nb
      printf "%-14s median %6.2f  best %6.2f ns/frame  (%s)\n", name, all[k, int((n[k] + 1) / 2)], all[k, 1], v[k]
    }
  }'
