/**
 * The native unit checks (native/test/*_test.cc, built and run by native/test/run.sh): cases of the
 * packed ring that no front-end reaches on demand — a call after more than a lap between publishes,
 * a re-attach with used entries never written, held ids across a rewind, IN_ORDER batching of
 * transmit entries only, the ring base encoding; and the run-time libslirp binding against the
 * installed library (a DHCP offer and an ARP reply with the addresses configured); the user port's
 * frame backlog against a model across wraps and refusals; its --dns rewrite against checksums computed
 * from scratch; the capture rings and per-frame counters (records across the wrap, a full ring dropping,
 * the writer's bell, size bins and MAC classes); the switch's MAC table against a model; the VXLAN
 * header; the dirty-page log against a bitmap model and, page by page, against what the loopback and
 * the switch's forwarder change in guest memory (with a negative control). Needs a C++ compiler (g++,
 * or clang++ with its sanitizer runtime); the libslirp check needs libslirp0, skips with the reason without it, and fails
 * then under CI=true.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { hasProgram, missing, skipUnless } from './helpers/peers';

const skip = skipUnless(
  missing([[hasProgram('g++') || hasProgram('clang++'), 'a C++ compiler (Debian package g++ or clang)']]),
  'native unit checks',
);
const root = path.resolve(__dirname, '..');

describe.skipIf(skip)('native unit checks', () => {
  it(
    'pass for the packed ring, the libslirp binding, the frame backlog, the DNS rewrite, the software offloads, the capture rings, the MAC table and the dirty log',
    { timeout: 180_000 },
    () => {
      // Not under the ASan run's preloaded gcc runtime: run.sh builds its own sanitized programs.
      const env = { ...process.env, LD_PRELOAD: '' };
      const r = spawnSync('bash', [path.join(root, 'native/test/run.sh')], { cwd: root, encoding: 'utf8', env });
      const out = `${r.stdout}\n${r.stderr}`;
      expect(r.status, out).toBe(0);
      expect(out).toMatch(/packed ring: \d+ checks passed/);
      expect(out).toMatch(/slirp api: (\d+ checks passed|SKIPPED)/);
      expect(out).toMatch(/frame backlog: \d+ checks passed/);
      expect(out).toMatch(/dns redirect: \d+ checks passed/);
      expect(out).toMatch(/software offload: \d+ checks passed/);
      expect(out).toMatch(/capture ring and counters: \d+ checks passed/);
      expect(out).toMatch(/mac table: \d+ checks passed/);
      expect(out).toMatch(/dirty log: \d+ checks passed/);
      expect(out).toMatch(/vxlan header: \d+ checks passed/);
    },
  );
});
