/**
 * DEVICE_STATE (item 4 of #14) with our own front-end in the role of QEMU, which 7.2 does not do:
 * every ring stopped on one back-end (GET_VRING_BASE), its state saved through a pipe
 * (SET_DEVICE_STATE_FD, CHECK_DEVICE_STATE), loaded into another back-end before its rings start.
 * A user port's forwards and DHCP leases (libslirp's own state) and a switch port's learnt MACs are
 * there afterwards; a port without state carries an empty blob; a running device refuses.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as path from 'node:path';
import { freePort } from '../lib/bench/usernet/transfer';
import { VhostUserBackend } from '../lib/backend';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { decodeDeviceState } from '../lib/net/device_state';
import type { NetDeviceOptions } from '../lib/net/device';
import { Switch } from '../lib/net/switch';
import { useBackendFixture } from './helpers/fixture';
import { macSwapped, makeFrame } from './helpers/frames';
import { GUEST_MAC, dhcpDiscover, readDhcpReply, readTcpSyn } from './helpers/ip_frames';
import { hasLibrary, missing, skipUnless } from './helpers/peers';
import { tagged, macOf, BROADCAST } from './helpers/switch_rig';
import { lease, userGuest } from './helpers/user_guest';
import { until } from './helpers/until';

const fx = useBackendFixture();
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** Another back-end in the fixture's directory, closed after the test; its warnings collected. */
function backend(name: string, device: NetDeviceOptions, warnings: string[] = [], infos: string[] = []): VhostUserBackend {
  const b = new VhostUserBackend({
    socketPath: path.join(fx.dir, `${name}.sock`),
    device,
    log: (level, m) => (level === 'warn' ? warnings : infos).push(m),
  });
  b.start();
  cleanups.push(() => b.close());
  return b;
}

/** Stops every ring of the driver's current back-end, as a migration does before saving. */
async function stopRings(driver: VirtioNetDriver): Promise<void> {
  for (let q = 0; q < 2 * driver.queuePairs; q++) await driver.vringBase(q);
}

const skipUser = skipUnless(missing([[hasLibrary('libslirp.so.0'), 'libslirp (Debian package libslirp0)']]), 'user port');

