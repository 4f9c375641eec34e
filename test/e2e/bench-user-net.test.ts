/**
 * A smoke run of `vhost-user bench --user-net` as a user runs it: 2 MiB each way, one round, our user
 * port and passt at MTU 65520 and QEMU's -netdev user at its 1500, one guest each (~20-30 s). It checks
 * that every back-end moved and verified both transfers, that the guest used the MTU each back-end
 * offers, and that the results and ratios are written; never a rate.
 * Needs QEMU, a Debian kernel, busybox, libslirp0 and passt: skipped without them, except in CI (CI=true).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { peerGap } from '../../lib/bench/usernet/peers';
import type { UserNetReport } from '../../lib/bench/usernet/types';
import { qemuAvailable, requiredInCi } from './qemu/tools';

const ROOT = path.resolve(__dirname, '../..');

function peersPresent(): boolean {
  for (const peer of ['ours', 'qemu', 'passt'] as const) {
    const why = peerGap(peer);
    if (!why) continue;
    requiredInCi(why, 'install it with apt-get');
    console.warn(`skipping the user-mode network benchmark smoke run: ${why}`);
    return false;
  }
  return true;
}

const available = qemuAvailable() && peersPresent();

describe.skipIf(!available)('vhost-user bench --user-net', () => {
  it('--quick --mtus 65520: ours, qemu and passt each move 2 MiB both ways, verified, at the MTU they offer', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-bench-user-net-'));
    try {
      const r = spawnSync(
        process.execPath,
        [path.join(ROOT, 'dist/cli.js'), 'bench', '--user-net', '--quick', '--mtus', '65520', '--out', out],
        {
          cwd: ROOT,
          encoding: 'utf8',
          timeout: 150_000,
        },
      );
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const report = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8')) as UserNetReport;
      expect(report.errors).toEqual([]);
      expect(report.runs.map((x) => `${x.config.peer}@${x.config.mtu}`)).toEqual(['ours@65520', 'qemu@1500', 'passt@65520']);
      for (const run of report.runs) {
        expect(run.h2g, run.config.peer).toMatchObject({ bytes: 2 << 20, verified: true });
        expect(run.g2h, run.config.peer).toMatchObject({ bytes: 2 << 20, verified: true });
        // ours: VIRTIO_NET_F_MTU through QEMU's host_mtu; passt: DHCP option 26; QEMU: 1500.
        expect(run.guestMtu, run.config.peer).toBe(run.config.mtu);
      }
      expect(report.ratios.map((x) => `${x.direction} ${x.ours.peer}/${x.other.peer}`)).toEqual([
        'h2g ours/qemu',
        'h2g ours/passt',
        'g2h ours/qemu',
        'g2h ours/passt',
      ]);
      for (const x of report.ratios) expect(x.ratio).toBeGreaterThan(0);
      expect(r.stdout).toMatch(/\| ours @ 65520 \/ passt @ 65520 \|/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);
});
