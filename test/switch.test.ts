/**
 * The switch (lib/net/switch.ts, native/net/switch/) with three and four of our own front-ends:
 * flooding of unknown unicast, broadcast and multicast; learned unicast to one port only; VLANs kept
 * apart; a MAC that moves relearnt; a detached or disconnected port forgotten at once; bytes and
 * counters exact; ageing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NetDevice } from '../lib/net/device';
import { Request } from '../lib/protocol/constants';
import { Switch } from '../lib/net/switch';
import { readPcap } from './helpers/pcap';
import { until } from './helpers/until';
import { BROADCAST, MULTICAST, startSwitchRig, tagged, tagsOf, type SwitchRig } from './helpers/switch_rig';

let rig: SwitchRig | undefined;
afterEach(() => {
  rig?.close();
  rig = undefined;
});

/** g1..g3 on one VLAN. */
async function three(): Promise<SwitchRig> {
  rig = await startSwitchRig({ vlans: [1, 1, 1] });
  return rig;
}

describe('switch of three front-ends', () => {
  it('floods unknown unicast to both others, then sends learned unicast to its port only', async () => {
    const r = await three();
    const [g1, g2, g3] = r.guests;
    // g2's MAC is unknown yet: g1's frame to it floods to g2 and g3.
    await r.send(0, [tagged(g2.mac, g1.mac, 1, 1)]);
    expect(await r.waitFor(1, '1:1')).toBe(true);
    expect(await r.waitFor(2, '1:1')).toBe(true);
    // g2 answers: g1 is known (it sent), so only g1 gets it; and now g2 is known too.
    await r.send(1, [tagged(g1.mac, g2.mac, 2, 1)]);
    await r.settle(1, [0, 2]);
    await r.send(0, [tagged(g2.mac, g1.mac, 1, 2)]);
    await r.settle(0, [1, 2]);
    expect(tagsOf(g1)).toEqual(['2:1']);
    expect(tagsOf(g2)).toEqual(['1:1', '1:2']);
    expect(tagsOf(g3)).toEqual(['1:1']);
    expect(
      r.sw
        .macTable()
        .map((e) => `${e.mac} ${e.vlan} ${e.port}`)
        .sort(),
    ).toEqual(['02:00:00:00:00:01 1 g1', '02:00:00:00:00:02 1 g2']);
    expect(r.sw.counters()).toMatchObject({ macs: 2, refused: 0n, moves: 0n });
    expect(r.warnings).toEqual([]);
  });

  it('sends broadcast and multicast to every other port, never back to the sender', async () => {
    const r = await three();
    const [g1, g2, g3] = r.guests;
    await r.send(0, [tagged(BROADCAST, g1.mac, 1, 1), tagged(MULTICAST, g1.mac, 1, 2)]);
    await r.send(2, [tagged(BROADCAST, g3.mac, 3, 1)]);
    await r.settle(0, [1, 2]);
    await r.settle(2, [0, 1]);
    expect(tagsOf(g1)).toEqual(['3:1']);
    // g1's and g3's frames meet at g2 in either order, each sender's in its own order.
    expect(tagsOf(g2).filter((t) => t.startsWith('1:'))).toEqual(['1:1', '1:2']);
    expect(tagsOf(g2).sort()).toEqual(['1:1', '1:2', '3:1']);
    expect(tagsOf(g3)).toEqual(['1:1', '1:2']);
    const rx2 = g2.backend.device.stats()[0];
    expect(rx2.broadcast).toBe(2n + 2n); // and the two markers
    expect(rx2.multicast).toBe(1n);
  });
});

describe('switch VLANs', () => {
  it('keeps two VLANs apart: broadcast, unknown and known unicast stay in their VLAN', async () => {
    rig = await startSwitchRig({ vlans: [10, 10, 20, 20] });
    const r = rig;
    const [g1, g2, g3, g4] = r.guests;
    // g3 is learnt in VLAN 20; in VLAN 10 its MAC is still unknown.
    await r.send(2, [tagged(BROADCAST, g3.mac, 3, 1)]);
    await r.send(0, [tagged(BROADCAST, g1.mac, 1, 1), tagged(g3.mac, g1.mac, 1, 2), tagged(g4.mac, g1.mac, 1, 3)]);
    await r.send(3, [tagged(g1.mac, g4.mac, 4, 1), tagged(g3.mac, g4.mac, 4, 2)]);
    await r.settle(0, [1]);
    await r.settle(2, [3]);
    await r.settle(3, [2]);
    expect(tagsOf(g1)).toEqual([]);
    expect(tagsOf(g2)).toEqual(['1:1', '1:2', '1:3']);
    expect(tagsOf(g3)).toEqual(['4:1', '4:2']);
    expect(tagsOf(g4)).toEqual(['3:1']);
    // Markers too: nothing of one VLAN ever reached the other.
    const from = (...gs: { received: Buffer[] }[]) => [...new Set(gs.flatMap((g) => g.received.map((f) => f.readUInt16BE(14))))].sort();
    expect(from(g1, g2)).toEqual([1]);
    expect(from(g3, g4)).toEqual([3, 4]);
    const table = r.sw.macTable().map((e) => `${e.mac.slice(-2)} ${e.vlan} ${e.port}`);
    expect(table.sort()).toEqual(['01 10 g1', '03 20 g3', '04 20 g4']);
  });
});