describe.skipIf(skipUser)('device state of the user port', () => {
  it("carries the forwards and libslirp's leases; a forward waits while the source holds its port", async () => {
    const hostPort = await freePort();
    const g = await userGuest(fx, {});
    const offered = await lease(g);
    expect(offered.yiaddr).toBe('10.0.2.15');
    // A second guest MAC takes the second lease: libslirp's table has two clients now.
    const other = Buffer.from('525400abcdef', 'hex');
    g.send(withMac(dhcpDiscover(0x5678), other));
    expect((await g.receive(readDhcpReply, 'second DHCPOFFER')).yiaddr).toBe('10.0.2.16');
    g.backend.device.addForward(`tcp:127.0.0.1:${hostPort}:8023`);

    const infos: string[] = [];
    const warnings: string[] = [];
    const dest = backend('dest', { port: 'user' }, warnings, infos);
    await g.driver.handOver(dest.socketPath, { deviceState: true });
    expect(infos.some((m) => /device state loaded .*the user port's state: 1 forward\(s\); waiting/.test(m))).toBe(true);
    // On one host the source still listens on the forward's port: the destination waits for it.
    expect(dest.device.waitingForwards()).toEqual([`tcp:127.0.0.1:${hostPort}:8023`]);
    const saved = decodeDeviceState(dest.device.saveState(), 'user');
    expect(saved.forwards).toEqual([`tcp:127.0.0.1:${hostPort}:8023`]);
    expect(saved.slirpVersion).toBeGreaterThan(0);

    // The source goes (as its QEMU quits): the destination takes the port and the forward reaches the guest.
    fx.backend.close();
    expect(await until(() => dest.device.waitingForwards().length === 0, 5000)).toBe(true);
    // Said in the device's notices, which the back-end logs as information (unless this test takes them
    // first); nothing went wrong, so no warning.
    const said = [...dest.device.takeNotices(), ...infos.filter((m) => m.includes('is open'))];
    expect(said).toEqual([expect.stringMatching(`forward tcp:127.0.0.1:${hostPort}:8023 from the loaded device state is open`)]);
    expect(dest.device.takeEvents()).toEqual([]);

    // libslirp's leases came along: the second MAC gets its own address back, not the first free one.
    g.send(withMac(dhcpDiscover(0x9abc), other));
    expect((await g.receive(readDhcpReply, 'DHCPOFFER from the destination')).yiaddr).toBe('10.0.2.16');
    // libslirp's ARP table is not in its state: the guest's DHCP teaches it (a real guest answers ARP).
    await lease(g);
    const client = net.connect(hostPort, '127.0.0.1');
    client.on('error', () => {});
    const syn = await g.receive(readTcpSyn, 'TCP SYN through the destination');
    client.destroy();
    expect(syn.dstPort).toBe(8023);
    expect(fx.warnings.concat(warnings)).toEqual([]);
    g.driver.close();
  });

  it('a destination without the state offers the first free lease (the control)', async () => {
    const g = await userGuest(fx, {});
    await lease(g);
    const other = Buffer.from('525400abcdef', 'hex');
    g.send(withMac(dhcpDiscover(0x5678), other));
    expect((await g.receive(readDhcpReply, 'second DHCPOFFER')).yiaddr).toBe('10.0.2.16');
    const dest = backend('dest', { port: 'user' });
    await g.driver.handOver(dest.socketPath);
    g.send(withMac(dhcpDiscover(0x9abc), other));
    expect((await g.receive(readDhcpReply, 'DHCPOFFER from the destination')).yiaddr).toBe('10.0.2.15');
    g.driver.close();
  });

  it("refuses another port kind's state, saying whose it was", async () => {
    const g = await userGuest(fx, {});
    const warnings: string[] = [];
    const dest = backend('dest', { port: 'loopback' }, warnings);
    await expect(g.driver.handOver(dest.socketPath, { deviceState: true })).rejects.toThrow(/CHECK_DEVICE_STATE failed: EBADMSG/);
    expect(warnings.join('\n')).toMatch(/saved by a device of port 'user', this device's port is 'loopback'/);
    g.driver.close();
  });
});

describe('device state of the switch port', () => {
  it("the MACs learnt behind the source's port are learnt behind the destination's, in its own switch", async () => {
    const sw1 = new Switch();
    const sw2 = new Switch();
    cleanups.push(
      () => sw1.close(),
      () => sw2.close(),
    );
    const [a, peer1, c, peer2] = ['a', 'peer1', 'c', 'peer2'].map((n) => backend(n, { port: 'switch' }));
    sw1.attach(a);
    sw1.attach(peer1);
    sw2.attach(c);
    sw2.attach(peer2);
    const received: Buffer[] = [];
    const driver = await VirtioNetDriver.start({ socketPath: a.socketPath, memory: fx.memory, onFrames: (f) => received.push(...f) });
    cleanups.push(() => driver.close());
    // A guest with three MACs (its own and two behind a bridge inside it).
    const macs = [macOf(1), macOf(10), macOf(11)];
    for (const [i, mac] of macs.entries()) driver.send(tagged(BROADCAST, mac, 1, i));
    driver.flush();
    const learnt = (sw: Switch, socket: string) =>
      sw
        .macTable()
        .filter((e) => e.port === socket)
        .map((e) => e.mac)
        .sort();
    const texts = macs.map((m) => [...m].map((b) => b.toString(16).padStart(2, '0')).join(':')).sort();
    expect(await until(() => learnt(sw1, a.socketPath).length === 3)).toBe(true);

    await driver.handOver(c.socketPath, { deviceState: true });
    // Before the guest sends anything on the destination, its switch knows where its MACs are.
    expect(learnt(sw2, c.socketPath)).toEqual(texts);
    // A frame from the other guest to one of them goes to the destination alone, not flooded.
    const memory = new GuestMemory();
    cleanups.push(() => memory.close());
    const other = await VirtioNetDriver.start({ socketPath: peer2.socketPath, memory });
    cleanups.push(() => other.close());
    const flooded = sw2.counters().flooded;
    other.send(tagged(macOf(10), macOf(2), 2, 0));
    other.flush();
    expect(await until(() => received.some((f) => f.subarray(0, 6).equals(macOf(10))))).toBe(true);
    expect(sw2.counters().flooded).toBe(flooded);
  });

  it('without the state the destination learns nothing until the guest sends (the control)', async () => {
    const sw = new Switch();
    cleanups.push(() => sw.close());
    const [a, c] = ['a', 'c'].map((n) => backend(n, { port: 'switch' }));
    sw.attach(a);
    const sw2 = new Switch();
    cleanups.push(() => sw2.close());
    sw2.attach(c);
    const driver = await VirtioNetDriver.start({ socketPath: a.socketPath, memory: fx.memory });
    cleanups.push(() => driver.close());
    driver.send(tagged(BROADCAST, macOf(1), 1, 0));
    driver.flush();
    expect(await until(() => sw.macTable().length === 1)).toBe(true);
    await driver.handOver(c.socketPath);
    expect(sw2.macTable()).toEqual([]);
  });
});

describe('device state of a port without state', () => {
  it('an empty, valid blob goes over and traffic resumes', async () => {
    const first = fx.start();
    const infos: string[] = [];
    const second = backend('second', { port: 'loopback' }, [], infos);
    const got: Buffer[] = [];
    const driver = await VirtioNetDriver.start({ socketPath: first.socketPath, memory: fx.memory, onFrames: (f) => got.push(...f) });
    cleanups.push(() => driver.close());
    driver.send(makeFrame(0));
    driver.flush();
    expect(await until(() => got.length === 1)).toBe(true);
    await driver.handOver(second.socketPath, { deviceState: true });
    expect(infos).toContain("device state loaded (15 bytes): the loopback port's state: nothing to carry");
    driver.send(makeFrame(1));
    driver.flush();
    expect(await until(() => got.length === 2)).toBe(true);
    expect(got[1].equals(macSwapped(makeFrame(1)))).toBe(true);
    expect(fx.warnings).toEqual([]);
  });

  it('refuses while a ring runs, with the reason logged, and serves on', async () => {
    fx.start();
    const got: Buffer[] = [];
    const driver = await VirtioNetDriver.start({ socketPath: fx.backend.socketPath, memory: fx.memory, onFrames: (f) => got.push(...f) });
    cleanups.push(() => driver.close());
    await expect(driver.control.saveState()).rejects.toThrow(/refused SET_DEVICE_STATE_FD: EBUSY/);
    await expect(driver.control.loadState(Buffer.alloc(0))).rejects.toThrow(/refused SET_DEVICE_STATE_FD: EBUSY/);
    expect(fx.warnings).toEqual([
      'SET_DEVICE_STATE_FD refused: a ring still runs: stop every ring with GET_VRING_BASE before transferring the device state',
      'SET_DEVICE_STATE_FD refused: a ring still runs: stop every ring with GET_VRING_BASE before transferring the device state',
    ]);
    driver.send(makeFrame(0));
    driver.flush();
    expect(await until(() => got.length === 1)).toBe(true);
    // Once the rings are stopped the same device saves.
    await stopRings(driver);
    expect(decodeDeviceState(await driver.control.saveState(), 'loopback').port).toBe('loopback');
  });
});

/** A frame with `mac` as its Ethernet source and, for a DHCP request, its client hardware address. */
function withMac(frame: Buffer, mac: Buffer): Buffer {
  const f = Buffer.from(frame);
  mac.copy(f, 6);
  if (f.subarray(14 + 20 + 8 + 28, 14 + 20 + 8 + 34).equals(GUEST_MAC)) mac.copy(f, 14 + 20 + 8 + 28);
  return f;
}
