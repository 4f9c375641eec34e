#!/usr/bin/env bash
# Runs the test suite against an AddressSanitizer + UBSan build of the addon (build-asan/), loaded
# through VHOST_USER_ADDON with GCC's libasan preloaded into node (V8 itself is not instrumented,
# so leak detection stays off: V8's own allocations would flood it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# binding.gyp takes its source list from scripts/native-sources.js, so that script comes along.
mkdir "$work/scripts"
cp -r binding.gyp native "$work/"
cp scripts/native-sources.js "$work/scripts/"
ln -s "$root/node_modules" "$work/node_modules"
# npm passes its nodedir (Node's headers, offline) to install scripts; a direct node-gyp call must too.
nodedir=$(npm config get nodedir)
[ "$nodedir" = "undefined" ] || [ -z "$nodedir" ] && nodedir_arg=() || nodedir_arg=(--nodedir="$nodedir")
(cd "$work" && "$root/node_modules/.bin/node-gyp" rebuild --asan=1 -j 2 "${nodedir_arg[@]}" > build.log 2>&1) || { cat "$work/build.log"; exit 1; }
mkdir -p build-asan
cp "$work/build/Release/vhost_user.node" build-asan/
export VHOST_USER_ADDON="$root/build-asan/vhost_user.node"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# Not here: the fuzzer smoke run (it builds its own sanitized binary) and the benchmark runs (they
# would measure the sanitizer). The QEMU suites whose native paths the sanitized run already covers
# without a guest (the tap and user ports, the VXLAN uplink: tap, user-port, switch-vxlan; restarts
# change no native state) run once, in the plain run: each costs a TCG guest's time, and npm test
# must stay under 20 minutes. So does the migration suite: the dirty log's native paths are
# sanitized here by dirty-log.test.ts (logging toggled under traffic) and by the fuzzer; so does QEMU
# on the switch, whose forwarder runs sanitized here under DPDK's virtio-user (dpdk-switch, 1 M frames)
# and our own front-ends (switch*.test.ts). The vhost-net guest suite runs its addon inside the guest,
# where this build is not loaded. QEMU on the loopback stays sanitized, with DPDK's other suites.
# Nor the suites that never load the addon: the native unit checks (native-rings, which builds its
# own sanitized binaries) and the import rules.
exec npx vitest run --pool=forks --exclude 'test/fuzz/ring-fuzzer.test.ts' --exclude 'test/bench-smoke.test.ts' \
  --exclude test/native-rings.test.ts --exclude test/import-rules.test.ts \
  --exclude 'test/e2e/bench-*.test.ts' --exclude 'test/e2e/qemu-tap*.test.ts' --exclude 'test/e2e/qemu-user.test.ts' \
  --exclude 'test/e2e/qemu-restart.test.ts' --exclude 'test/e2e/qemu-vxlan.test.ts' \
  --exclude 'test/e2e/qemu-migrate*.test.ts' --exclude 'test/e2e/qemu-switch.test.ts' \
  --exclude 'test/e2e/qemu-vhost-net.test.ts' "$@"