describe('switch learning', () => {
  it('relearns a MAC that moves to another port', async () => {
    const r = await three();
    const [g1, g2, g3] = r.guests;
    const roaming = Buffer.from('02aa00000001', 'hex');
    await r.send(0, [tagged(BROADCAST, roaming, 1, 1)]);
    await r.settle(0, [1, 2]);
    expect(r.sw.macTable().find((e) => e.mac === '02:aa:00:00:00:01')?.port).toBe('g1');
    await r.send(1, [tagged(roaming, g2.mac, 2, 1)]);
    await r.settle(1, [0, 2]);
    // The MAC moves to g3: frames to it follow.
    await r.send(2, [tagged(BROADCAST, roaming, 3, 1)]);
    await r.settle(2, [0, 1]);
    await r.send(1, [tagged(roaming, g2.mac, 2, 2)]);
    await r.settle(1, [0, 2]);
    expect(tagsOf(g1)).toEqual(['2:1', '3:1']);
    expect(tagsOf(g3)).toEqual(['1:1', '2:2']);
    expect(r.sw.macTable().find((e) => e.mac === '02:aa:00:00:00:01')?.port).toBe('g3');
    expect(r.sw.counters().moves).toBe(1n);
  });

  it('announces a guest that migrated to another port (SEND_RARP): learnt there, heard by the others', async () => {
    const r = await three();
    const [g1, g2, g3] = r.guests;
    const moved = Buffer.from('02bb00000001', 'hex');
    await r.send(0, [tagged(BROADCAST, moved, 1, 1)]);
    await r.settle(0, [1, 2]);
    expect(r.sw.macTable().find((e) => e.mac === '02:bb:00:00:00:01')?.port).toBe('g1');
    // The guest now runs behind g3's socket: its front-end (QEMU after a migration) sends SEND_RARP.
    await g3.driver.control.request({ request: Request.SEND_RARP, mac: moved }, { needReply: true });
    const isRarp = (f: Buffer) => f.length === 60 && f.readUInt16BE(12) === 0x8035;
    expect(await until(() => g1.received.some(isRarp) && g2.received.some(isRarp))).toBe(true);
    const rarp = g2.received.find(isRarp)!;
    expect(rarp.subarray(0, 6)).toEqual(BROADCAST);
    expect(rarp.subarray(6, 12)).toEqual(moved);
    expect(rarp.readUInt16BE(20)).toBe(3); // reverse request, as QEMU's own back-ends send it
    expect(rarp.subarray(22, 28)).toEqual(moved);
    expect(rarp.subarray(32, 38)).toEqual(moved);
    expect(g3.received.some(isRarp)).toBe(false); // not back to where it came in
    expect(r.sw.macTable().find((e) => e.mac === '02:bb:00:00:00:01')?.port).toBe('g3');
    expect(r.sw.counters().moves).toBe(1n);
    await r.send(1, [tagged(moved, g2.mac, 2, 1)]);
    expect(await r.waitFor(2, '2:1')).toBe(true);
    await r.settle(1, [0, 2]);
    expect(tagsOf(g1).filter((t) => t === '2:1')).toEqual([]);
    // A device with no network to tell says so (the handler logs it).
    const loopback = new NetDevice({ port: 'loopback' });
    expect(loopback.announce(moved)).toBe('guest 02:bb:00:00:00:01 arrived: the loopback port has no network to announce it to');
    loopback.close();
  });

  it('forgets a detached port at once: frames to it flood again, and it gets none', async () => {
    const r = await three();
    const [g1, g2, g3] = r.guests;
    await r.send(1, [tagged(g1.mac, g2.mac, 2, 1)]);
    await r.settle(1, [0, 2]);
    expect(r.sw.macTable().map((e) => e.port)).toContain('g2');
    expect(r.sw.detach(g2.backend)).toBe(true);
    expect(r.sw.macTable().map((e) => e.port)).not.toContain('g2');
    expect(r.sw.ports().map((p) => p.name)).toEqual(['g1', 'g3']);
    await r.send(0, [tagged(g2.mac, g1.mac, 1, 1)]);
    await r.settle(0, [2]);
    expect(tagsOf(g3)).toEqual(['2:1', '1:1']); // flooded, to the one port left
    expect(tagsOf(g2)).toEqual([]);
    // Attached again (another VLAN, then back), it is a port like any other.
    r.sw.attach(g2.backend, { vlan: 1, name: 'g2' });
    await r.send(0, [tagged(BROADCAST, g1.mac, 1, 2)]);
    expect(await r.waitFor(1, '1:2')).toBe(true);
    expect(r.sw.detach(g2.backend)).toBe(true);
    expect(r.sw.detach(g2.backend)).toBe(false);
  });

  it('forgets the MACs of a port whose front-end disconnects, and learns them again after', async () => {
    const r = await three();
    const [g1, g2] = r.guests;
    await r.send(1, [tagged(g1.mac, g2.mac, 2, 1)]);
    await r.settle(1, [0, 2]);
    expect(r.sw.macTable().map((e) => e.port)).toContain('g2');
    g2.driver.close();
    expect(await until(() => !g2.backend.connected)).toBe(true);
    expect(r.sw.macTable().map((e) => e.port)).not.toContain('g2');
    await r.send(0, [tagged(g2.mac, g1.mac, 1, 1)]);
    await r.settle(0, [2]);
    expect(tagsOf(r.guests[2])).toEqual(['2:1', '1:1']);
    await r.reconnect(1);
    await r.send(1, [tagged(g1.mac, g2.mac, 2, 2)]);
    expect(await r.waitFor(0, '2:2')).toBe(true);
    expect(r.sw.macTable().map((e) => e.port)).toContain('g2');
  });

  it('ages MACs out after the ageing time: frames to them flood again', async () => {
    rig = await startSwitchRig({ vlans: [1, 1, 1], switch: { ageingSeconds: 1 } });
    const r = rig;
    const [g1, g2, g3] = r.guests;
    await r.send(1, [tagged(g1.mac, g2.mac, 2, 1)]);
    await r.settle(1, [0, 2]);
    expect(
      r.sw
        .macTable()
        .map((e) => e.port)
        .sort(),
    ).toEqual(['g2']);
    expect(await until(() => r.sw.macTable().length === 0, 4000)).toBe(true);
    await r.send(0, [tagged(g2.mac, g1.mac, 1, 1)]);
    await r.settle(0, [1, 2]);
    expect(tagsOf(g3)).toEqual(['2:1', '1:1']);
  });

  it('refuses new MACs beyond the table size, counted, and still delivers their frames', async () => {
    rig = await startSwitchRig({ vlans: [1, 1, 1], switch: { maxMacs: 4 } });
    const r = rig;
    const frames = Array.from({ length: 10 }, (_, i) => tagged(BROADCAST, Buffer.from([2, 0xbb, 0, 0, 0, i]), 1, i));
    await r.send(0, frames);
    await r.settle(0, [1, 2]);
    expect(tagsOf(r.guests[1]).length).toBe(10);
    const c = r.sw.counters();
    expect(c.macs).toBe(4);
    expect(c.refused).toBe(6n + 1n); // and the marker's sender
    expect(r.sw.macTable().length).toBe(4);
  });
});

