/**
 * A Linux VM whose only NIC is served by our back-end on the user port (libslirp), the back-end a
 * separate `vhost-user net --port user` process running as nobody when the suite runs as root. The
 * guest leases its address with udhcpc, pings the gateway, reads a file from a host TFTP server (a UDP
 * request and response), resolves a name at 10.0.2.3 (which --dns points at a DNS server of this test),
 * fetches 50 MiB from a host server through the gateway (10.0.2.2 is the host's 127.0.0.1) and serves
 * 50 MiB that the host reads through a --forward. Then --no-host-loopback and --restrict each keep the
 * guest from a host TCP server that the first boot reached. Without libslirp (the loader pointed
 * elsewhere) the user port fails in one line and the loopback port still serves a guest.
 * Needs QEMU, a Debian kernel, busybox and libslirp0: skipped without them, except in CI (CI=true).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { hasLibrary } from '../helpers/peers';
import { startGuest } from '../../lib/guest/guest';
import { buildInitramfs } from '../../lib/guest/initramfs';
import { killAll } from '../../lib/guest/processes';
import { freePort, readPort } from '../../lib/bench/usernet/transfer';
import { startTcpSource, writeRandomFile } from './qemu/tcp_peers';
import { qemuAvailable, requiredInCi } from './qemu/tools';
import {
  cliArgv,
  startDnsServer,
  startTcpBanner,
  startTftpServer,
  startUserBackend,
  type HostService,
  type UserBackend,
} from './qemu/user_host';

function libslirpPresent(): boolean {
  if (hasLibrary('libslirp.so.0')) return true;
  requiredInCi('libslirp.so.0 is missing', 'install it: apt-get install -y libslirp0');
  console.warn('skipping the user port QEMU tests: libslirp.so.0 is missing (Debian package libslirp0)');
  return false;
}

const available = qemuAvailable() && libslirpPresent();
const MIB = 50;
const BYTES = MIB << 20;
const GUEST_SERVE_PORT = 5080;
const BANNER = 'vhu-banner';
const ANSWER = '192.0.2.77';
/** The guest's view of the user network (libslirp's defaults, which --net would change). */
const LEASE = { ip: '10.0.2.15', subnet: '255.255.255.0', router: '10.0.2.2', dns: '10.0.2.3' };
const GATEWAY = LEASE.router;

/** Frames the guest sent larger than a 1518-byte Ethernet frame, from the back-end's statistics (SIGUSR1). */
async function largeGuestFrames(b: UserBackend): Promise<number> {
  const from = b.output().length;
  b.process.kill('SIGUSR1');
  const deadline = Date.now() + 10_000;
  let m: RegExpExecArray | null = null;
  while (!(m = /guest TX of pair 0[^\n]*\n\s*sizes [^\n]*1519\+:(\d+)/.exec(b.output().slice(from))) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!m) throw new Error(`no statistics after SIGUSR1: ${b.output().slice(from)}`);
  return Number(m[1]);
}

