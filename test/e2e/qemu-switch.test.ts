/**
 * Two Linux VMs on one `vhost-user switch` (issue #13's first acceptance line): each guest's only NIC
 * is one socket of the switch; with static addresses on one subnet they ping each other 20/20 both ways
 * and each serves 50 MiB that the other fetches over TCP, md5 compared on both sides. Nothing but the
 * switch joins them (no tap, no bridge, no root needed by the back-end). Needs QEMU, a Debian kernel
 * and busybox: skipped without them, except in CI (CI=true).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startGuest, type Guest } from '../../lib/guest/guest';
import { buildInitramfs } from '../../lib/guest/initramfs';
import { killAll, spawnTracked } from '../../lib/guest/processes';
import { qemuAvailable } from './qemu/tools';

const available = qemuAvailable();
const CLI = path.resolve(__dirname, '../../dist/cli.js');
const MIB = 50;
const SERVE_PORT = 5080;
const GUESTS = [
  { name: 'a', mac: '52:54:00:00:0a:01', ip: '10.0.9.1' },
  { name: 'b', mac: '52:54:00:00:0b:02', ip: '10.0.9.2' },
];

/** `vhost-user switch --socket A --socket B`; resolves once both sockets exist. */
async function startSwitch(sockets: string[]): Promise<{ process: ChildProcess; output: () => string }> {
  const child = spawnTracked([process.execPath, CLI, 'switch', ...sockets.flatMap((s) => ['--socket', s])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 15_000;
  while (!sockets.every((s) => fs.existsSync(s))) {
    if (child.exitCode !== null) throw new Error(`the switch ended: ${out.trim()}`);
    if (Date.now() > deadline) throw new Error(`no sockets after 15 s: ${out.trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { process: child, output: () => out };
}

describe.skipIf(!available)('two QEMU guests on the switch', () => {
  let dir = '';

  beforeAll(async () => {
    await buildInitramfs();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-e2e-switch-'));
  }, 120_000);

  afterAll(async () => {
    await killAll();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`ping 20/20 each way and ${MIB} MiB TCP each way, md5 on both sides`, async () => {
    const sockets = GUESTS.map((g) => path.join(dir, `${g.name}.sock`));
    const sw = await startSwitch(sockets);
    const guests: Guest[] = [];
    try {
      // a serves first while b fetches, then the other way round; tcp-rx retries while its peer is
      // still busy (md5, making its own file) and not listening yet.
      for (const [i, g] of GUESTS.entries()) {
        const peer = GUESTS[1 - i];
        guests.push(
          await startGuest({
            socketPath: sockets[i],
            mac: g.mac,
            scenarios: i === 0 ? ['link', 'ping', 'tcp-serve', 'tcp-rx'] : ['link', 'ping', 'tcp-rx', 'tcp-serve'],
            params: {
              ip: `${g.ip}/24`,
              host: peer.ip,
              count: 20,
              interval: 0.3,
              mb: MIB,
              serve_port: SERVE_PORT,
              port: SERVE_PORT - 1, // tcp-rx connects to host:port+1
              rx_wait: 120,
            },
            memoryMiB: 384,
            guestTimeoutSec: 400,
          }),
        );
      }
      const [a, b] = guests;
      for (const g of guests) {
        expect(await g.result('ping', 120_000)).toMatchObject({ transmitted: '20', received: '20', rc: '0' });
      }
      const aServes = await a.waitFor(/^VHU-INFO tcp-serve md5=(\S+) bytes=(\d+)/m, 120_000);
      expect(await b.result('tcp-rx', 240_000)).toMatchObject({ rc: '0', md5: aServes[1], bytes: String(MIB << 20) });
      const bServes = await b.waitFor(/^VHU-INFO tcp-serve md5=(\S+) bytes=(\d+)/m, 120_000);
      expect(await a.result('tcp-rx', 240_000)).toMatchObject({ rc: '0', md5: bServes[1], bytes: String(MIB << 20) });
      expect(await a.result('tcp-serve', 30_000)).toMatchObject({ rc: '0' });
      expect(await b.result('tcp-serve', 30_000)).toMatchObject({ rc: '0' });
    } catch (e) {
      for (const [i, g] of guests.entries()) console.error(`guest ${GUESTS[i].name} console:\n${g.output()}`);
      console.error(`switch:\n${sw.output()}`);
      throw e;
    } finally {
      await Promise.all(guests.map((g) => g.kill()));
      sw.process.kill('SIGTERM');
    }
  }, 600_000);
});
