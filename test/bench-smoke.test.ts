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
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 240_000);
});
