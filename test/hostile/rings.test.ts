/**
 * A hostile guest writes its rings to hurt the device: loops, bad indexes, bad indirect tables,
 * addresses outside its memory, headers that do not fit, an available index that runs away.
 * Each bad chain is dropped and counted (stats `errors`), the queue keeps serving well-formed
 * frames (or is marked broken with a logged reason), and another device keeps passing traffic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { VhostUserBackend } from '../../lib/backend';
import { GuestMemory } from '../../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../../lib/frontend/net_driver';
import { macSwapped, makeFrame } from '../helpers/frames';
import { until as waitUntil } from '../helpers/until';

const F_NEXT = 1;
const F_WRITE = 2;
const F_INDIRECT = 4;
const HDR = 12;
const REGION_SIZE = 16 << 20; // GuestMemory's default: two regions, at 0 and at 4 GiB

interface Rig {
  backend: VhostUserBackend;
  memory: GuestMemory;
  driver: VirtioNetDriver;
  received: Buffer[];
  warnings: string[];
}

let dir: string;
let victim: Rig;
let bystander: Rig;

async function rig(name: string, rxBuffers?: number): Promise<Rig> {
  const warnings: string[] = [];
  const backend = new VhostUserBackend({
    socketPath: path.join(dir, `${name}.sock`),
    device: { port: 'loopback' },
    log: (level, m) => level === 'warn' && warnings.push(m),
  });
  backend.start();
  const memory = new GuestMemory();
  const received: Buffer[] = [];
  const driver = await VirtioNetDriver.start({
    socketPath: backend.socketPath,
    memory,
    rxBuffers,
    onFrames: (f) => received.push(...f),
  });
  return { backend, memory, driver, received, warnings };
}

/** This suite's deadline: 5000 ms. */
const until = (cond: () => boolean, ms = 5000) => waitUntil(cond, ms);

const txStats = (r: Rig) => r.backend.device.stats()[1];
const rxStats = (r: Rig) => r.backend.device.stats()[0];

/** A well-formed frame still makes the round trip on the same queues. */
async function stillServes(r: Rig, i: number): Promise<void> {
  const before = r.received.length;
  r.driver.send(makeFrame(i));
  r.driver.flush();
  expect(await until(() => r.received.length > before), 'a valid frame after the bad chain').toBe(true);
  expect(r.received[r.received.length - 1].equals(macSwapped(makeFrame(i)))).toBe(true);
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

/** Posts a raw TX chain (descriptors written by `write`) and waits for the device to count an error. */
async function expectTxError(r: Rig, write: (ids: number[]) => number, what: string): Promise<void> {
  const errorsBefore = txStats(r).errors;
  const ids = r.driver.rings.tx.reserveDescriptors(4);
  const head = write(ids);
  r.driver.rings.tx.pushRawHead(head);
  r.driver.flush();
  r.driver.kickTx();
  expect(await until(() => txStats(r).errors > errorsBefore), `${what}: counted as an error`).toBe(true);
  expect(txStats(r).errors).toBe(errorsBefore + 1n);
}

let pumping = true;
let bystanderDone: Promise<void>;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-hostile-'));
  victim = await rig('victim', 200); // leaves RX descriptors free for raw buffers
  bystander = await rig('bystander');
  // The bystander device passes traffic for the whole file.
  bystanderDone = (async () => {
    let i = 0;
    while (pumping) {
      while (bystander.driver.txSpace > 0) bystander.driver.send(makeFrame(i++));
      bystander.driver.flush();
      await bystander.driver.waitTxSpace();
    }
  })();
});

