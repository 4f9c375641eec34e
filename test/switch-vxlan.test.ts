/**
 * The switch's VXLAN uplink (Switch.attachVxlan, native/net/switch/vxlan_uplink.h) against the
 * kernel's own vxlan devices: two network namespaces, each joined to this one by a veth pair (the
 * underlay) and holding a Linux vxlan device of VNI 42 whose remote is the switch; our own front-ends
 * are the guests. Each namespace's MAC is learnt behind its own remote; learned unicast reaches only
 * its remote, broadcast both, and nothing goes from one remote to the other (split horizon, read on
 * the other namespace's vxlan counters); datagrams that are not ours are dropped, counted per cause,
 * logged once each, and the switch serves on; the MTU the uplink allows is 1450 over a 1500 underlay.
 * A third namespace has an IPv6 underlay (MTU 1430 allowed: 70 bytes of encapsulation).
 * Needs root and `ip` (CI has them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import type { QueueStats } from '../lib/net/stats';
import { switchMetrics } from '../lib/observe/switch_metrics';
import type { SwitchPort } from '../lib/net/switch';
import { hasProgram, isRoot, missing, run, skipUnless } from './helpers/peers';
import { arpRequest, icmpEcho, readArpReply, readEchoReply } from './helpers/ip_frames';
import { startSwitchRig, type SwitchRig } from './helpers/switch_rig';
import { until } from './helpers/until';

const skip = skipUnless(
  missing([
    [isRoot(), 'root (for the network namespaces)'],
    [hasProgram('ip'), "the 'ip' command (Debian package iproute2)"],
  ]),
  'switch VXLAN uplink tests',
);

const VNI = 42;
const ID = process.pid % 10000;
const LOCAL = '10.97.1.1'; // the switch's underlay address (this namespace's end of veth 1)
/** The two remote hosts: namespace, this side's veth, its underlay address, its overlay address. */
const HOSTS = [
  { ns: `vhu-vx1-${process.pid}`, veth: `vhuvxa${ID}`, here: LOCAL, there: '10.97.1.2', overlay: '10.96.0.11' },
  { ns: `vhu-vx2-${process.pid}`, veth: `vhuvxb${ID}`, here: '10.97.2.1', there: '10.97.2.2', overlay: '10.96.0.12' },
];
const GUEST = '10.96.0.2';

function teardown(): void {
  for (const h of HOSTS) {
    spawnSync('ip', ['netns', 'del', h.ns], { stdio: 'ignore' });
    spawnSync('ip', ['link', 'del', h.veth], { stdio: 'ignore' });
  }
}

