/**
 * A short libFuzzer run of the native data path (native/fuzz/ring_fuzzer.cc) under ASan/UBSan, as
 * part of every test run; `npm run fuzz` runs it for longer. Needs clang (Debian: clang,
 * libclang-rt-14-dev).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { hasProgram, missing, skipUnless } from '../helpers/peers';

const SECONDS = Number(process.env.RING_FUZZ_SECONDS ?? 20);
const skip = skipUnless(missing([[hasProgram('clang++'), 'clang++ (Debian packages clang, libclang-rt-14-dev)']]), 'ring fuzzer');

describe.skipIf(skip)('native ring fuzzer', () => {
  it(`runs ${SECONDS} s of libFuzzer over chain walking, RX reservation and the loopback copy without a crash`, () => {
    const root = path.resolve(__dirname, '../..');
    const r = spawnSync('bash', [path.join(root, 'native/fuzz/run.sh'), String(SECONDS)], { cwd: root, encoding: 'utf8' });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.status, out).toBe(0);
    const executed = Number(/stat::number_of_executed_units: (\d+)/.exec(out)?.[1] ?? 0);
    expect(executed).toBeGreaterThan(10_000);
  }, (SECONDS + 120) * 1000);
});
