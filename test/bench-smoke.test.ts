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
  it('runs a quick A/B round and writes JSON and an SVG chart', () => {
    const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.bench.json'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(tsc.status, tsc.stdout + tsc.stderr).toBe(0);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-bench-'));
    try {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'build/bench/bench/run.js'), '--quick', '--seconds', '2', '--out', out], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 180_000,
      });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const json = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'));
      const text = JSON.stringify(json);
      expect(text).toMatch(/ours/);
      if (fs.existsSync('/usr/bin/dpdk-testpmd')) expect(text).toMatch(/dpdk/);
      expect(fs.readFileSync(path.join(out, 'latest.svg'), 'utf8')).toMatch(/^<svg|<\?xml/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 240_000);
});