afterAll(async () => {
  pumping = false;
  await bystanderDone;
  for (const r of [victim, bystander]) {
    r.driver.close();
    r.backend.close();
    r.memory.close();
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('hostile TX rings', () => {
  const tx = () => victim.driver.rings.tx;

  it('drops a descriptor loop (next pointing back)', async () => {
    const buf = frameBuffer(victim, 1);
    await expectTxError(
      victim,
      ([a, b]) => {
        tx().writeRawDescriptor(a, buf.gpa, HDR, F_NEXT, b);
        tx().writeRawDescriptor(b, buf.gpa + HDR, buf.len - HDR, F_NEXT, a);
        return a;
      },
      'loop',
    );
    await stillServes(victim, 2);
  });

  it('drops a chain whose next index is outside the table', async () => {
    const buf = frameBuffer(victim, 3);
    await expectTxError(
      victim,
      ([a]) => {
        tx().writeRawDescriptor(a, buf.gpa, buf.len, F_NEXT, 60000);
        return a;
      },
      'next out of range',
    );
    await stillServes(victim, 4);
  });

  it('drops an indirect table inside an indirect table', async () => {
    const buf = frameBuffer(victim, 5);
    const outer = victim.memory.alloc(32, 16);
    const inner = victim.memory.alloc(16, 16);
    tx().writeRawDescriptor(0, buf.gpa, buf.len, 0, 0, inner);
    tx().writeRawDescriptor(0, inner, 16, F_INDIRECT, 0, outer);
    await expectTxError(
      victim,
      ([a]) => {
        tx().writeRawDescriptor(a, outer, 16, F_INDIRECT, 0);
        return a;
      },
      'nested indirect',
    );
    await stillServes(victim, 6);
  });

  for (const [len, what] of [
    [24, 'indirect length not a multiple of 16'],
    [0, 'indirect length zero'],
  ] as const) {
    it(`drops a chain with ${what}`, async () => {
      const buf = frameBuffer(victim, 7);
      const table = victim.memory.alloc(32, 16);
      tx().writeRawDescriptor(0, buf.gpa, buf.len, 0, 0, table);
      await expectTxError(
        victim,
        ([a]) => {
          tx().writeRawDescriptor(a, table, len, F_INDIRECT, 0);
          return a;
        },
        what,
      );
      await stillServes(victim, 8);
    });
  }

  it('drops INDIRECT together with NEXT', async () => {
    const buf = frameBuffer(victim, 9);
    const table = victim.memory.alloc(16, 16);
    tx().writeRawDescriptor(0, buf.gpa, buf.len, 0, 0, table);
    await expectTxError(
      victim,
      ([a, b]) => {
        tx().writeRawDescriptor(a, table, 16, F_INDIRECT | F_NEXT, b);
        tx().writeRawDescriptor(b, buf.gpa, 8, 0, 0);
        return a;
      },
      'indirect + next',
    );
    await stillServes(victim, 10);
  });

  it('drops buffers outside guest memory: past the last region, and straddling a region end', async () => {
    await expectTxError(
      victim,
      ([a]) => {
        tx().writeRawDescriptor(a, 0x1_0000_0000 + REGION_SIZE + 4096, 100, 0, 0);
        return a;
      },
      'beyond the last region',
    );
    await expectTxError(
      victim,
      ([a]) => {
        tx().writeRawDescriptor(a, REGION_SIZE - 8, 64, 0, 0); // region 0 ends; region 1 is at 4 GiB
        return a;
      },
      'straddling',
    );
    await expectTxError(
      victim,
      ([a]) => {
        tx().writeRawDescriptor(a, 0xffff_ffff_ffff_fff0n, 64, 0, 0); // wraps the address space
        return a;
      },
      'wrapping',
    );
    await stillServes(victim, 11);
  });

  it('drops a header longer than the chain, and a device-writable buffer on TX', async () => {
    const buf = frameBuffer(victim, 12);
    await expectTxError(
      victim,
      ([a]) => {
        tx().writeRawDescriptor(a, buf.gpa, HDR - 4, 0, 0);
        return a;
      },
      'short header',
    );
    await expectTxError(
      victim,
      ([a]) => {
        tx().writeRawDescriptor(a, buf.gpa, buf.len, F_WRITE, 0);
        return a;
      },
      'writable TX buffer',
    );
    await stillServes(victim, 13);
  });

  it('drops a head index outside the ring', async () => {
    const errorsBefore = txStats(victim).errors;
    tx().pushRawHead(5000);
    victim.driver.flush();
    victim.driver.kickTx();
    expect(await until(() => txStats(victim).errors > errorsBefore)).toBe(true);
    await stillServes(victim, 14);
  });

  it('accepts a header split over three descriptors and zero-length descriptors (any layout is legal)', async () => {
    const frame = makeFrame(15);
    const buf = frameBuffer(victim, 15);
    const before = victim.received.length;
    const ids = tx().reserveDescriptors(5);
    tx().writeRawDescriptor(ids[0], buf.gpa, 4, F_NEXT, ids[1]);
    tx().writeRawDescriptor(ids[1], buf.gpa + 4, 0, F_NEXT, ids[2]);
    tx().writeRawDescriptor(ids[2], buf.gpa + 4, 4, F_NEXT, ids[3]);
    tx().writeRawDescriptor(ids[3], buf.gpa + 8, 4 + 20, F_NEXT, ids[4]);
    tx().writeRawDescriptor(ids[4], buf.gpa + 32, buf.len - 32, 0, 0);
    tx().pushRawHead(ids[0]);
    victim.driver.flush();
    victim.driver.kickTx();
    expect(await until(() => victim.received.length > before)).toBe(true);
    expect(victim.received[victim.received.length - 1].equals(macSwapped(frame))).toBe(true);
  });
});

describe('hostile RX rings', () => {
  it('hands back a read-only receive buffer empty, counts it, and delivers into the next good one', async () => {
    const rx = victim.driver.rings.rx;
    const errorsBefore = rxStats(victim).errors;
    const [a] = rx.reserveDescriptors(1);
    const gpa = victim.memory.alloc(2048, 64);
    rx.writeRawDescriptor(a, gpa, 2048, 0, 0); // no WRITE flag: the device must not write it
    rx.pushRawHead(a);
    if (rx.publish()) victim.driver.kickRx(); // a kick the device asked for must not be swallowed
    // The raw buffer sits behind the buffers already posted: send until the device reaches it.
    for (let i = 0; i < 600 && rxStats(victim).errors === errorsBefore; i++) await stillServes(victim, 100 + i);
    expect(rxStats(victim).errors).toBe(errorsBefore + 1n);
    expect(victim.memory.view(gpa, 2048).every((b) => b === 0)).toBe(true);
  });
});

describe('a runaway available index', () => {
  it('marks the queue broken with a logged reason; the other device keeps running', async () => {
    const tx = victim.driver.rings.tx;
    tx.writeRawAvailIdx(tx.availIndex + 1000);
    victim.driver.kickTx();
    expect(await until(() => victim.warnings.some((w) => /TX queue broken: available index ran/.test(w)))).toBe(true);
    const bystanderBefore = bystander.received.length;
    expect(await until(() => bystander.received.length > bystanderBefore + 1000)).toBe(true);
    expect(bystander.warnings).toEqual([]);
    const s = txStats(bystander);
    expect(s.errors + s.drops).toBe(0n);
  });
});
