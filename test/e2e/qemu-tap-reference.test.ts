/**
 * The harness checked against a known-good back-end: QEMU's own tap netdev in a network namespace
 * instead of our vhost-user back-end. The guest's ping, tcp-tx and tcp-rx scenarios and the host-side
 * helpers (netns, TCP sink and source, md5) must work here; when a test of our tap port fails, this one
 * tells whether the harness or the back-end is at fault.
 *
 * Needs root (ip netns, a tap device). Skipped without QEMU or root, except in CI (CI=true).
 */
import { afterAll, beforeAll, describe, it } from 'vitest';
import * as path from 'node:path';
import { startGuest } from '../../lib/guest/guest';
import { HostSide, trafficTestsAvailable } from './qemu/host_side';
import { addTap } from './qemu/netns';
import { expectPingAndTcp } from './qemu/traffic_checks';
import { startTcpPeers, writeRandomFile } from './qemu/tcp_peers';

const available = trafficTestsAvailable();
const NS = `vhu-e2e-ref-${process.pid}`;
const MIB = 8;
const PORT = 5001; // tcp-tx goes to PORT, tcp-rx comes from PORT + 1

describe.skipIf(!available)("the guest scenarios over QEMU's own tap back-end", () => {
  const host = new HostSide(NS);

  beforeAll(async () => {
    await host.setUp();
    await addTap(NS, 'vhut0'); // 10.0.2.1/24, the guest's vhu.host
  }, 120_000);

  afterAll(() => host.tearDown());

  it('ping, TCP from the guest and TCP to the guest arrive intact', async () => {
    const file = path.join(host.dir, 'to-guest.bin');
    const sentMd5 = await writeRandomFile(file, MIB << 20);
    const { sink, source, kill: killPeers } = await startTcpPeers({ netns: NS, port: PORT, bytes: MIB << 20, file });

    const guest = await startGuest({
      netns: NS,
      netdev: 'tap,id=n0,ifname=vhut0,script=no,downscript=no',
      scenarios: ['ping', 'tcp-tx', 'tcp-rx'],
      params: { count: 5, interval: 0.2, mb: MIB, port: PORT },
      guestTimeoutSec: 60,
    });
    try {
      await expectPingAndTcp(guest, sink, source, { pings: 5, bytes: MIB << 20, sentMd5, pingMs: 30_000, tcpMs: 30_000 });

      await guest.waitFor(/^VHU-DONE /m, 10_000);
    } finally {
      await guest.kill();
      killPeers();
    }
  }, 90_000);
});
