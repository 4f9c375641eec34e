/**
 * The tap port with our own front-end as the guest: the host side is a network namespace holding
 * the tap, whose kernel answers ARP and ping. Needs root and /dev/net/tun (CI has both).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { VhostUserBackend } from '../lib/backend';
import { NetDevice, type NetDeviceOptions } from '../lib/net/device';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { Request } from '../lib/protocol/constants';
import { hasProgram, hasTun, isRoot, missing, run, skipUnless } from './helpers/peers';
import { until } from './helpers/until';

const NS = `vhu-tap-${process.pid}`;
const TAP = `vhut${process.pid % 100000}`;
const HOST_IP = [10, 99, 0, 1];
const GUEST_IP = [10, 99, 0, 2];
const GUEST_MAC = Buffer.from([0x52, 0x54, 0x00, 0xaa, 0xbb, 0x01]);

const skip = skipUnless(
  missing([
    [isRoot(), 'root (for the tap and the network namespace)'],
    [hasTun(), '/dev/net/tun'],
    [hasProgram('ip'), "the 'ip' command (Debian package iproute2)"],
  ]),
  'tap port tests',
);

function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

function arpRequest(mac = GUEST_MAC, ip = GUEST_IP): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  mac.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // ethernet
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  mac.copy(f, 22);
  f.set(ip, 28);
  f.set(HOST_IP, 38);
  return f;
}

function echoRequest(dstMac: Buffer, seq: number, payloadLen: number, mac = GUEST_MAC, guestIp = GUEST_IP): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + payloadLen, 2);
  ip.writeUInt16BE(seq, 4);
  ip[8] = 64;
  ip[9] = 1; // ICMP
  ip.set(guestIp, 12);
  ip.set(HOST_IP, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  const icmp = Buffer.alloc(8 + payloadLen);
  icmp[0] = 8;
  icmp.writeUInt16BE(0x1234, 4);
  icmp.writeUInt16BE(seq, 6);
  for (let i = 0; i < payloadLen; i++) icmp[8 + i] = (seq + i) & 0xff;
  icmp.writeUInt16BE(checksum(icmp), 2);
  const eth = Buffer.alloc(14);
  dstMac.copy(eth, 0);
  mac.copy(eth, 6);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ip, icmp]);
}

/**
 * A back-end on tap `tapName`, the tap moved into its own network namespace `ns` and addressed
 * there (nothing of these tests touches the machine's network), and guest memory for a driver.
 */
class TapBackend {
  backend!: VhostUserBackend;
  memory!: GuestMemory;
  readonly warnings: string[] = [];
  private dir = '';

  constructor(
    private readonly ns: string,
    private readonly tapName: string,
    private readonly device: NetDeviceOptions,
  ) {}

  setUp(): void {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-tap-'));
    this.backend = new VhostUserBackend({
      socketPath: path.join(this.dir, 'net.sock'),
      device: { ...this.device, tap: this.tapName },
      log: (level, m) => level === 'warn' && this.warnings.push(m),
    });
    this.backend.start();
    run('ip', ['netns', 'add', this.ns]);
    run('ip', ['link', 'set', this.tapName, 'netns', this.ns]);
    run('ip', ['-n', this.ns, 'link', 'set', this.tapName, 'up']);
    run('ip', ['-n', this.ns, 'addr', 'add', `${HOST_IP.join('.')}/24`, 'dev', this.tapName]);
    this.memory = new GuestMemory();
  }

