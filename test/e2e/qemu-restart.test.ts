/**
 * A back-end restart under a running guest (issue #14, item 5): the guest streams 50 MiB over TCP to a
 * sink in a network namespace through our tap port; at about 20 MiB the back-end (the CLI, a process
 * of its own, run inside the namespace) is SIGKILLed and started again at once on the same socket and
 * the same persistent tap. It must serve QEMU again within 2 s ("front-end connected"), and the stream
 * must complete with the md5 the guest computed. Both socket roles: QEMU as a client that reconnects
 * (`reconnect=1`, our back-end listens) and QEMU as the server (`server=on,wait=off`, ours `--client`).
 *
 * Split rings only. When the back-end is lost, QEMU 7.2 cannot ask it where the rings stand
 * (GET_VRING_BASE fails); for a split ring it takes the used index from guest memory, which is exact
 * because our ports complete in order and publish used->idx once per burst after the buffers (so what
 * was taken but not published is taken again). For a packed ring there is no such index in shared
 * memory and QEMU 7.2 restores nothing (virtio.c: "We don't have a reference like avail idx in shared
 * memory"): the new back-end is told the last position QEMU learnt, at start, and the rings disagree.
 * Tried once: the new back-end negotiates RING_PACKED, QEMU logs "vhost VQ 0 ring restore failed: -22"
 * and the stream stalls. INFLIGHT_SHMFD would not help: QEMU's virtio-net never uses it. (No test
 * case for packed: a skipped one would only say this again.)
 *
 * Needs QEMU, a Debian kernel, busybox and root: skipped without them, except in CI (CI=true).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { startGuest } from '../../lib/guest/guest';
import { HostSide, trafficTestsAvailable } from './qemu/host_side';
import { startCliBackend, type CliBackend } from './qemu/cli_backend';
import { ip } from './qemu/netns';
import { startTcpSink } from './qemu/tcp_peers';
import { HOST_IP, PREFIX_LEN } from '../../lib/guest/scenarios';

const available = trafficTestsAvailable();
const NS = `vhu-e2e-restart-${process.pid}`;
const TAP = `vhur${process.pid % 100000}`;
const MIB = 50;
const KILL_AT = 20 << 20;
const PORT = 5001;
const CONNECTED = /front-end connected/;
/** From the SIGKILL to the new back-end serving QEMU (acceptance: restart within 2 s). */
const RESTART_MS = 2000;

describe.skipIf(!available)('a back-end SIGKILLed and restarted under a guest streaming to the host', () => {
  const host = new HostSide(NS);

  beforeAll(async () => {
    await host.setUp();
    // Persistent, in the namespace with the host's address: it outlives the back-end that serves it.
    await ip('-n', NS, 'tuntap', 'add', 'dev', TAP, 'mode', 'tap', 'multi_queue', 'vnet_hdr');
    await ip('-n', NS, 'addr', 'add', `${HOST_IP}/${PREFIX_LEN}`, 'dev', TAP);
    await ip('-n', NS, 'link', 'set', 'dev', TAP, 'up');
  }, 120_000);

  afterAll(() => host.tearDown());

  for (const role of ['back-end listens, QEMU reconnect=1', 'QEMU listens, back-end --client'] as const) {
    const qemuServes = role.startsWith('QEMU listens');
    it(`${role}: the ${MIB} MiB stream completes with its md5 (split ring)`, async () => {
      const socketPath = path.join(host.dir, `restart-${qemuServes ? 'client' : 'server'}.sock`);
      const args = ['--socket', socketPath, '--port', 'tap', '--tap', TAP, ...(qemuServes ? ['--client'] : [])];
      const backends: CliBackend[] = [startCliBackend(args, NS)];
      const sink = startTcpSink({ netns: NS, port: PORT, bytes: MIB << 20 });
      await sink.ready;
      if (!qemuServes) await backends[0].waitFor(/listening on /, 15_000);
      const guest = await startGuest({
        socketPath,
        ...(qemuServes ? { server: true } : { reconnect: 1 }),
        scenarios: ['tcp-tx'],
        params: { mb: MIB, port: PORT },
        memoryMiB: 384,
        guestTimeoutSec: 200,
      });
      try {
        await backends[0].waitFor(CONNECTED, 60_000);
        const info = await guest.waitFor(/^VHU-INFO tcp-tx md5=(\S+) bytes=(\d+)/m, 90_000);
        await sink.waitBytes(KILL_AT, 90_000);

        const killedAt = Date.now();
        const atKill = sink.progress();
        await backends[0].kill('SIGKILL');
        backends.push(startCliBackend(args, NS));
        const servedAt = await backends[1].waitFor(CONNECTED, 30_000);
        const restartMs = servedAt - killedAt;
        console.log(`${role}: killed at ${atKill >> 20} MiB received; serving again ${restartMs} ms after the SIGKILL`);
        // More is left than the namespace's socket buffers can hold: the rest goes through the new back-end.
        expect(atKill, 'bytes at the sink when the back-end was killed').toBeLessThan((MIB - 16) << 20);
        expect(restartMs, 'SIGKILL to "front-end connected" of the new back-end').toBeLessThanOrEqual(RESTART_MS);

        const tx = await guest.result('tcp-tx', 120_000);
        const got = await sink.done;
        expect(tx.rc, 'the guest nc').toBe('0');
        expect(got).toMatchObject({ bytes: MIB << 20, md5: info[1] });
        expect(Number(info[2])).toBe(MIB << 20);
        expect(backends[1].output(), 'no warning from the new back-end').not.toMatch(/WARN (?!.*front-end disconnected)/);
      } catch (e) {
        console.error(`guest console:\n${guest.output()}\nQEMU stderr:\n${guest.stderr()}`);
        for (const [i, b] of backends.entries()) console.error(`back-end ${i + 1}:\n${b.output()}`);
        throw e;
      } finally {
        await guest.kill();
        sink.kill();
        await Promise.all(backends.map((b) => b.kill('SIGKILL')));
      }
    }, 300_000);
  }
});
