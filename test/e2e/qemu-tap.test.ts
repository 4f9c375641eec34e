/**
 * A Linux VM whose only NIC is served by our back-end on a tap port, talking to the host: the
 * host side is a network namespace holding the tap (nothing touches the machine's own network).
 * Ping and 50 MiB TCP transfers each way, with the guest's offloads negotiated and with them off, on
 * the split ring and on the packed ring (`packed=on`, asserted negotiated: no split fallback); then
 * the back-end as the client of a QEMU server socket, restarted while the guest pings.
 * Needs QEMU, a Debian kernel, busybox and root: skipped without them, except in CI (CI=true).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { VhostUserBackend } from '../../lib/backend';
import { expectRingNegotiated } from './features';
import { startGuest } from '../../lib/guest/guest';
import { HostSide, trafficTestsAvailable } from './qemu/host_side';
import { moveLinkToNetns } from './qemu/netns';
import { expectPingAndTcp } from './qemu/traffic_checks';
import { startTcpPeers, writeRandomFile } from './qemu/tcp_peers';

const available = trafficTestsAvailable();
const NS = `vhu-e2e-tap-${process.pid}`;
const TAP = `vhue${process.pid % 100000}`;
const MIB = 50;
const PORT = 5001;
const NO_OFFLOADS =
  'csum=off,guest_csum=off,host_tso4=off,host_tso6=off,guest_tso4=off,guest_tso6=off,host_ecn=off,guest_ecn=off,host_ufo=off,guest_ufo=off';
const OFFLOAD_NAMES = ['CSUM', 'GUEST_CSUM', 'HOST_TSO4', 'GUEST_TSO4'];

describe.skipIf(!available)('a QEMU guest on the tap port', () => {
  const host = new HostSide(NS);
  let file = '';
  let sentMd5 = '';

  beforeAll(async () => {
    await host.setUp();
    file = path.join(host.dir, 'to-guest.bin');
    sentMd5 = await writeRandomFile(file, MIB << 20);
  }, 120_000);

  afterAll(() => host.tearDown());

  /** A back-end on a fresh tap, moved into the namespace as 10.0.2.1/24. */
  async function tapBackend(socketPath: string, logs: string[], client = false) {
    const backend = new VhostUserBackend({
      socketPath,
      client,
      reconnectDelayMs: 100,
      device: { tap: TAP },
      log: (level, m) => logs.push(`${level} ${m}`),
    });
    backend.start();
    await moveLinkToNetns(TAP, NS);
    return backend;
  }

  for (const { offloads, packed } of [
    { offloads: true, packed: false },
    { offloads: false, packed: false },
    { offloads: true, packed: true },
    { offloads: false, packed: true },
  ]) {
    const ring = packed ? 'packed' : 'split';
    it(`pings and moves ${MIB} MiB each way with offloads ${offloads ? 'negotiated' : 'off'} (${ring} ring)`, async () => {
      const logs: string[] = [];
      const backend = await tapBackend(path.join(host.dir, `tap-${offloads}-${ring}.sock`), logs);
      const { sink, source, kill: killPeers } = await startTcpPeers({ netns: NS, port: PORT, bytes: MIB << 20, file });
      const guest = await startGuest({
        socketPath: backend.socketPath,
        deviceOptions: offloads ? [] : NO_OFFLOADS,
        packed,
        scenarios: ['ping', 'tcp-tx', 'tcp-rx'],
        params: { count: 20, interval: 0.2, mb: MIB, port: PORT },
        memoryMiB: 384,
        guestTimeoutSec: 150,
      });
      try {
        await expectPingAndTcp(guest, sink, source, { pings: 20, bytes: MIB << 20, sentMd5, pingMs: 60_000, tcpMs: 90_000 });

        const acked = logs.find((l) => l.includes('features acked:')) ?? '';
        for (const name of OFFLOAD_NAMES) expect(acked.includes(` ${name}`), `${name} in: ${acked}`).toBe(offloads);
        expectRingNegotiated(logs, packed);
        const [rxq, txq] = backend.device.stats();
        expect(txq.errors + rxq.errors + rxq.drops).toBe(0n);
        expect(logs.filter((l) => l.startsWith('warn') && !l.includes('front-end disconnected'))).toEqual([]);
      } finally {
        await guest.kill();
        killPeers();
        backend.close();
      }
    }, 240_000);
  }

  it('as the client of a QEMU server socket, survives a back-end restart: the guest ping resumes', async () => {
    const socketPath = path.join(host.dir, 'server.sock');
    const logs: string[] = [];
    const guest = await startGuest({
      socketPath,
      server: true,
      scenarios: ['ping-loop'],
      params: { interval: 0.2 },
      guestTimeoutSec: 120,
    });
    let backend: VhostUserBackend | null = null;
    try {
      // QEMU waits for a back-end before it runs the guest; ours retries until QEMU's socket exists.
      backend = await tapBackend(socketPath, logs, true);
      const first = await guest.waitFor(/seq=(\d+) /, 60_000);
      const before = await guest.waitFor(/seq=(\d+) /, 10_000, (first.index ?? 0) + 1);

      backend.close(); // the tap goes with it; QEMU sees the socket close
      await new Promise((r) => setTimeout(r, 1000));
      const after = guest.output().length;
      backend = await tapBackend(socketPath, logs, true);
      const resumed = await guest.waitFor(/seq=(\d+) /, 60_000, after);
      expect(Number(resumed[1])).toBeGreaterThan(Number(before[1]));
      expect(logs.filter((l) => l.includes('front-end connected')).length).toBe(2);
    } finally {
      await guest.kill();
      backend?.close();
    }
  }, 180_000);
});
