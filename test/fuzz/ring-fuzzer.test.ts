/**
 * A short libFuzzer run of the native data path (native/fuzz/ring_fuzzer.cc) under ASan/UBSan, as
 * part of every test run, and a replay of every input that once crashed it (native/fuzz/regressions/);
 * `npm run fuzz` runs it for longer. Needs clang (Debian: clang, libclang-rt-14-dev).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hasProgram, missing, skipUnless } from '../helpers/peers';

const SECONDS = Number(process.env.RING_FUZZ_SECONDS ?? 20);
const skip = skipUnless(missing([[hasProgram('clang++'), 'clang++ (Debian packages clang, libclang-rt-14-dev)']]), 'ring fuzzer');
const root = path.resolve(__dirname, '../..');

function runFuzzScript(arg: string): { status: number | null; out: string } {
  const r = spawnSync('bash', [path.join(root, 'native/fuzz/run.sh'), arg], { cwd: root, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

describe.skipIf(skip)('native ring fuzzer', () => {
  it('replays every input in native/fuzz/regressions/ without a crash', { timeout: 120_000 }, () => {
    const inputs = fs.readdirSync(path.join(root, 'native/fuzz/regressions'));
    expect(inputs.length).toBeGreaterThan(0);
    const { status, out } = runFuzzScript('replay');
    expect(status, out).toBe(0);
    const executed = out.split('\n').filter((line) => line.startsWith('Executed native/fuzz/regressions/'));
    expect(executed.length, out).toBe(inputs.length);
  });

  const title = `runs ${SECONDS} s of libFuzzer over split and packed chain walking, RX reservation and the loopback copy without a crash`;
  it(title, { timeout: (SECONDS + 120) * 1000 }, () => {
    const { status, out } = runFuzzScript(String(SECONDS));
    expect(status, out).toBe(0);
    const executed = Number(/stat::number_of_executed_units: (\d+)/.exec(out)?.[1] ?? 0);
    expect(executed).toBeGreaterThan(10_000);
  });
});
