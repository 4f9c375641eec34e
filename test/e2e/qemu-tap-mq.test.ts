/**
 * A two-CPU Linux VM on a two-queue-pair NIC served by our back-end on a multiqueue tap: both pairs
 * carry traffic, on the split ring and on the packed ring (`packed=on`, asserted negotiated). The host
 * side is a network namespace holding the tap, as in qemu-tap.test.ts.
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
const NS = `vhu-e2e-mq-${process.pid}`;
const TAP = `vhuq${process.pid % 100000}`;
const MIB = 50;
const PORT = 5001;

describe.skipIf(!available)('a two-CPU QEMU guest on two queue pairs of a multiqueue tap', () => {
  const host = new HostSide(NS);
  let file = '';
  let sentMd5 = '';

  beforeAll(async () => {
    await host.setUp();
    file = path.join(host.dir, 'to-guest.bin');
    sentMd5 = await writeRandomFile(file, MIB << 20);
  }, 120_000);

  afterAll(() => host.tearDown());

  for (const packed of [false, true]) {
    it(`pings and moves ${MIB} MiB each way, both pairs carrying traffic (${packed ? 'packed' : 'split'} ring)`, async () => {
      const logs: string[] = [];
      const backend = new VhostUserBackend({
        socketPath: path.join(host.dir, `mq-${packed}.sock`),
        device: { tap: TAP, queuePairs: 2 },
        log: (level, m) => logs.push(`${level} ${m}`),
      });
      backend.start();
      await moveLinkToNetns(TAP, NS);
      const { sink, source, kill: killPeers } = await startTcpPeers({ netns: NS, port: PORT, bytes: MIB << 20, file });
      const guest = await startGuest({
        socketPath: backend.socketPath,
        smp: 2,
        queuePairs: 2,
        packed,
        scenarios: ['ping', 'tcp-tx', 'tcp-rx'],
        // The guest's virtio-net enables min(pairs, CPUs) pairs and maps CPU i to TX queue i (XPS): the
        // upload's nc runs on CPU 0, the download's on CPU 1, so each connection starts on its own pair.
        params: { count: 20, interval: 0.2, mb: MIB, port: PORT, tx_cpu: 0, rx_cpu: 1 },
        memoryMiB: 384,
        guestTimeoutSec: 200,
      });
      try {
        await expectPingAndTcp(guest, sink, source, { pings: 20, bytes: MIB << 20, sentMd5, pingMs: 60_000, tcpMs: 120_000 });

        const [rx0, tx0, rx1, tx1] = backend.device.stats();
        const counts = `pair 0 rx ${rx0.packets} tx ${tx0.packets}, pair 1 rx ${rx1.packets} tx ${tx1.packets}`;
        // What is certain: each connection's first frames leave on the TX queue of the CPU its nc runs
        // on (the SYN, from the process), and the tap sends a flow's frames to the queue that flow last
        // came from (the SYN-ACK). Later frames may move (ACKs go out from the softirq of whichever CPU
        // took the interrupt; in one run pair 0 carried ~95%), so only "non-zero on both" is asserted.
        expect(tx0.packets, counts).toBeGreaterThan(0n);
        expect(tx1.packets, counts).toBeGreaterThan(0n);
        expect(rx0.packets, counts).toBeGreaterThan(0n);
        expect(rx1.packets, counts).toBeGreaterThan(0n);
        for (const q of backend.device.stats()) expect(q.errors + q.drops, counts).toBe(0n);
        expectRingNegotiated(logs, packed);
        expect(logs.filter((l) => l.startsWith('warn') && !l.includes('front-end disconnected'))).toEqual([]);
      } finally {
        await guest.kill();
        killPeers();
        backend.close();
      }
    }, 360_000);
  }
});