describe.skipIf(!available)('a QEMU guest on the user port', () => {
  let dir = '';
  let file = '';
  let sentMd5 = '';
  let banner: HostService;
  const backends: UserBackend[] = [];

  beforeAll(async () => {
    await buildInitramfs();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-e2e-user-'));
    file = path.join(dir, 'to-guest.bin');
    sentMd5 = await writeRandomFile(file, BYTES);
    banner = await startTcpBanner(BANNER);
  }, 120_000);

  afterAll(async () => {
    banner?.close();
    for (const b of backends) b.stop();
    await killAll();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function backend(name: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<UserBackend> {
    const b = await startUserBackend(dir, name, args, env);
    backends.push(b);
    // The process itself, not what we asked for: its real and effective uid (/proc/PID/status).
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(fs.readFileSync(`/proc/${b.process.pid}/status`, 'utf8'));
    expect([Number(uids?.[1]), Number(uids?.[2])]).toEqual([b.uid, b.uid]);
    if (process.getuid?.() === 0) expect(b.uid).toBe(65534);
    return b;
  }

  it(`leases, pings, resolves, exchanges UDP and moves ${MIB} MiB each way (through the gateway and a forward)`, async () => {
    const dns = await startDnsServer(ANSWER);
    const udp = await startTftpServer();
    const forwardPort = await freePort();
    const sourcePort = await freePort();
    const source = startTcpSource({ host: '127.0.0.1', port: sourcePort, file });
    await source.ready;
    const b = await backend('main', ['--forward', `tcp:127.0.0.1:${forwardPort}:${GUEST_SERVE_PORT}`, '--dns', `127.0.0.1:${dns.port}`]);
    const guest = await startGuest({
      socketPath: b.socketPath,
      scenarios: ['dhcp', 'ping', 'udp', 'dns', 'tcp-banner', 'tcp-rx', 'tcp-serve'],
      // tcp-rx connects to host:port+1, where the source listens.
      params: {
        ip: 'none',
        host: GATEWAY,
        count: 5,
        interval: 0.2,
        mb: MIB,
        port: sourcePort - 1,
        serve_port: GUEST_SERVE_PORT,
        udp_port: udp.port,
        banner_port: banner.port,
      },
      memoryMiB: 384,
      guestTimeoutSec: 280,
    });
    try {
      expect(await guest.result('dhcp', 60_000)).toMatchObject({ ...LEASE, rc: '0' });
      expect(await guest.result('ping', 30_000)).toMatchObject({ transmitted: '5', received: '5', rc: '0' });
      expect(await guest.result('udp', 30_000)).toMatchObject({ reply: 're:vhu-udp', rc: '0' });
      expect(udp.served).toBe(1);
      expect(await guest.result('dns', 30_000)).toMatchObject({ addr: ANSWER, rc: '0' });
      expect(dns.served).toBeGreaterThan(0);
      expect(await guest.result('tcp-banner', 30_000)).toMatchObject({ got: BANNER });

      const rx = await guest.result('tcp-rx', 120_000);
      expect((await source.done).md5).toBe(sentMd5);
      expect(rx).toMatchObject({ rc: '0', bytes: String(BYTES), md5: sentMd5 });

      const info = await guest.waitFor(/^VHU-INFO tcp-serve md5=(\S+) bytes=(\d+)/m, 120_000);
      const got = await readPort(forwardPort, BYTES, 120_000);
      expect(got).toMatchObject({ bytes: BYTES, md5: info[1] });
      const served = await guest.result('tcp-serve', 30_000);
      expect(served).toMatchObject({ rc: '0', md5: info[1] });
      // The guest left checksums and segmentation to the port (software offloads) and the md5s held.
      const acked = /features acked: \S+ \(([^)]*)\)/.exec(b.output())?.[1].split(' ') ?? [];
      expect(acked).toEqual(expect.arrayContaining(['CSUM', 'GUEST_CSUM', 'HOST_TSO4', 'HOST_TSO6', 'HOST_ECN']));
      // ... and did send TSO frames, larger than its MTU: the port cut them (and the md5s held).
      expect(await largeGuestFrames(b)).toBeGreaterThan(0);
      console.log(`user port: host->guest ${MIB} MiB in ${rx.secs} s, guest->host (forward) in ${got.seconds.toFixed(2)} s`);
    } catch (e) {
      console.error(`guest console:\n${guest.output()}\nback-end:\n${b.output()}`);
      throw e;
    } finally {
      await guest.kill();
      source.kill();
      dns.close();
      udp.close();
      b.stop();
    }
  }, 300_000);

  for (const flag of ['--no-host-loopback', '--restrict']) {
    it(`${flag}: the guest cannot reach the host's TCP server through the gateway`, async () => {
      const before = banner.served;
      const b = await backend(flag.slice(2), [flag]);
      const guest = await startGuest({
        socketPath: b.socketPath,
        scenarios: ['dhcp', 'tcp-banner'],
        params: { ip: 'none', host: GATEWAY, banner_port: banner.port },
        guestTimeoutSec: 90,
      });
      try {
        // libslirp's restricted lease names no router and no DNS: there is nothing beyond the guest's link.
        const lease = flag === '--restrict' ? { ...LEASE, router: '', dns: '' } : LEASE;
        expect(await guest.result('dhcp', 60_000)).toMatchObject({ ...lease, rc: '0' });
        expect(await guest.result('tcp-banner', 30_000)).toMatchObject({ got: 'none' });
        expect(banner.served).toBe(before);
      } catch (e) {
        console.error(`guest console:\n${guest.output()}\nback-end:\n${b.output()}`);
        throw e;
      } finally {
        await guest.kill();
        b.stop();
      }
    }, 120_000);
  }

  it('without libslirp: --port user fails in one line naming the package, --port loopback still serves a guest', async () => {
    const env = { ...process.env, VHOST_USER_LIBSLIRP: '/nonexistent/libslirp.so.0' };
    const { argv } = cliArgv(dir, ['--socket', path.join(dir, 'nolib.sock'), '--port', 'user']);
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env, timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/libslirp0/);

    const b = await backend('loopback', ['--port', 'loopback'], env);
    const guest = await startGuest({ socketPath: b.socketPath, scenarios: ['link'], guestTimeoutSec: 60 });
    try {
      expect(await guest.result('link', 60_000)).toMatchObject({ carrier: '1', operstate: 'up' });
      expect(b.output()).toMatch(/loopback port/);
    } finally {
      await guest.kill();
      b.stop();
    }
  }, 120_000);
});
