/**
 * The migration harness itself (lib/guest/migrating_guest.ts, migration.ts, qmp.ts), checked with a NIC
 * QEMU can always migrate: its own user network (`-netdev user`) instead of our back-end. The guest
 * pings the user network's gateway once a second while it moves Q1 -> Q2 -> Q3 (each destination made
 * from the same options plus `-incoming`, each source quit after its migration); the joined console
 * shows the pings going on from QEMU to QEMU, their sequence unbroken but for the switchovers, and each
 * destination's RAM equals its source's (the comparison qemu-migrate.test.ts relies on). So
 * when qemu-migrate.test.ts fails, the harness is not the suspect. Needs QEMU, a Debian kernel and
 * busybox: skipped without them, except in CI (CI=true).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildInitramfs } from '../../lib/guest/initramfs';
import { MigratingGuest } from '../../lib/guest/migrating_guest';
import { killAll } from '../../lib/guest/processes';
import { qemuAvailable } from './qemu/tools';

const available = qemuAvailable();
/** libslirp's gateway, which answers pings itself. */
const GATEWAY = '10.0.2.2';
const SEQ = /seq=(\d+) /g;

/** The ping sequence numbers in `text`, in order. */
const seqs = (text: string): number[] => [...text.matchAll(SEQ)].map((m) => Number(m[1]));

describe.skipIf(!available)('the migration harness, on QEMU’s own user network', () => {
  let dir = '';

  beforeAll(async () => {
    await buildInitramfs();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-e2e-migref-'));
  }, 120_000);

  afterAll(async () => {
    await killAll();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('migrates Q1 -> Q2 -> Q3; one console, the guest pinging throughout', async () => {
    const at = (n: number) => ({ qmpSocket: path.join(dir, `q${n}.qmp`), incoming: path.join(dir, `q${n}.migrate`) });
    const guest = await MigratingGuest.start(
      { netdev: 'user,id=n0', scenarios: ['ping-loop'], params: { host: GATEWAY }, guestTimeoutSec: 300 },
      { qmpSocket: at(1).qmpSocket },
    );
    try {
      await guest.waitFor(/seq=3 /, 60_000);
      for (const n of [2, 3]) {
        const result = await guest.migrate(at(n), { compareMemory: true });
        expect(guest.active.name).toBe(`Q${n}`);
        expect(result.differingPages, 'RAM pages the destination got wrong').toEqual([]);
        expect(await guest.active.qmp.execute('query-status')).toMatchObject({ status: 'running' });
        const source = guest.qemus[n - 2];
        expect(await source.qmp.execute('query-status')).toMatchObject({ status: 'postmigrate' });
        await guest.quitInactive();
        expect(seqs(source.guest.output()).length, `${source.name} printed replies`).toBeGreaterThan(0);
        // All of the source's output is in (it has exited): what comes now is the destination's.
        const handover = guest.output().length;
        const next = await guest.waitFor(/seq=\d+ [^\n]*\n[^\n]*seq=\d+ /, 30_000, handover);
        expect(guest.active.guest.output(), 'printed by the destination').toContain(next[0].split('\n')[1]);
        console.log(`${source.name} -> Q${n}: ${result.totalTimeMs} ms, downtime ${result.downtimeMs} ms`);
      }
      const all = seqs(guest.output());
      expect(all.length).toBeGreaterThan(6);
      // Every reply once, in order: replies lost at a switchover leave a gap, never a step back.
      for (let i = 1; i < all.length; i++) expect(all[i], `ping seq after ${all[i - 1]}`).toBeGreaterThan(all[i - 1]);
      expect(guest.qemus.map((q) => q.name)).toEqual(['Q1', 'Q2', 'Q3']);
    } catch (e) {
      console.error(`console:\n${guest.output()}\nQEMU stderr:\n${guest.stderr()}`);
      throw e;
    } finally {
      await guest.kill();
    }
  }, 300_000);
});
