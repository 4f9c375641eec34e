/**
 * The switch's tap uplink (Switch.attachTap, native/net/switch/tap_uplink.h): a tap interface is a
 * port of the switch like a guest's. Our own front-ends are the guests; the tap is moved into a
 * network namespace with an address, whose kernel answers ARP, ping and a UDP echo (node, run there).
 * The namespace's MAC is learnt behind the tap port; the tap's access VLAN keeps other VLANs out; a
 * tap deleted under the switch is logged and counted, and the guests go on. Needs root, /dev/net/tun
 * and `ip` (CI has them).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { QueueStats } from '../lib/net/stats';
import { switchMetrics } from '../lib/observe/switch_metrics';
import { readPcap } from './helpers/pcap';
import { hasProgram, hasTun, isRoot, missing, run, skipUnless } from './helpers/peers';
import { arpRequest, icmpEcho, readArpReply, readEchoReply, readUdp, udpDatagram } from './helpers/ip_frames';
import { BROADCAST, startSwitchRig, tagged, tagsOf, type SwitchRig } from './helpers/switch_rig';
import { until } from './helpers/until';

const skip = skipUnless(
  missing([
    [isRoot(), 'root (for the tap and the network namespace)'],
    [hasTun(), '/dev/net/tun'],
    [hasProgram('ip'), "the 'ip' command (Debian package iproute2)"],
  ]),
  'switch tap uplink tests',
);

const NS = `vhu-swtap-${process.pid}`;
const TAP = `vhusw${process.pid % 100000}`;
const HOST = '10.98.0.1';
const GUEST = '10.98.0.2';
const UDP_PORT = 7007;

let rig: SwitchRig | undefined;
let echo: ChildProcess | undefined;
let logs: string[] = [];

afterEach(() => {
  echo?.kill('SIGKILL');
  echo = undefined;
  rig?.close();
  rig = undefined;
  spawnSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
  spawnSync('ip', ['link', 'del', TAP], { stdio: 'ignore' });
});

/** Guests in `vlans`, the tap in `tapVlan`, moved into NS, up, with HOST's address. */
async function start(vlans: number[], tapVlan = 1): Promise<SwitchRig> {
  logs = [];
  rig = await startSwitchRig({ vlans, switch: { log: (level, m) => logs.push(`${level}: ${m}`) } });
  rig.sw.attachTap(TAP, { vlan: tapVlan });
  run('ip', ['netns', 'add', NS]);
  run('ip', ['link', 'set', TAP, 'netns', NS]);
  run('ip', ['-n', NS, 'link', 'set', TAP, 'up']);
  run('ip', ['-n', NS, 'addr', 'add', `${HOST}/24`, 'dev', TAP]);
  return rig;
}

/** Guest i's received frames that `read` accepts (e.g. an ARP reply), waiting up to `ms` for the first. */
async function waitRead<T>(r: SwitchRig, i: number, read: (f: Buffer) => T | undefined, ms = 5_000): Promise<T[]> {
  const all = () => r.guests[i].received.map(read).filter((x): x is T => x !== undefined);
  await until(() => all().length > 0, ms);
  return all();
}

const tapStats = (r: SwitchRig): QueueStats[] => r.sw.ports().find((p) => p.tap === TAP)?.stats ?? [];

/** A UDP echo in the namespace: node, answering each datagram with its payload. */
async function startUdpEcho(): Promise<void> {
  const code =
    `const s=require('dgram').createSocket('udp4');` +
    `s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(${UDP_PORT},'${HOST}',()=>console.log('ready'));`;
  echo = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  echo.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  expect(await until(() => out.includes('ready'), 10_000), 'UDP echo started in the namespace').toBe(true);
}

