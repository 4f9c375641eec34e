/**
 * A smoke run of `vhost-user bench --vhost-net` as a user runs it: one guest, 20,000 frames each way,
 * one round of the kernel's vhost-net and our back-end (~20 s). It checks that both back-ends moved
 * frames both ways and that the results and the ratios are written; never a rate.
 * Needs QEMU, a Debian kernel, busybox and cpio: skipped without them, except in CI (CI=true).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseVhostNetOptions } from '../../lib/bench/vhostnet/run';
import { qemuAvailable } from './qemu/tools';

const ROOT = path.resolve(__dirname, '../..');

describe('vhost-user bench --vhost-net options', () => {
  it('takes the defaults, --quick, and refuses a bad value in one line', () => {
    expect(parseVhostNetOptions(['--vhost-net'])).toMatchObject({ frames: 200_000, rounds: 3, size: 60 });
    expect(parseVhostNetOptions(['--vhost-net', '--quick'])).toMatchObject({ frames: 20_000, rounds: 1 });
    expect(parseVhostNetOptions(['--vhost-net', '--help'])).toBeNull();
    expect(() => parseVhostNetOptions(['--vhost-net', '--size', '59'])).toThrow('--size must be an integer from 60 to 1514');
  });
});

describe.skipIf(!qemuAvailable())('vhost-user bench --vhost-net', () => {
  it('--quick: the kernel and our back-end each move frames both ways; ratios written', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-bench-vhost-net-'));
    try {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'bench', '--vhost-net', '--quick', '--out', out], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 150_000,
      });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const report = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8')) as {
        errors: string[];
        runs: { back: string; txMpps: number; rxMpps: number; rxDelivered: number }[];
        ratios: { tx: number | null; rx: number | null };
      };
      expect(report.errors).toEqual([]);
      expect(report.runs.map((x) => x.back)).toEqual(['kernel', 'user']);
      for (const run of report.runs) {
        expect(run.txMpps, run.back).toBeGreaterThan(0);
        expect(run.rxMpps, run.back).toBeGreaterThan(0);
        expect(run.rxDelivered, run.back).toBeGreaterThan(0.5); // most of what pktgen offered reached the driver
      }
      expect(report.ratios.tx).not.toBeNull();
      expect(report.ratios.rx).not.toBeNull();
      expect(r.stdout).toMatch(/ours \/ kernel vhost-net: guest TX \d+\.\d\d, guest RX \d+\.\d\d/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);
});
