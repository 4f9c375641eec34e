/**
 * A smoke run of `vhost-user bench --switch` as a user runs it: `--quick` (64 B, one round, 0.5 s
 * warm-up + 1 s per run, ~30 s): our switch and testpmd io each forward the pair's frames both ways,
 * and the fairness runs put the flooder beside the pair with and without its flood. It checks that
 * every run worked and that the results file, the ratio and the tables are written with sane numbers;
 * never a rate or a ratio's value.
 * Needs DPDK testpmd with the virtio-user and vhost PMDs: skipped without them, except in CI (CI=true).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dpdkPluginDirs } from '../../lib/bench/testpmd';
import type { SwitchReport } from '../../lib/bench/switch/types';
import { skipUnless } from '../helpers/peers';
import { dpdkAvailable } from './dpdk';

const ROOT = path.resolve(__dirname, '../..');

const vhostPmd = () => dpdkPluginDirs().some((dir) => fs.readdirSync(dir).some((f) => /^librte_net_vhost\.so(\.|$)/.test(f)));

const available =
  dpdkAvailable() &&
  !skipUnless(
    vhostPmd() ? null : 'the vhost PMD librte_net_vhost is missing (Debian package librte-net-vhost23)',
    'the switch benchmark smoke run',
  );

describe.skipIf(!available)('vhost-user bench --switch', () => {
  it('--quick: switch and testpmd forward both ways, fairness with and without the flood, results written', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-bench-switch-'));
    try {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'bench', '--switch', '--quick', '--out', out], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 150_000,
      });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const report = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8')) as SwitchReport;
      expect(report.errors).toEqual([]);
      expect(report.pairRuns.map((x) => `${x.backend} ${x.size}`)).toEqual(['switch 64', 'testpmd 64']);
      for (const run of report.pairRuns) {
        // Two closed loops (io sends out of P1 what P0 received, and the other way round), each with its
        // own population of frames, so nothing makes their counts equal; served in turn by the same
        // threads, they keep within a small fraction of each other.
        expect(run.forward.packets, run.backend).toBeGreaterThan(10_000);
        const skew = Math.abs(run.forward.packets - run.reverse.packets);
        expect(skew, run.backend).toBeLessThanOrEqual(Math.max(2 * 256, 0.01 * run.forward.packets));
        expect(run.forward.bytes, run.backend).toBe(run.forward.packets * 64);
        expect(run.mpps, run.backend).toBeCloseTo(run.forward.mpps + run.reverse.mpps, 6);
      }
      const ours = report.pairRuns.find((x) => x.backend === 'switch')!;
      // The switch's own counters: both ports took and delivered frames, nothing dropped in a closed loop.
      expect(ours.ports?.map((p) => [p.port, p.fromGuest > 0, p.toGuest > 0, p.drops])).toEqual([
        ['s0.sock', true, true, 0],
        ['s1.sock', true, true, 0],
      ]);
      const [cell] = report.pairCells;
      expect(cell.ratio).toBeGreaterThan(0);
      expect(report.fairRuns.map((x) => `${x.backend} ${x.flooder}`).sort()).toEqual([
        'switch flooding',
        'switch idle',
        'testpmd flooding',
        'testpmd idle',
      ]);
      for (const run of report.fairRuns) {
        expect(run.pairMpps, `${run.backend} ${run.flooder}`).toBeGreaterThan(0);
        if (run.flooder === 'flooding') expect(run.flooderTxMpps, run.backend).toBeGreaterThan(0);
        else expect(run.flooderTxMpps, run.backend).toBe(0);
      }
      // Under the flood, our switch took frames from all four ports (the flooder's two in VLAN 2).
      const flooded = report.fairRuns.find((x) => x.backend === 'switch' && x.flooder === 'flooding')!;
      expect(flooded.ports?.map((p) => p.fromGuest > 0)).toEqual([true, true, true, true]);
      expect(r.stdout).toMatch(/\| 64 \| [\d.]+ \([\d.]+\) \| [\d.]+ \([\d.]+\) \| \*\*[\d.]+\*\* \|/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);
});