describe('switch frames and counters', () => {
  const cases = [
    { name: 'split rings, MRG_RXBUF', a: {}, b: {} },
    { name: 'no MRG_RXBUF on the receiver, no EVENT_IDX', a: {}, b: { mrgRxbuf: false, eventIdx: false } },
    { name: 'packed sender, split receiver with 256-byte buffers', a: { packed: true }, b: { rxBufferSize: 256 } },
    { name: 'split sender, packed IN_ORDER receiver', a: {}, b: { packed: true, inOrder: true } },
  ];
  for (const c of cases) {
    it(`carries 3,000 frames of 60..1514 bytes intact, each counted once (${c.name})`, async () => {
      rig = await startSwitchRig({ vlans: [1, 1, 1], drivers: [c.a, c.b, {}] });
      const r = rig;
      const [g1, g2, g3] = r.guests;
      await r.send(1, [tagged(g1.mac, g2.mac, 2, 0)]); // g2 learnt: the rest is unicast to it
      await r.settle(1, [0, 2]);
      const layouts = ['single', 'split-header', 'indirect'] as const;
      const sent: Buffer[] = [];
      const d = g1.driver;
      for (let i = 1; i <= 3000; i++) {
        const f = tagged(g2.mac, g1.mac, 1, i, 60 + ((i * 7919) % 1455));
        sent.push(f);
        while (d.txSpace === 0) {
          d.flush();
          await d.waitTxSpace();
        }
        d.send(f, layouts[i % 3]);
        // Paced so that the receiver's buffers never run out (the switch drops rather than waits).
        if (i % 64 === 0) {
          d.flush();
          expect(await r.waitFor(1, `1:${i}`)).toBe(true);
        }
      }
      d.flush();
      await r.settle(0, [1, 2]);
      const got = g2.received.filter((f) => f.length >= 20 && f.readUInt16BE(14) === 1 && f.readUInt32BE(16) < 1_000_000);
      expect(got.length).toBe(3000);
      const bad = got.findIndex((f, i) => !f.equals(sent[i]));
      expect(bad).toBe(-1);
      expect(tagsOf(g3)).toEqual(['2:0']);
      const [rx1, tx1] = g1.backend.device.stats();
      const [rx2] = g2.backend.device.stats();
      const bytes = sent.reduce((n, f) => n + BigInt(f.length), 0n);
      expect(tx1.packets).toBe(3001n); // and the marker
      expect(tx1.bytes).toBe(bytes + 60n);
      expect(rx2.packets).toBe(3000n + 1n); // g1's frames and its marker
      expect(rx2.drops + rx2.errors + tx1.drops + tx1.errors + rx1.drops).toBe(0n);
      expect(r.warnings).toEqual([]);
    });
  }
});