/** Both namespaces: the veth underlay, a quiet stack (no IPv6 chatter), vx0 of VNI 42 toward LOCAL. */
function setUpHosts(): void {
  teardown();
  for (const h of HOSTS) {
    const ipn = (...args: string[]) => run('ip', ['-n', h.ns, ...args]);
    run('ip', ['netns', 'add', h.ns]);
    run('ip', ['link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', h.ns]);
    run('ip', ['addr', 'add', `${h.here}/24`, 'dev', h.veth]);
    run('ip', ['link', 'set', h.veth, 'up']);
    run('ip', ['netns', 'exec', h.ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    ipn('addr', 'add', `${h.there}/24`, 'dev', 'ul0');
    ipn('link', 'set', 'ul0', 'up');
    ipn('link', 'set', 'lo', 'up');
    if (h.here !== LOCAL) ipn('route', 'add', `${LOCAL}/32`, 'via', h.here);
    ipn('link', 'add', 'vx0', 'type', 'vxlan', 'id', String(VNI), 'remote', LOCAL, 'local', h.there, 'dstport', '4789', 'dev', 'ul0');
    ipn('addr', 'add', `${h.overlay}/24`, 'dev', 'vx0');
    ipn('link', 'set', 'vx0', 'up');
  }
}

/** Packets a namespace's vx0 received (decapsulated) so far. */
function vxRx(i: number): number {
  const [link] = JSON.parse(run('ip', ['-n', HOSTS[i].ns, '-s', '-j', 'link', 'show', 'vx0'])) as {
    stats64: { rx: { packets: number } };
  }[];
  return link.stats64.rx.packets;
}

function macText(mac: Buffer): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

describe.skipIf(skip)('switch VXLAN uplink', () => {
  let rig: SwitchRig;
  const logs: string[] = [];
  let info: { ports: number[]; mtu: number };
  const remote = (i: number): SwitchPort => rig.sw.ports().find((p) => p.port === info.ports[i]) as SwitchPort;
  const toRemote = (i: number): QueueStats => remote(i).stats[0];

  beforeAll(async () => {
    setUpHosts();
    rig = await startSwitchRig({ vlans: [1, 1], switch: { log: (level, m) => logs.push(`${level}: ${m}`) } });
    info = rig.sw.attachVxlan({ remotes: HOSTS.map((h) => h.there), vni: VNI, local: LOCAL });
  }, 30_000);

  afterAll(() => {
    rig?.close();
    teardown();
  });

  /** ARP for `target` from guest 0; the reply's sender MAC. */
  async function resolve(target: string): Promise<Buffer> {
    await rig.send(0, [arpRequest(GUEST, target)]);
    let mac: Buffer | undefined;
    await until(() => {
      mac = rig.guests[0].received.map(readArpReply).find((r) => r?.senderIp === target)?.senderMac;
      return mac !== undefined;
    }, 5_000);
    expect(mac, `ARP reply from ${target}`).toBeDefined();
    return mac as Buffer;
  }

  it('allows a guest MTU of 1450 over a 1500 underlay; names each remote as a port', () => {
    expect(info.mtu).toBe(1450);
    expect(info.ports.map((p) => rig.sw.ports().find((x) => x.port === p)?.name)).toEqual(['vxlan:10.97.1.2:4789', 'vxlan:10.97.2.2:4789']);
  });

  it('learns each MAC behind its own remote; learned unicast reaches only its remote, broadcast both', async () => {
    const rx0 = [vxRx(0), vxRx(1)];
    const mac1 = await resolve(HOSTS[0].overlay);
    const mac2 = await resolve(HOSTS[1].overlay);
    // Both ARP requests were broadcast: each namespace's vx0 got both.
    expect(await until(() => vxRx(0) >= rx0[0] + 2 && vxRx(1) >= rx0[1] + 2, 3_000), 'both requests reached both remotes').toBe(true);
    const table = rig.sw.macTable().map((e) => `${e.mac} ${e.port}`);
    expect(table).toContain(`${macText(mac1)} vxlan:10.97.1.2:4789`);
    expect(table).toContain(`${macText(mac2)} vxlan:10.97.2.2:4789`);

    const before = { to1: toRemote(0).packets, to2: toRemote(1).packets, rx2: vxRx(1) };
    await rig.send(
      0,
      [1, 2, 3, 4, 5].map((seq) => icmpEcho(GUEST, HOSTS[0].overlay, mac1, 0x55, seq)),
    );
    expect(await until(() => rig.guests[0].received.filter((f) => readEchoReply(f)?.id === 0x55).length === 5, 5_000)).toBe(true);
    expect(toRemote(0).packets - before.to1).toBe(5n);
    expect(toRemote(1).packets).toBe(before.to2);
    expect(vxRx(1)).toBe(before.rx2); // the other namespace saw none of it
    // Guest 2 (same VLAN) saw no unicast between guest 1 and the namespace.
    expect(rig.guests[1].received.filter((f) => !(f[0] & 1))).toEqual([]);
  });

  it("never forwards from one remote to another (split horizon): namespace 1's broadcast reaches the guests only", async () => {
    const before = { to2: toRemote(1).packets, rx2: vxRx(1), g2: rig.guests[1].received.length };
    // An ARP request of namespace 1's kernel for an address nobody has: broadcast into the overlay.
    const code = `const s=require('dgram').createSocket('udp4');s.send(Buffer.from('x'),9,'10.96.0.99',()=>s.close());`;
    run('ip', ['netns', 'exec', HOSTS[0].ns, process.execPath, '-e', code]);
    expect(await until(() => rig.guests[1].received.length > before.g2, 3_000), 'the broadcast reached guest 2').toBe(true);
    expect(rig.guests[1].received.slice(before.g2).some((f) => f.readUInt16BE(12) === 0x0806)).toBe(true);
    expect(toRemote(1).packets).toBe(before.to2);
    expect(vxRx(1)).toBe(before.rx2);
  });

  it('drops and counts datagrams that are not ours, logs each cause once, and serves on', async () => {
    const header = (flags: number, vni: number) => Buffer.from([flags, 0, 0, 0, vni >> 16, (vni >> 8) & 0xff, vni & 0xff, 0]);
    const frame = Buffer.alloc(60, 0xab);
    const datagrams = [
      Buffer.alloc(10), // short
      Buffer.concat([header(0x00, VNI), frame]), // no I flag
      Buffer.concat([header(0x08, VNI + 1), frame]), // another VNI
      Buffer.concat([header(0x08, VNI), Buffer.alloc(1500, 0xab)]), // inner frame longer than 1450 + 18
    ];
    // From namespace 1's underlay address (a remote): node there sends them, twice each.
    const code =
      `const s=require('dgram').createSocket('udp4');const d=${JSON.stringify(datagrams.map((d) => d.toString('hex')))};` +
      `let n=0;for(const x of [...d,...d])s.send(Buffer.from(x,'hex'),4789,'${LOCAL}',()=>{if(++n===${2 * datagrams.length})s.close()});`;
    run('ip', ['netns', 'exec', HOSTS[0].ns, process.execPath, '-e', code]);
    // From an address that is no remote: this namespace's end of veth 2.
    const s = dgram.createSocket('udp4');
    await new Promise<void>((res) => s.bind(0, HOSTS[1].here, res));
    await new Promise<void>((res) => s.send(Buffer.concat([header(0x08, VNI), frame]), 4789, LOCAL, () => res()));
    s.close();
    const want = { unknownSource: 1n, short: 2n, noVni: 2n, otherVni: 2n, tooLong: 2n };
    await until(() => remote(0).vxlanDrops?.tooLong === 2n && remote(0).vxlanDrops?.unknownSource === 1n, 5_000);
    expect(remote(0).vxlanDrops).toEqual(want);
    expect(remote(0).stats[1].errors).toBe(8n); // the remote's own: the eight from its address
    // A second uplink (UDP port 4790) drops a short datagram of its own: the metric counts both uplinks.
    const second = rig.sw.attachVxlan({ remotes: [`${HOSTS[0].there}:4790`], vni: VNI, local: LOCAL, port: 4790 });
    const shortTo4790 = `const s=require('dgram').createSocket('udp4');s.send(Buffer.alloc(10),4790,'${LOCAL}',()=>s.close());`;
    run('ip', ['netns', 'exec', HOSTS[0].ns, process.execPath, '-e', shortTo4790]);
    const secondPort = () => rig.sw.ports().find((p) => p.port === second.ports[0]) as SwitchPort;
    expect(await until(() => secondPort().vxlanDrops?.short === 1n, 5_000), 'the second uplink counted its datagram').toBe(true);
    expect(remote(0).vxlanDrops).toEqual(want);
    const registry = new Registry();
    switchMetrics(rig.sw, []).register?.(registry);
    const text = await registry.metrics();
    for (const [cause, n] of Object.entries({ ...want, short: 3n }))
      expect(text).toContain(`vhost_user_switch_vxlan_dropped_total{cause="${cause}"} ${n}`);
    expect(rig.sw.detachVxlan(second.ports[0])).toBe(true);
    expect(await until(() => logs.length >= 6, 3_000), `six warnings, got: ${logs.join(' | ')}`).toBe(true);
    expect(logs.length).toBe(6); // each cause once per uplink: five on the first, one on the second
    for (const cause of ['no remote', 'shorter', 'I flag', 'another VNI', 'longer']) expect(logs.join('\n')).toContain(cause);
    // Still serving: a ping through remote 2.
    const mac2 = await resolve(HOSTS[1].overlay);
    await rig.send(0, [icmpEcho(GUEST, HOSTS[1].overlay, mac2, 0x66, 1)]);
    expect(await until(() => rig.guests[0].received.some((f) => readEchoReply(f)?.id === 0x66), 5_000)).toBe(true);
  });

  it('forgets the MACs behind a detached uplink at once; the CLI refuses an --mtu the underlay cannot carry', () => {
    expect(rig.sw.detachVxlan(info.ports[1])).toBe(true);
    expect(rig.sw.macTable().some((e) => e.port.startsWith('vxlan:'))).toBe(false);
    expect(rig.sw.ports().map((p) => p.name)).toEqual(['g1', 'g2']);
    expect(rig.sw.detachVxlan(info.ports[0])).toBe(false);
    const cli = path.resolve(__dirname, '../dist/cli.js');
    const args = [
      'switch',
      '--socket',
      path.join('/tmp', `vhu-vx-${process.pid}.sock`),
      '--vxlan',
      HOSTS[0].there,
      '--vni',
      '7',
      '--local',
      LOCAL,
    ];
    const r = spawnSync(process.execPath, [cli, ...args, '--mtu', '1500'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(
      'vhost-user: --mtu 1500 does not fit VXLAN: the underlay toward the remotes carries guest frames of MTU 1450 at most ' +
        "(its MTU minus the encapsulation); give --mtu 1450 or less, or raise the underlay's MTU",
    );
  });
});

describe.skipIf(skip)('switch VXLAN uplink over IPv6', () => {
  const ns = `vhu-vx6-${process.pid}`;
  const veth = `vhuvx6${ID}`;
  let rig: SwitchRig | undefined;

  afterAll(() => {
    rig?.close();
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    spawnSync('ip', ['link', 'del', veth], { stdio: 'ignore' });
  });

  it('reaches a Linux vxlan device over an IPv6 underlay; allows MTU 1430 (1500 - 70)', async () => {
    const ipn = (...args: string[]) => run('ip', ['-n', ns, ...args]);
    run('ip', ['netns', 'add', ns]);
    run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', ns]);
    run('ip', ['addr', 'add', 'fd97::1/64', 'dev', veth, 'nodad']);
    run('ip', ['link', 'set', veth, 'up']);
    ipn('addr', 'add', 'fd97::2/64', 'dev', 'ul0', 'nodad');
    ipn('link', 'set', 'ul0', 'up');
    ipn('link', 'add', 'vx0', 'type', 'vxlan', 'id', String(VNI), 'remote', 'fd97::1', 'local', 'fd97::2', 'dstport', '4789', 'dev', 'ul0');
    ipn('addr', 'add', '10.96.6.11/24', 'dev', 'vx0');
    ipn('link', 'set', 'vx0', 'up');
    rig = await startSwitchRig({ vlans: [1] });
    const info = rig.sw.attachVxlan({ remotes: ['[fd97::2]'], vni: VNI, local: 'fd97::1' });
    expect(info.mtu).toBe(1430);
    expect(rig.sw.ports().find((p) => p.port === info.ports[0])?.name).toBe('vxlan:[fd97::2]:4789');
    const r = rig;
    await r.send(0, [arpRequest('10.96.6.2', '10.96.6.11')]);
    expect(await until(() => r.guests[0].received.some((f) => readArpReply(f)?.senderIp === '10.96.6.11'), 5_000)).toBe(true);
  });
});
