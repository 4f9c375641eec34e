/**
 * The packed twins of rings.test.ts: a hostile guest writes its packed rings to hurt the device.
 * Buffer ids out of range or already held, a chain longer than the ring, buffers outside memory,
 * wrong directions, INDIRECT misused, descriptors of the wrong lap. Each bad chain is counted
 * (stats `errors`) and nothing crashes; the same queues serve well-formed frames again, the
 * device's other pair and another device keep passing traffic, and closing leaves no fd or mapping.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { VhostUserBackend } from '../../lib/backend';
import { GuestMemory } from '../../lib/frontend/guest_memory';
import { VirtioNetDriver, type NetDriverOptions } from '../../lib/frontend/net_driver';
import { availBits, usedBits, type PackedDriverRing, type RawDescriptor } from '../../lib/frontend/packed_driver_ring';
import { countGuestMappings, fdKinds, macSwapped, makeFrame } from '../helpers/frames';
import { sleep, until as waitUntil } from '../helpers/until';

const F_NEXT = 1;
const F_WRITE = 2;
const F_INDIRECT = 4;
const HDR = 12;
const SIZE = 256;
const REGION_SIZE = 16 << 20; // GuestMemory's default: two regions, at 0 and at 4 GiB

interface Rig {
  backend: VhostUserBackend;
  memory: GuestMemory;
  driver: VirtioNetDriver;
  received: Buffer[][];
  warnings: string[];
}

let dir: string;
let victim: Rig;
let bystander: Rig;
const rigs: Rig[] = [];
let fdsBefore: Record<string, number>;
let mappingsBefore: number;

async function rig(name: string, opts: Partial<NetDriverOptions> = {}): Promise<Rig> {
  const warnings: string[] = [];
  const backend = new VhostUserBackend({
    socketPath: path.join(dir, `${name}.sock`),
    device: { port: 'loopback', queuePairs: 2 },
    log: (level, m) => level === 'warn' && warnings.push(m),
  });
  backend.start();
  const memory = new GuestMemory();
  const received: Buffer[][] = [[], []];
  const driver = await VirtioNetDriver.start({
    socketPath: backend.socketPath,
    memory,
    packed: true,
    queuePairs: 2,
    queueSize: SIZE,
    rxBuffers: 100, // leaves RX descriptors free for raw buffers
    onFrames: (f, pair) => received[pair].push(...f),
    ...opts,
  });
  const r = { backend, memory, driver, received, warnings };
  rigs.push(r);
  return r;
}

/** This suite's deadline: 5000 ms. */
const until = (cond: () => boolean, ms = 5000) => waitUntil(cond, ms);

const txStats = (r: Rig, pair = 0) => r.backend.device.stats()[2 * pair + 1];
const rxStats = (r: Rig, pair = 0) => r.backend.device.stats()[2 * pair];

/** A well-formed frame still makes the round trip on the pair's queues. */
async function stillServes(r: Rig, i: number, pair = 0): Promise<void> {
  const got = r.received[pair];
  const before = got.length;
  expect(r.driver.send(makeFrame(i), 'single', pair), 'room for a valid frame').toBe(true);
  r.driver.flush();
  expect(await until(() => got.length > before), `a valid frame on pair ${pair} after the bad chain`).toBe(true);
  expect(got[got.length - 1].equals(macSwapped(makeFrame(i)))).toBe(true);
}

/** Guest memory holding a header and a frame, for raw descriptors to point at. */
function frameBuffer(r: Rig, i: number): { gpa: number; len: number } {
  const frame = makeFrame(i);
  const gpa = r.memory.alloc(HDR + frame.length, 64);
  const b = r.memory.view(gpa, HDR + frame.length);
  b.fill(0, 0, HDR);
  frame.copy(b, HDR);
  return { gpa, len: HDR + frame.length };
}

/** Ids no well-formed buffer of ours takes while a test runs (the driver hands out the low ones first). */
let nextRawId = SIZE - 1;
const rawId = () => nextRawId--;

/** Posts a raw TX chain on pair 0 and waits for the device to count exactly one error. */
async function expectTxError(r: Rig, descs: RawDescriptor[], what: string): Promise<void> {
  const errorsBefore = txStats(r).errors;
  r.driver.packedRings.tx.pushRaw(descs);
  r.driver.flush();
  r.driver.kickTx();
  expect(await until(() => txStats(r).errors > errorsBefore), `${what}: counted as an error`).toBe(true);
  await sleep(20); // a second count would show now
  expect(txStats(r).errors).toBe(errorsBefore + 1n);
}