  tearDown(): void {
    this.backend?.close();
    this.memory?.close();
    if (!skip) spawnQuiet('ip', ['netns', 'del', this.ns]);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The first of `frames` that `pred` accepts, waiting up to 5 s for it to arrive; undefined if none. */
async function waitForFrame(frames: Buffer[], pred: (f: Buffer) => boolean): Promise<Buffer | undefined> {
  for (let t = 0; t < 500; t++) {
    const hit = frames.find(pred);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

describe.skipIf(skip)('tap port', () => {
  const t = new TapBackend(NS, TAP, {});
  beforeAll(() => t.setUp());
  afterAll(() => t.tearDown());

  it('carries ARP and ping both ways between the guest and the host kernel', async () => {
    const { backend, memory, warnings } = t;
    const frames: Buffer[] = [];
    const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory, onFrames: (f) => frames.push(...f) });
    const waitFor = (pred: (f: Buffer) => boolean) => waitForFrame(frames, pred);

    driver.send(arpRequest());
    driver.flush();
    const reply = await waitFor((f) => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2);
    expect(reply, 'ARP reply from the host').toBeDefined();
    const hostMac = reply!.subarray(22, 28);
    expect(Buffer.from(reply!.subarray(28, 32))).toEqual(Buffer.from(HOST_IP));

    const sizes = [0, 56, 1000, 1472];
    for (const [seq, size] of sizes.entries()) {
      driver.send(echoRequest(hostMac, seq + 1, size));
      driver.flush();
    }
    for (const [seq, size] of sizes.entries()) {
      const echo = await waitFor((f) => f.readUInt16BE(12) === 0x0800 && f[23] === 1 && f[34] === 0 && f.readUInt16BE(40) === seq + 1);
      expect(echo, `echo reply ${seq + 1}`).toBeDefined();
      expect(echo!.length).toBe(14 + 20 + 8 + size);
      expect(checksum(echo!.subarray(34))).toBe(0); // the host computed it: no offload was negotiated
    }
    driver.close();
    const [rx, tx] = backend.device.stats();
    expect(tx.packets).toBeGreaterThanOrEqual(5n);
    expect(rx.packets).toBeGreaterThanOrEqual(5n);
    expect(tx.errors + rx.errors).toBe(0n);
    expect(warnings).toEqual([]);
  });
});

describe.skipIf(skip)('tap port announcing a migrated guest', () => {
  const t = new TapBackend(`${NS}-an`, `vhua${process.pid % 100000}`, {});
  beforeAll(() => t.setUp());
  afterAll(() => t.tearDown());

  /** What the host's side of the tap received so far: frames and bytes (the kernel's counters). */
  const hostReceived = (ns: string, tap: string) =>
    ['rx_packets', 'rx_bytes'].map((c) => Number(run('ip', ['netns', 'exec', ns, 'cat', `/sys/class/net/${tap}/statistics/${c}`]).trim()));

  it('SEND_RARP writes one 60-byte RARP from the guest MAC to the tap, as QEMU announces a migrated guest', async () => {
    const { backend, memory, warnings } = t;
    const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory, onFrames: () => {} });
    const [frames0, bytes0] = hostReceived(`${NS}-an`, `vhua${process.pid % 100000}`);
    await driver.control.request({ request: Request.SEND_RARP, mac: GUEST_MAC }, { needReply: true });
    const [frames1, bytes1] = hostReceived(`${NS}-an`, `vhua${process.pid % 100000}`);
    expect([frames1 - frames0, bytes1 - bytes0]).toEqual([1, 60]);
    expect(backend.device.announce(GUEST_MAC)).toMatch(/^guest 52:54:00:aa:bb:01 arrived: announced it to the tap port's network/);
    expect(hostReceived(`${NS}-an`, `vhua${process.pid % 100000}`)[0]).toBe(frames1 + 1);
    driver.close();
    expect(warnings).toEqual([]);
  });
});

describe.skipIf(skip)('tap port with two queue pairs (a multiqueue tap)', () => {
  const t = new TapBackend(`${NS}-mq`, `vhum${process.pid % 100000}`, { queuePairs: 2 });
  const { warnings } = t;
  beforeAll(() => t.setUp());
  afterAll(() => t.tearDown());

  it('names the fix for an existing tap made without multi_queue', () => {
    const old = `vhus${process.pid % 100000}`;
    run('ip', ['tuntap', 'add', old, 'mode', 'tap', 'vnet_hdr']);
    try {
      expect(() => new NetDevice({ tap: old })).toThrow(
        `tap ${old}: TUNSETIFF: Invalid argument (it exists without multi_queue: delete it with \`ip link del ${old}\`, ` +
          `or create it with \`ip tuntap add ${old} mode tap vnet_hdr multi_queue\`)`,
      );
    } finally {
      run('ip', ['link', 'del', old]);
    }
  });

  // Eight guest addresses (eight flows), sent in turn on the `pairs` first pairs: ARP, then five
  // pings each. Resolves once every reply came back; returns the device's per-queue packet counts
  // this took.
  async function pingFromEight(pairs: number): Promise<bigint[]> {
    const { backend, memory } = t;
    const before = backend.device.stats().map((q) => q.packets);
    const got: Buffer[] = [];
    const driver = await VirtioNetDriver.start({
      socketPath: backend.socketPath,
      memory,
      queuePairs: pairs,
      onFrames: (f) => got.push(...f),
    });
    const guests = [0, 1, 2, 3, 4, 5, 6, 7].map((g) => ({
      mac: Buffer.from([0x52, 0x54, 0x00, 0xaa, 0xbb, 0x10 + g]),
      ip: [10, 99, 0, 10 + g],
    }));
    const waitFor = (pred: (f: Buffer) => boolean) => waitForFrame(got, pred);
    let hostMac: Buffer | undefined;
    for (const [i, g] of guests.entries()) {
      driver.send(arpRequest(g.mac, g.ip), 'single', i % pairs);
      driver.flush();
      const reply = await waitFor((f) => f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2 && f[41] === g.ip[3]);
      expect(reply, `ARP reply to ${g.ip.join('.')}`).toBeDefined();
      hostMac = reply!.subarray(22, 28);
    }
    for (let seq = 1; seq <= 5; seq++) {
      for (const [i, g] of guests.entries()) driver.send(echoRequest(hostMac!, seq, 56, g.mac, g.ip), 'single', i % pairs);
      driver.flush();
    }
    for (let seq = 1; seq <= 5; seq++) {
      for (const g of guests) {
        const isReply = (f: Buffer) =>
          f.readUInt16BE(12) === 0x0800 && f[23] === 1 && f[33] === g.ip[3] && f[34] === 0 && f.readUInt16BE(40) === seq;
        expect(await waitFor(isReply), `echo reply ${seq} to ${g.ip.join('.')}`).toBeDefined();
      }
    }
    driver.close();
    // Counted once the back-end has let the connection go: a frame the kernel sends late (an ARP, a
    // neighbour solicitation) may still reach a pair until then, and must not land in the next count.
    expect(await until(() => !backend.connected)).toBe(true);
    return backend.device.stats().map((q, i) => q.packets - before[i]);
  }

  it('carries ARP and ping on both pairs, each counted on its own queues', async () => {
    const [rx0, tx0, rx1, tx1] = await pingFromEight(2);
    // Guest TX: each pair sent 4 ARP requests and 20 echo requests (our choice, deterministic).
    expect([tx0, tx1]).toEqual([24n, 24n]);
    // Guest RX: which tap queue a reply leaves on is the kernel's choice (its flow steering); eight
    // flows from two queues reach both pairs, and every reply arrived on one of them.
    expect(rx0 + rx1).toBeGreaterThanOrEqual(48n);
    expect(rx0, 'pair 0 RX').toBeGreaterThan(0n);
    expect(rx1, 'pair 1 RX').toBeGreaterThan(0n);
    expect(t.backend.device.stats().reduce((n, q) => n + q.errors, 0n)).toBe(0n);
    expect(warnings).toEqual([]);
  });

  it("a guest on one pair of two gets every reply: the idle pair's tap queue is detached", async () => {
    // Were pair 1's queue still attached, the kernel would steer some flows' replies to it, where
    // no one reads them.
    const [rx0, tx0, rx1, tx1] = await pingFromEight(1);
    expect([tx0, rx1, tx1]).toEqual([48n, 0n, 0n]);
    expect(rx0).toBeGreaterThanOrEqual(48n);
    expect(warnings).toEqual([]);
  });

  it('after the one-pair guest, a two-pair guest again uses both tap queues', async () => {
    const [rx0, tx0, rx1, tx1] = await pingFromEight(2);
    expect([tx0, tx1]).toEqual([24n, 24n]);
    expect(rx0 + rx1).toBeGreaterThanOrEqual(48n);
    expect(rx1, 'pair 1 RX').toBeGreaterThan(0n);
    expect(warnings).toEqual([]);
  });
});

function spawnQuiet(cmd: string, args: string[]) {
  try {
    run(cmd, args);
  } catch {
    // best effort in teardown
  }
}
