/**
 * Hostile guests on a switch (native/net/switch/): one that floods while two others talk, one that
 * never posts receive buffers, one that writes bad descriptors, one whose memory shrinks under the
 * switch's thread (SIGBUS, as the sender and as a receiver). Each costs only its own frames: the
 * others' all arrive. And ports attached and detached over and over leave no fd or mapping behind.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VhostUserBackend } from '../../lib/backend';
import { native } from '../../lib/binding';
import { GuestMemory } from '../../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../../lib/frontend/net_driver';
import { Switch } from '../../lib/net/switch';
import { countGuestMappings, fdKinds } from '../helpers/frames';
import { BROADCAST, startSwitchRig, tagged, tagsOf, type SwitchRig } from '../helpers/switch_rig';
import { until } from '../helpers/until';

const F_NEXT = 1;
const HDR = 12;
const REGION = 16 << 20; // GuestMemory's default: two regions, at 0 and at 4 GiB
const REGION1_GPA = 0x1_0000_0000;

let rig: SwitchRig | undefined;
afterEach(() => {
  rig?.close();
  rig = undefined;
});

/** g`from` sends `count` frames to g`to` in batches, each batch waited for; returns what was sent. */
async function exchange(r: SwitchRig, from: number, to: number, count: number): Promise<Buffer[]> {
  const a = r.guests[from];
  const b = r.guests[to];
  const sent: Buffer[] = [];
  for (let i = 1; i <= count; i += 32) {
    const batch = Array.from({ length: Math.min(32, count - i + 1) }, (_, k) => tagged(b.mac, a.mac, a.n, i + k, 60 + ((i + k) % 1400)));
    sent.push(...batch);
    await r.send(from, batch);
    expect(await r.waitFor(to, `${a.n}:${i + batch.length - 1}`), `batch ${i} from g${a.n} to g${b.n}`).toBe(true);
  }
  return sent;
}

const fromOf = (g: { received: Buffer[] }, n: number) =>
  g.received.filter((f) => f.length >= 20 && f.readUInt16BE(14) === n && f.readUInt32BE(16) < 1_000_000);

describe('switch with a hostile guest', () => {
  it('a guest flooding a receiver that posts no buffers costs that receiver drops; two others still get every frame', async () => {
    // g1 floods unicast to g4, which never posts a receive buffer; g2 and g3 talk meanwhile.
    rig = await startSwitchRig({ vlans: [1, 1, 1, 1], drivers: [{}, {}, {}, { rxBuffers: 0 }] });
    const r = rig;
    const [g1, g2, g3, g4] = r.guests;
    await r.send(3, [tagged(g1.mac, g4.mac, 4, 0)]); // g4 learnt
    await r.settle(3, [0, 1, 2]);
    await r.send(1, [tagged(g3.mac, g2.mac, 2, 0)]);
    await r.send(2, [tagged(g2.mac, g3.mac, 3, 0)]);
    await r.settle(1, [0, 2]);
    await r.settle(2, [0, 1]);
    let flooding = true;
    let flooded = 0;
    const flood = (async () => {
      const d = g1.driver;
      while (flooding) {
        while (d.txSpace > 0) d.send(tagged(g4.mac, g1.mac, 1, ++flooded));
        d.flush();
        await d.waitTxSpace();
      }
    })();
    const [to3, to2] = await Promise.all([exchange(r, 1, 2, 2000), exchange(r, 2, 1, 2000)]);
    flooding = false;
    await flood;
    await r.settle(0, [1, 2]);
    const got3 = fromOf(g3, 2).slice(1);
    const got2 = fromOf(g2, 3).slice(1);
    expect(got3.length).toBe(2000);
    expect(got2.length).toBe(2000);
    expect(got3.every((f, i) => f.equals(to3[i]))).toBe(true);
    expect(got2.every((f, i) => f.equals(to2[i]))).toBe(true);
    // None of g1's unicast reached anyone else; every copy for g4 was dropped and counted there.
    expect(tagsOf(g2).filter((t) => t.startsWith('1:'))).toEqual([]);
    expect(flooded).toBeGreaterThan(0);
    const tx1 = g1.backend.device.stats()[1];
    const rx4 = g4.backend.device.stats()[0];
    expect(tx1.packets).toBe(BigInt(flooded) + 1n); // and its marker
    expect(rx4.drops).toBe(BigInt(flooded) + 1n + 2n + 1n); // g1's, and the markers of g1, g2 and g3 before
    expect(rx4.packets).toBe(0n);
    for (const g of [g2, g3]) expect(g.backend.device.stats()[0].drops).toBe(0n);
    expect(r.warnings).toEqual([]);
  });

  it("counts a guest's bad descriptors and skips them; its good frames and the others' go on", async () => {
    rig = await startSwitchRig({ vlans: [1, 1, 1] });
    const r = rig;
    const [g1, g2] = r.guests;
    const tx = g1.driver.rings.tx;
    const errors = () => g1.backend.device.stats()[1].errors;
    const frame = tagged(BROADCAST, g1.mac, 1, 0);
    const gpa = g1.memory.alloc(HDR + frame.length, 64);
    const view = g1.memory.view(gpa, HDR + frame.length);
    view.fill(0, 0, HDR);
    frame.copy(view, HDR);
    const chains: [string, (ids: number[]) => void][] = [
      ['a buffer past the last region', ([a]) => tx.writeRawDescriptor(a, 0x2_0000_0000, 100, 0, 0)],
      ['a chain shorter than the header', ([a]) => tx.writeRawDescriptor(a, gpa, 8, 0, 0)],
      ['a frame shorter than an Ethernet header', ([a]) => tx.writeRawDescriptor(a, gpa, HDR + 12, 0, 0)],
      ['a descriptor loop', ([a, b]) => (tx.writeRawDescriptor(a, gpa, HDR, F_NEXT, b), tx.writeRawDescriptor(b, gpa, 60, F_NEXT, a))],
    ];
    for (const [i, [what, write]] of chains.entries()) {
      const before = errors();
      const ids = tx.reserveDescriptors(2);
      write(ids);
      tx.pushRawHead(ids[0]);
      g1.driver.flush();
      g1.driver.kickTx();
      expect(await until(() => errors() > before), `${what}: counted`).toBe(true);
      expect(errors()).toBe(before + 1n);
      await r.send(0, [tagged(g2.mac, g1.mac, 1, i + 1)]);
      expect(await r.waitFor(1, `1:${i + 1}`), `${what}: a good frame after it`).toBe(true);
    }
    await r.send(1, [tagged(g1.mac, g2.mac, 2, 1)]);
    expect(await r.waitFor(0, '2:1')).toBe(true);
  });

  it("survives SIGBUS in a sender's memory: that device stops, the others go on", async () => {
    rig = await startSwitchRig({ vlans: [1, 1, 1], memories: [{ sealed: false }] });
    const r = rig;
    const [g1] = r.guests;
    native.ftruncate(g1.memory.fd, REGION); // region 1 is gone
    const tx = g1.driver.rings.tx;
    const [d] = tx.reserveDescriptors(1);
    tx.writeRawDescriptor(d, REGION1_GPA + 4096, 200, 0, 0); // a frame in the lost pages
    tx.pushRawHead(d);
    g1.driver.flush();
    g1.driver.kickTx();
    expect(await until(() => r.warnings.some((w) => /^g1: .*guest memory faulted \(SIGBUS\)/.test(w)))).toBe(true);
    await exchange(r, 1, 2, 200);
    await exchange(r, 2, 1, 200);
    expect(r.warnings.filter((w) => !w.startsWith('g1:'))).toEqual([]);
    expect(fromOf(g1, 2).length + fromOf(g1, 3).length).toBe(0); // g1 is served no more
  });

  it("survives SIGBUS in a receiver's memory: that device stops, the sender's frame is dropped, the rest goes on", async () => {
    // g1's receive buffers live in region 1, which is cut off before anything reaches it.
    rig = await startSwitchRig({ vlans: [1, 1, 1], memories: [{ sealed: false }], drivers: [{ bufferRegions: { rx: 1 } }] });
    const r = rig;
    const [g1, g2, g3] = r.guests;
    native.ftruncate(g1.memory.fd, REGION);
    await r.send(1, [tagged(BROADCAST, g2.mac, 2, 1)]);
    expect(await until(() => r.warnings.some((w) => /^g1: .*guest memory faulted \(SIGBUS\)/.test(w)))).toBe(true);
    expect(await until(() => g2.backend.device.stats()[1].drops === 1n)).toBe(true);
    await exchange(r, 1, 2, 200);
    await exchange(r, 2, 1, 200);
    expect(r.warnings.filter((w) => !w.startsWith('g1:'))).toEqual([]);
    expect(g1.received.length).toBe(0);
    expect(g3.backend.device.stats()[0].drops).toBe(0n);
  });
});