describe.skipIf(skip)('switch tap uplink', () => {
  it('carries ARP, ping and UDP between a guest and the host behind the tap; learns the host behind the tap', async () => {
    const r = await start([1, 1]);
    const pcapPath = path.join(os.tmpdir(), `vhost-user-switch-tap-${process.pid}.pcap`);
    const capture = r.sw.capture(pcapPath);
    await startUdpEcho();
    await r.send(0, [arpRequest(GUEST, HOST)]);
    const [reply] = await waitRead(r, 0, readArpReply);
    expect(reply?.senderIp, 'ARP reply from the namespace').toBe(HOST);
    const hostMac = reply.senderMac;
    const macText = [...hostMac].map((b) => b.toString(16).padStart(2, '0')).join(':');
    const table = r.sw.macTable().map((e) => `${e.mac} ${e.vlan} ${e.port}`);
    expect(table).toContain(`${macText} 1 ${TAP}`);
    expect(table).toContain('52:54:00:12:34:56 1 g1');

    await r.send(
      0,
      [1, 2, 3, 4, 5].map((seq) => icmpEcho(GUEST, HOST, hostMac, 0x77, seq)),
    );
    expect(await until(() => r.guests[0].received.filter((f) => readEchoReply(f)?.id === 0x77).length === 5, 5_000)).toBe(true);
    expect(r.guests[0].received.flatMap((f) => readEchoReply(f)?.seq ?? []).sort()).toEqual([1, 2, 3, 4, 5]);

    const payload = Buffer.from('through the switch and back');
    await r.send(0, [udpDatagram(GUEST, HOST, hostMac, 40000, UDP_PORT, payload, true)]);
    const [answer] = await waitRead(r, 0, (f) => {
      const u = readUdp(f);
      return u && u.srcPort === UDP_PORT ? u : undefined;
    });
    expect(answer?.payload.toString()).toBe(payload.toString());
    expect({ dstPort: answer.dstPort, checksumOk: answer.checksumOk, ip: answer.ipChecksumOk }).toEqual({
      dstPort: 40000,
      checksumOk: true,
      ip: true,
    });

    // g2 saw the flooded ARP request and none of the unicast between g1 and the host.
    const unicastToG2 = r.guests[1].received.filter((f) => !(f[0] & 1));
    expect(unicastToG2).toEqual([]);
    const [toTap, fromTap] = tapStats(r);
    expect(toTap.packets).toBeGreaterThanOrEqual(7n); // ARP, 5 pings, UDP
    expect(fromTap.packets).toBeGreaterThanOrEqual(7n);
    expect(toTap.drops + toTap.errors + fromTap.drops + fromTap.errors).toBe(0n);
    // --metrics exports the tap port as `tap NAME`, its queues named as a device's (rx_q0: what it sent in).
    const tapReading = switchMetrics(r.sw, [])
      .devices()
      .find((d) => d.socket === `tap ${TAP}`);
    expect(tapReading?.queues.map((q) => [q.name, q.counters.packets])).toEqual([
      ['tx_q0', toTap.packets],
      ['rx_q0', fromTap.packets],
    ]);
    expect(r.warnings.concat(logs)).toEqual([]);
    // The switch's pcap has the tap's frames as it has the guests': each once, as it entered.
    await capture.stop();
    const records = readPcap(pcapPath).records.map((x) => x.data);
    fs.rmSync(pcapPath, { force: true });
    const fromHost = records.filter((f) => f.subarray(6, 12).equals(hostMac));
    expect(fromHost.filter((f) => readEchoReply(f)).length).toBe(5);
    expect(fromHost.filter((f) => readArpReply(f)).length).toBe(1);
    expect(records.filter((f) => readUdp(f)?.dstPort === UDP_PORT).length).toBe(1);
  });

  it("keeps other VLANs out: only the tap's VLAN reaches the host", async () => {
    const r = await start([1, 20], 20);
    await r.send(0, [arpRequest(GUEST, HOST)]);
    await r.send(1, [arpRequest(GUEST, HOST)]);
    const [reply] = await waitRead(r, 1, readArpReply);
    expect(reply?.senderIp).toBe(HOST);
    // The host answered g2's request only: g1's (VLAN 1) never reached it, and no answer reached g1.
    await new Promise((res) => setTimeout(res, 300));
    expect(r.guests[0].received.filter((f) => readArpReply(f))).toEqual([]);
    expect(r.guests[0].received.filter((f) => !(f[0] & 1))).toEqual([]);
    const vlansOfHost = r.sw
      .macTable()
      .filter((e) => e.port === TAP)
      .map((e) => e.vlan);
    expect([...new Set(vlansOfHost)]).toEqual([20]);
    expect(tapStats(r)[0].packets).toBe(1n); // to the tap: g2's request alone
  });

  it('forgets the MACs behind a detached tap at once; 20 attach/detach cycles leave no fd', async () => {
    const r = await start([1]);
    await r.send(0, [arpRequest(GUEST, HOST)]);
    expect((await waitRead(r, 0, readArpReply)).length).toBe(1);
    expect(r.sw.macTable().some((e) => e.port === TAP)).toBe(true);
    expect(r.sw.detachTap(TAP)).toBe(true);
    expect(r.sw.macTable().some((e) => e.port === TAP)).toBe(false);
    expect(r.sw.ports().map((p) => p.name)).toEqual(['g1']);
    expect(r.sw.detachTap(TAP)).toBe(false);
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    const before = fds();
    for (let i = 0; i < 20; i++) {
      r.sw.attachTap(`${TAP}x`, { vlan: 1 + (i % 3) });
      expect(r.sw.detachTap(`${TAP}x`)).toBe(true);
    }
    expect(fds()).toBe(before);
    expect(() => r.sw.attachTap('a-name-longer-than-15')).toThrow('tap name must be 1..15 characters');
  });

  it('logs and counts a tap deleted under the switch; the guests go on', async () => {
    const r = await start([1, 1]);
    await r.send(0, [tagged(BROADCAST, r.guests[0].mac, 1, 1)]);
    await r.settle(0, [1]);
    run('ip', ['-n', NS, 'link', 'del', TAP]);
    // Frames toward the tap find it gone: reported once (from the read or this write), counted.
    await r.send(0, [tagged(BROADCAST, r.guests[0].mac, 1, 2)]);
    expect(await until(() => logs.length > 0, 5_000), 'a warning for the tap (logged within a second)').toBe(true);
    expect(logs[0]).toMatch(new RegExp(`^warn: switch: tap ${TAP}: (read|write): .*deleted`));
    const before = tapStats(r)[0].drops;
    await r.send(0, [tagged(BROADCAST, r.guests[0].mac, 1, 3)]);
    await r.send(1, [tagged(r.guests[0].mac, r.guests[1].mac, 2, 1)]);
    await r.settle(0, [1]);
    await r.settle(1, [0]);
    // The tagged frames only: the namespace's kernel sent IPv6 multicast of its own before the delete.
    const tags = (i: number) => tagsOf({ ...r.guests[i], received: r.guests[i].received.filter((f) => f.readUInt16BE(12) === 0x88b5) });
    expect(tags(1)).toEqual(['1:1', '1:2', '1:3']);
    expect(tags(0)).toEqual(['2:1']);
    expect(tapStats(r)[0].drops).toBeGreaterThan(before);
    expect(logs.length).toBe(1);
    expect(r.warnings).toEqual([]);
  });
});
