/**
 * A smoke run of the benchmark harness (bench/): a few seconds, one size, both back-ends, results in
 * a temporary folder. It checks that the harness works and reports both back-ends, never a rate.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

describe('benchmark harness', () => {
  it('vhost-user bench --quick runs an A/B round and writes JSON and an SVG chart, with latest.* pointing at them', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-bench-'));
    try {
      // What a user runs: `vhost-user bench` (dist/ is built by npm test before vitest starts).
      const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'bench', '--quick', '--seconds', '2', '--out', out], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 180_000,
      });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const json = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'));
      const text = JSON.stringify(json);
      expect(text).toMatch(/ours/);
      expect(json.errors).toEqual([]);
      // Every mode of the quick run measured our back-end (rxonly through its source port), and the
      // idle runs measured both worker modes.
      const ours = json.runs.filter((r: { backend: string }) => r.backend === 'ours');
      expect(ours.map((r: { mode: string }) => r.mode).sort()).toEqual(['io', 'rxonly']);
      for (const r of ours) expect(r.mpps, JSON.stringify(r)).toBeGreaterThan(0);
      expect(json.idle.filter((i: { backend: string }) => i.backend === 'ours').map((i: { worker: string }) => i.worker)).toEqual([
        'adaptive',
        'event-driven',
      ]);
      if (fs.existsSync('/usr/bin/dpdk-testpmd')) expect(text).toMatch(/dpdk/);
      expect(fs.readFileSync(path.join(out, 'latest.svg'), 'utf8')).toMatch(/^<svg|<\?xml/);
      // latest.* point at the run's own files (relative symlinks), so each run is stored once.
      const stamp = fs.readlinkSync(path.join(out, 'latest.json')).replace(/\.json$/, '');
      expect(stamp).toMatch(/^\d{4}-\d\d-\d\dT[\d-]+Z$/);
      expect(fs.readlinkSync(path.join(out, 'latest.svg'))).toBe(`${stamp}.svg`);
      expect(fs.readdirSync(out).sort()).toEqual([`${stamp}.json`, `${stamp}.svg`, 'latest.json', 'latest.svg']);
      // --quick keeps to split rings and one pair.
      expect(json.setup.layouts).toEqual(['split']);
      expect(json.setup.pairs).toEqual([1]);
      expect(
        ours.every((r: { layout: string; pairs: number; negotiatedLayout: string }) => r.negotiatedLayout === 'split' && r.pairs === 1),
      ).toBe(true);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 240_000);

  it('--layouts split,packed --pairs 2: per-pair counts and fairness, each run on the layout it asked for', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-bench-'));
    try {
      const args = ['bench', '--modes', 'io', '--sizes', '64', '--queue-sizes', '256', '--layouts', 'split,packed', '--pairs', '2'];
      args.push(
        '--seconds',
        '1',
        '--warmup',
        '0.5',
        '--rounds',
        '1',
        '--no-latency',
        '--no-idle',
        '--quiet-wait',
        '0',
        '--retries',
        '0',
        '--out',
        out,
      );
      const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
      const json = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'));
      type Run = { cell: string; backend: string; layout: string; negotiatedLayout?: string; mpps?: number; error?: string };
      const runs = json.runs as (Run & { perPair?: { packets: number }[]; fairness?: { jain: number } })[];
      if (!fs.existsSync('/usr/bin/dpdk-testpmd')) {
        // Our own front-end drives split rings and one pair: every cell is skipped, saying why.
        expect(runs.every((x) => /VirtioNetDriver/.test((x as { skipped?: string }).skipped ?? ''))).toBe(true);
        return;
      }
      const backends = json.setup.backends as string[];
      expect(runs.map((x) => x.cell)).toEqual(['split', 'packed'].flatMap((l) => backends.map(() => `q256-64B-io-${l}-2p`)));
      // Both back-ends offer packed rings: every run negotiated the layout it asked for (DPDK's log may not say).
      for (const run of runs) {
        expect(run.error, JSON.stringify(run)).toBeUndefined();
        expect(run.negotiatedLayout ?? (run.backend === 'dpdk' ? run.layout : null)).toBe(run.layout);
        expect(run.perPair!.map((p) => p.packets > 0)).toEqual([true, true]);
        expect(run.fairness!.jain).toBeGreaterThan(0.5);
      }
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(json.layoutRatios).toHaveLength(1);
      expect(json.layoutRatios[0].pairs).toBe(2);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 240_000);

  it('--backends ours,js: the JS echo runs alternating with the loopback, with its own table and the js / ours ratio', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-bench-'));
    try {
      const args = [
        'bench',
        '--backends',
        'ours,js',
        '--modes',
        'io,txonly',
        '--sizes',
        '64',
        '--queue-sizes',
        '256',
        '--layouts',
        'split',
      ];
      args.push('--seconds', '1', '--warmup', '0.5', '--rounds', '1', '--no-latency', '--no-idle', '--quiet-wait', '0', '--retries', '0');
      const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), ...args, '--out', out], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 120_000,
      });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const json = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'));
      type Run = { cell: string; backend: string; negotiatedLayout?: string; mpps?: number; skipped?: string; ours?: unknown };
      const runs = json.runs as Run[];
      expect(runs.map((x) => `${x.cell} ${x.backend}`)).toEqual([
        'q256-64B-io-split-1p ours',
        'q256-64B-io-split-1p js',
        'q256-64B-txonly-split-1p ours',
        'q256-64B-txonly-split-1p js',
      ]);
      const [, js, , jsTxonly] = runs;
      expect(js.mpps, JSON.stringify(js)).toBeGreaterThan(0);
      expect(js.negotiatedLayout).toBe('split');
      expect(js.ours, 'the js back-end answers SIGUSR1 with its counters').toBeDefined();
      expect(jsTxonly.skipped).toMatch(/io and flowgen only/);
      expect(json.cells[0].js.perOurs).toBeGreaterThan(0);
      expect(r.stdout).toMatch(/JS port: the JS echo \(js\) against the native loopback/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);

  it('refuses an unknown layout with one line', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'bench', '--layouts', 'foo'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("bench: unknown ring layout 'foo' (available: split, packed)\n");
    expect(r.stdout).toBe('');
  });

  it('--help documents the layout and pair options', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'bench', '--help'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--layouts LIST +ring layouts, split,packed/);
    expect(r.stdout).toMatch(/--pairs LIST +queue pairs/);
  });
});