describe('switch attach and detach cycles', () => {
  it('leave no fd or mapping behind, whichever order things end in', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-switch-cycles-'));
    const sw = new Switch();
    const peerMemory = new GuestMemory();
    const peer = new VhostUserBackend({ socketPath: path.join(dir, 'peer.sock'), device: { port: 'switch' } });
    sw.attach(peer, { name: 'peer' });
    peer.start();
    const seen: Buffer[] = [];
    const peerDriver = await VirtioNetDriver.start({ socketPath: peer.socketPath, memory: peerMemory, onFrames: (f) => seen.push(...f) });
    const cycle = async (i: number) => {
      const memory = new GuestMemory();
      const backend = new VhostUserBackend({ socketPath: path.join(dir, `c${i}.sock`), device: { port: 'switch' } });
      // Every third cycle also has a switch of its own that closes with the device still on it.
      const own = i % 3 === 2 ? new Switch() : sw;
      own.attach(backend);
      backend.start();
      const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory });
      if (own === sw) {
        driver.send(tagged(BROADCAST, Buffer.from([2, 0xcc, 0, 0, 0, i]), 9, i));
        driver.flush();
        expect(await until(() => seen.some((f) => f.length >= 20 && f.readUInt32BE(16) === i))).toBe(true);
      }
      if (i % 3 === 0) {
        driver.close();
        expect(sw.detach(backend)).toBe(true);
        backend.close();
      } else if (i % 3 === 1) {
        backend.close(); // still attached: closing releases it
        driver.close();
      } else {
        own.close();
        driver.close();
        backend.close();
      }
      memory.close();
    };
    await cycle(0);
    const fdsBefore = fdKinds();
    const mapsBefore = countGuestMappings();
    for (let i = 1; i <= 30; i++) await cycle(i);
    expect(await until(() => JSON.stringify(fdKinds()) === JSON.stringify(fdsBefore))).toBe(true);
    expect(countGuestMappings()).toBe(mapsBefore);
    expect(sw.ports().map((p) => p.name)).toEqual(['peer']);
    expect(sw.macTable().map((e) => e.port)).toEqual([]);
    peerDriver.close();
    peer.close();
    peerMemory.close();
    sw.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
