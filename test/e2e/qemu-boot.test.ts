/**
 * A real Linux guest drives the back-end: QEMU (TCG) boots the host's kernel with a busybox initramfs,
 * the guest's virtio-net driver negotiates with our back-end over vhost-user, brings eth0 up and sends a
 * few frames (ARP for a ping, IPv6 router solicitation), which the loopback port hands back to it.
 * Once with the back-end listening, once with QEMU listening and the back-end connecting as a client.
 *
 * Skipped when QEMU, busybox, cpio or a kernel is missing, except in CI (CI=true), where that fails.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VhostUserBackend } from '../../lib/backend';
import { startGuest, type Guest } from '../../lib/guest/guest';
import { buildInitramfs } from '../../lib/guest/initramfs';
import { GUEST_MAC, guestFeatureNames } from '../../lib/guest/scenarios';
import { qemuAvailable } from './qemu/tools';
import { within } from '../helpers/until';

const available = qemuAvailable();

describe.skipIf(!available)('a QEMU guest on the loopback port', () => {
  let dir = '';
  let backend: VhostUserBackend | null = null;
  let guest: Guest | null = null;

  beforeAll(async () => {
    await buildInitramfs(); // the first build extracts vmlinux and packs the initramfs: a few seconds
  }, 120_000);

  afterEach(async () => {
    await guest?.kill();
    guest = null;
    backend?.close();
    backend = null;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = '';
  });

  async function bootAndProbe(qemuListens: boolean): Promise<void> {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-e2e-'));
    const socketPath = path.join(dir, 'net.sock');
    const logs: string[] = [];
    const log = (level: string, msg: string): void => void logs.push(`${level} ${msg}`);
    const makeBackend = (): VhostUserBackend =>
      new VhostUserBackend({
        socketPath,
        device: { port: 'loopback' },
        log,
        ...(qemuListens ? { client: true, reconnectDelayMs: 100 } : {}),
      });

    if (!qemuListens) {
      backend = makeBackend();
      backend.start();
    }
    // QEMU waits for the vhost-user connection before it starts the guest, in both modes.
    guest = await startGuest({ socketPath, server: qemuListens, scenarios: ['link', 'probe'], guestTimeoutSec: 60 });
    if (qemuListens) {
      backend = makeBackend();
      backend.start();
    }
    const b = backend as VhostUserBackend;
    const disconnected = once(b, 'disconnect');

    await guest.waitFor(/^VHU-UP /m, 25_000);
    const bootMs = Date.now() - guest.startedAt;
    const link = await guest.result('link', 10_000);
    await guest.result('probe', 10_000);
    await guest.waitFor(/^VHU-DONE /m, 10_000);
    const exit = await within(guest.exited, 10_000, 'QEMU exit after poweroff');
    await within(disconnected, 5_000, 'back-end disconnect');
    console.info(`QEMU guest (${qemuListens ? 'QEMU listens' : 'back-end listens'}): eth0 up ${bootMs} ms after spawn`);

    expect(exit).toEqual({ code: 0, signal: null });
    expect(link.mac).toBe(GUEST_MAC);
    expect(link.carrier).toBe('1');
    expect(link.operstate).toBe('up');
    expect(link.flags.split(',')).toEqual(expect.arrayContaining(['UP', 'LOWER_UP']));
    // The guest's view of the features: ours (VERSION_1, MRG_RXBUF, ...) plus those QEMU serves itself.
    expect(guestFeatureNames(link.features)).toEqual(expect.arrayContaining(['VERSION_1', 'MRG_RXBUF', 'MAC']));

    const acked = logs.find((l) => l.includes('features acked:'));
    expect(acked, logs.join('\n')).toMatch(/^info features acked: 0x[0-9a-f]+ \(.*\bVERSION_1\b.*\)$/);
    expect(logs.filter((l) => l.startsWith('warn') || l.startsWith('error'))).toEqual([]);

    const [rx, tx] = b.device.stats();
    expect(tx.packets).toBeGreaterThan(0n);
    expect(rx.packets).toBe(tx.packets); // loopback: every frame the guest sent came back
    expect(rx.bytes).toBe(tx.bytes);
    expect(rx.drops + rx.errors + tx.drops + tx.errors).toBe(0n);
  }

  it('boots, negotiates VERSION_1 and loops the guest frames back (back-end listens)', async () => {
    await bootAndProbe(false);
  }, 60_000);

  it('the same with QEMU listening and the back-end connecting as a client', async () => {
    await bootAndProbe(true);
  }, 60_000);
});