describe('switch port devices', () => {
  it("capture a port's frames both ways like any device (its device's pcap)", async () => {
    const r = await three();
    const [g1, g2] = r.guests;
    const file = path.join(os.tmpdir(), `vhost-user-switch-${process.pid}-${Date.now()}.pcap`);
    const capture = g2.backend.device.capture(file);
    await r.send(0, [tagged(g2.mac, g1.mac, 1, 1, 100), tagged(g2.mac, g1.mac, 1, 2, 200)]);
    await r.send(1, [tagged(g1.mac, g2.mac, 2, 1, 300)]);
    await r.settle(0, [1, 2]);
    expect(await r.waitFor(0, '2:1')).toBe(true);
    const counts = await capture.stop();
    const records = readPcap(file).records;
    fs.rmSync(file, { force: true });
    const [rx, tx] = g2.backend.device.stats();
    expect(counts).toEqual({ frames: Number(rx.packets + tx.packets), dropped: 0 });
    expect(records.map((x) => x.length).sort((a, b) => a - b)).toEqual([60, 100, 200, 300]); // and g1's marker
    expect(records.find((x) => x.length === 300)?.data.equals(tagged(g1.mac, g2.mac, 2, 1, 300))).toBe(true);
  });

  it('refuses what cannot be a port: another port kind, a device on another switch, a closed switch', async () => {
    const r = await three();
    const other = new Switch();
    try {
      expect(() => other.attach(r.guests[0].backend)).toThrow('the device is on another switch: detach it first');
      expect(() => r.sw.attach(r.guests[0].backend)).toThrow('the device is on this switch already');
      const loop = new NetDevice({ port: 'loopback' });
      expect(() => other.attach(loop)).toThrow("only a device of port 'switch' joins a switch (this one's port is loopback)");
      loop.close();
      const closed = new NetDevice({ port: 'switch' });
      closed.close();
      expect(() => other.attach(closed)).toThrow('the device is closed');
      const spare = new NetDevice({ port: 'switch' });
      expect(() => other.attach(spare, { vlan: 4095 })).toThrow('VLAN must be an integer in 1..4094, got 4095');
      spare.close();
      expect(() => new Switch({ ageingSeconds: 0 })).toThrow('MAC ageing time must be an integer in 1..1000000 s, got 0');
      expect(() => new NetDevice({ port: 'switch', queuePairs: 2 })).toThrow('the switch port serves one queue pair for now');
      expect(() => new NetDevice({ port: 'switch', workers: 1 })).toThrow(
        "the switch port runs on its switch's thread: drop worker threads",
      );
    } finally {
      other.close();
    }
    expect(() => other.attach(r.guests[0].backend)).toThrow('the switch is closed');
  });
});