let pumping = true;
let bystanderDone: Promise<void>;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-hostile-packed-'));
  fdsBefore = fdKinds();
  mappingsBefore = countGuestMappings();
  victim = await rig('victim');
  bystander = await rig('bystander', { rxBuffers: undefined });
  // The bystander device passes traffic for the whole file.
  bystanderDone = (async () => {
    let i = 0;
    while (pumping && bystander.driver.isOpen) {
      while (bystander.driver.txSpace > 0) bystander.driver.send(makeFrame(i++));
      bystander.driver.flush();
      await bystander.driver.waitTxSpace();
    }
  })();
});

/** Stops the bystander and closes every rig (the last test does it and checks for leaks). */
async function closeAll(): Promise<void> {
  pumping = false;
  await bystanderDone;
  for (const r of rigs.splice(0)) {
    r.driver.close();
    r.backend.close();
    r.memory.close();
  }
}

afterAll(async () => {
  await closeAll();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('hostile packed TX rings', () => {
  const tx = (): PackedDriverRing => victim.driver.packedRings.tx;

  it('drops a buffer id outside the ring', async () => {
    const buf = frameBuffer(victim, 1);
    await expectTxError(victim, [{ addr: buf.gpa, len: buf.len, flags: 0, id: SIZE + 1000 }], 'id >= ring size');
    await stillServes(victim, 2);
  });

  it('drops buffers outside guest memory: past the last region, straddling a region end, wrapping', async () => {
    for (const [addr, what] of [
      [0x1_0000_0000 + REGION_SIZE + 4096, 'beyond the last region'],
      [REGION_SIZE - 8, 'straddling'],
      [0xffff_ffff_ffff_fff0n, 'wrapping'],
    ] as const) {
      await expectTxError(victim, [{ addr, len: 64, flags: 0, id: rawId() }], what);
    }
    await stillServes(victim, 6);
  });

  it('drops a device-writable buffer on TX', async () => {
    const buf = frameBuffer(victim, 7);
    await expectTxError(victim, [{ addr: buf.gpa, len: buf.len, flags: F_WRITE, id: rawId() }], 'writable TX buffer');
    await stillServes(victim, 8);
  });

  it('drops INDIRECT together with NEXT', async () => {
    const buf = frameBuffer(victim, 9);
    const table = victim.memory.alloc(16, 16);
    tx().writeRawDescriptor(0, buf.gpa, buf.len, 0, 0, table);
    const id = rawId();
    await expectTxError(
      victim,
      [
        { addr: table, len: 16, flags: F_INDIRECT | F_NEXT, id },
        { addr: buf.gpa, len: 8, flags: 0, id },
      ],
      'indirect + next',
    );
    await stillServes(victim, 10);
  });

  it('drops an indirect table inside an indirect table', async () => {
    const buf = frameBuffer(victim, 11);
    const outer = victim.memory.alloc(16, 16);
    const inner = victim.memory.alloc(16, 16);
    tx().writeRawDescriptor(0, buf.gpa, buf.len, 0, 0, inner);
    tx().writeRawDescriptor(0, inner, 16, F_INDIRECT, 0, outer);
    await expectTxError(victim, [{ addr: outer, len: 16, flags: F_INDIRECT, id: rawId() }], 'nested indirect');
    await stillServes(victim, 12);
  });

  for (const [len, what] of [
    [24, 'indirect length not a multiple of 16'],
    [0, 'indirect length zero'],
  ] as const) {
    it(`drops a chain with ${what}`, async () => {
      const buf = frameBuffer(victim, 13);
      const table = victim.memory.alloc(32, 16);
      tx().writeRawDescriptor(0, buf.gpa, buf.len, 0, 0, table);
      await expectTxError(victim, [{ addr: table, len, flags: F_INDIRECT, id: rawId() }], what);
      await stillServes(victim, 14);
    });
  }

  it('does not take descriptors of the wrong lap, and takes them once they are made right', async () => {
    const buf = frameBuffer(victim, 15);
    const ring = tx();
    const { availIdx: pos, availWrap: wrap } = ring.position;
    const before = victim.received[0].length;
    const [errors, packets] = [txStats(victim).errors, txStats(victim).packets];
    const nothingTaken = async () => {
      victim.driver.kickTx();
      await sleep(100);
      expect(txStats(victim).packets).toBe(packets);
      expect(txStats(victim).errors).toBe(errors);
      expect(victim.received[0].length).toBe(before);
    };
    // Marked available for the other lap: not available in this one.
    ring.pushRaw([{ addr: buf.gpa, len: buf.len, flags: availBits(wrap ^ 1), id: rawId() }], true);
    victim.driver.flush();
    await nothingTaken();
    // AVAIL and USED both equal to this lap's counter: a used descriptor, not an available one.
    ring.writeRawFlags(pos, usedBits(wrap));
    await nothingTaken();
    ring.writeRawFlags(pos, availBits(wrap));
    victim.driver.kickTx();
    expect(await until(() => victim.received[0].length > before)).toBe(true);
    expect(victim.received[0][before].equals(macSwapped(makeFrame(15)))).toBe(true);
    expect(txStats(victim).errors).toBe(errors);
    await stillServes(victim, 16);
  });
});

describe('hostile packed RX rings', () => {
  it('hands back a read-only receive buffer empty, counts it, and delivers into the next good one', async () => {
    const rx = victim.driver.packedRings.rx;
    const errorsBefore = rxStats(victim).errors;
    const gpa = victim.memory.alloc(2048, 64);
    rx.pushRaw([{ addr: gpa, len: 2048, flags: 0, id: rawId() }]); // no WRITE flag: the device must not write it
    if (rx.publish()) victim.driver.kickRx();
    // The raw buffer sits behind the 100 buffers already posted: send until the device reaches it.
    for (let i = 0; i < 600 && rxStats(victim).errors === errorsBefore; i++) await stillServes(victim, 100 + i);
    expect(rxStats(victim).errors).toBe(errorsBefore + 1n);
    expect(victim.memory.view(gpa, 2048).every((b) => b === 0)).toBe(true);
    await stillServes(victim, 700);
  });
});

describe('packed rings that need a device of their own', () => {
  it('INDIRECT when it was not negotiated: dropped and counted', async () => {
    const r = await rig('noindirect', { indirect: false });
    expect(r.driver.features & (1n << 28n)).toBe(0n);
    const buf = frameBuffer(r, 20);
    const table = r.memory.alloc(16, 16);
    r.driver.packedRings.tx.writeRawDescriptor(0, buf.gpa, buf.len, 0, 0, table);
    await expectTxError(r, [{ addr: table, len: 16, flags: F_INDIRECT, id: rawId() }], 'INDIRECT not negotiated');
    await stillServes(r, 21);
  });

  it('an id the device already holds: a frame needing two receive buffers that carry the same id', async () => {
    // No receive buffers of ours: the only two are these, and the frame needs both (MRG_RXBUF, 1024 each).
    const r = await rig('heldid', { rxBuffers: 0, rxBufferSize: 1024 });
    const rx = r.driver.packedRings.rx;
    const id = rawId();
    const bufs = [r.memory.alloc(1024, 64), r.memory.alloc(1024, 64)];
    for (const gpa of bufs) rx.pushRaw([{ addr: gpa, len: 1024, flags: F_WRITE, id }]);
    if (rx.publish()) r.driver.kickRx();
    let i = 0;
    while (makeFrame(i).length < 1100) i++;
    const errorsBefore = rxStats(r).errors;
    r.driver.send(makeFrame(i));
    r.driver.flush();
    expect(await until(() => rxStats(r).errors > errorsBefore), 'held id: counted').toBe(true);
    await sleep(20);
    expect(rxStats(r).errors).toBe(errorsBefore + 1n);
    expect(r.received[0]).toEqual([]);
    expect(r.memory.view(bufs[1], 1024).every((b) => b === 0)).toBe(true); // the second was not written
  });

  it('a chain longer than the ring (NEXT on every descriptor): breaks that queue with a reason; the other pair goes on', async () => {
    const r = await rig('longchain');
    const buf = frameBuffer(r, 22);
    const id = rawId();
    const descs = Array.from({ length: SIZE }, () => ({ addr: buf.gpa, len: 8, flags: F_NEXT, id }));
    await expectTxError(r, descs, 'chain longer than the ring');
    expect(await until(() => r.warnings.some((w) => /TX queue broken: a descriptor chain runs round the whole ring/.test(w)))).toBe(true);
    await stillServes(r, 23, 1);
    await stillServes(victim, 24, 1);
  });
});

describe('other devices and pairs', () => {
  it('the second pair of the victim and the bystander kept serving without an error', async () => {
    await stillServes(victim, 30, 1);
    const s = txStats(victim, 1);
    expect(s.errors + rxStats(victim, 1).errors).toBe(0n);
    const bystanderBefore = bystander.received[0].length;
    expect(await until(() => bystander.received[0].length > bystanderBefore + 1000)).toBe(true);
    expect(bystander.warnings).toEqual([]);
    const stats = bystander.backend.device.stats();
    expect(stats.reduce((n, q) => n + q.errors + q.drops, 0n)).toBe(0n);
  });

  it('closing every device and driver leaves no fd or mapping behind', async () => {
    await closeAll();
    await sleep(50);
    expect(fdKinds()).toEqual(fdsBefore);
    expect(countGuestMappings()).toBe(mappingsBefore);
  });
});
