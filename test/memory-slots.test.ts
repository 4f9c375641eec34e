/**
 * Memory slots at their limit (CONFIGURE_MEM_SLOTS, GET_MAX_MEM_SLOTS = 509, as QEMU's memory
 * hotplug uses them): a guest memory of 509 regions, 8 by SET_MEM_TABLE and the rest by
 * ADD_MEM_REG; the 510th refused with nothing leaked; frames whose buffers lie in the highest and in
 * a middle region; regions removed and added while traffic runs in others; and the overlaps a
 * sorted table must still refuse. (The one-region basics are in protocol.test.ts.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { native } from '../lib/binding';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver, type NetDriverOptions } from '../lib/frontend/net_driver';
import type { MemoryRegion } from '../lib/protocol/codec';
import { MAX_MEM_SLOTS, Request } from '../lib/protocol/constants';
import { expectNack, mappingsOf, memfd } from './helpers/control';
import { within } from './helpers/until';
import { useBackendFixture } from './helpers/fixture';
import { countGuestMappings, fdKinds, macSwapped, makeFrame } from './helpers/frames';

const fx = useBackendFixture();

const SLOTS = MAX_MEM_SLOTS;
/** Regions of the guest memory that carry buffers: one in the middle, the last (highest guest address). */
const MIDDLE = 254;
const LAST = SLOTS - 1;
const QUEUE_SIZE = 64;
/** The frontend's GuestMemory puts region i at i * 4 GiB; half-way between two is a hole. */
const REGION_STRIDE = 0x1_0000_0000n;

const drivers: VirtioNetDriver[] = [];
const memories: GuestMemory[] = [];
afterEach(() => {
  for (const d of drivers.splice(0)) d.close();
  for (const m of memories.splice(0)) m.close();
});

/** `count` regions: the first holds the rings, MIDDLE and the last room for a ring's buffers, the rest 4 KiB each. */
function slotMemory(count = SLOTS): GuestMemory {
  const sizes = Array.from({ length: count }, (_, i) => (i === 0 ? 1 << 20 : i === MIDDLE || i === count - 1 ? 256 << 10 : 4096));
  const m = new GuestMemory({ regionSizes: sizes });
  memories.push(m);
  return m;
}

async function startDriver(memory: GuestMemory, opts: Partial<NetDriverOptions> = {}): Promise<VirtioNetDriver> {
  const d = await VirtioNetDriver.start({ socketPath: fx.backend.socketPath, memory, queueSize: QUEUE_SIZE, ...opts });
  drivers.push(d);
  return d;
}

/** A 4 KiB region in the hole after region i (guest and front-end addresses of its own). */
function holeRegion(i: number): MemoryRegion {
  const gpa = BigInt(i) * REGION_STRIDE + REGION_STRIDE / 2n;
  return { guestPhysAddr: gpa, size: 4096n, userAddr: 0x7e00_0000_0000n + gpa, mmapOffset: 0n };
}

/** Region i of `memory` as ADD_MEM_REG / REM_MEM_REG carry it. */
function regionOf(memory: GuestMemory, i: number): { region: MemoryRegion; fd: number } {
  const { fd, ...region } = memory.table()[i];
  return { region, fd };
}

/** Checks frames as they come back: each the MAC-swapped copy of the next one sent. */
function checker() {
  const state = { next: 0, firstBad: '' };
  const onFrames = (frames: Buffer[]) => {
    for (const f of frames) {
      const want = macSwapped(makeFrame(state.next));
      if (!state.firstBad && !f.equals(want)) state.firstBad = `frame ${state.next}: got ${f.length} bytes, want ${want.length}`;
      state.next++;
    }
  };
  return { state, onFrames };
}

/** Sends frames first..first+count-1 and waits until all came back (or 10 s passed). */
async function pump(driver: VirtioNetDriver, first: number, count: number, state: { next: number }): Promise<void> {
  let sent = 0;
  while (sent < count && driver.isOpen) {
    while (sent < count && driver.txSpace > 0) driver.send(makeFrame(first + sent++));
    driver.flush();
    await within(driver.waitTxSpace(), 10_000, `TX buffers back (sent ${sent})`);
  }
  const deadline = Date.now() + 10_000;
  while (state.next < first + count && Date.now() < deadline && driver.isOpen) await new Promise((r) => setTimeout(r, 2));
  expect(state.next).toBe(first + count);
}

describe('509 memory slots', () => {
  it('holds 509 regions, nacks the 510th closing its fd, and leaks nothing', async () => {
    fx.start();
    const fds = fdKinds();
    const mappings = countGuestMappings();
    const memory = slotMemory();
    const { state, onFrames } = checker();
    const driver = await startDriver(memory, { onFrames });
    expect(driver.control.isOpen).toBe(true);
    expect(countGuestMappings()).toBe(mappings + 1 + SLOTS); // ours + one per slot in the back-end

    const extra = memfd(4096);
    await expectNack(driver.control.request({ request: Request.ADD_MEM_REG, region: holeRegion(LAST), fd: extra.fd }, { needReply: true }));
    expect(mappingsOf(extra.name)).toBe(0);
    expect(fx.warnings.some((w) => w.includes(`too many memory regions (limit ${SLOTS})`))).toBe(true);
    // A freed slot takes a region again, here between two others.
    const { region } = regionOf(memory, 100);
    await driver.control.request({ request: Request.REM_MEM_REG, region, fd: null }, { needReply: true });
    await driver.control.request({ request: Request.ADD_MEM_REG, region: holeRegion(100), fd: extra.fd }, { needReply: true });
    native.close(extra.fd);
    expect(mappingsOf(extra.name)).toBe(1);
    await pump(driver, 0, 2000, state);
    expect(state.firstBad).toBe('');

    const gone = once(fx.backend, 'disconnect');
    driver.close();
    await within(gone, 5000, 'disconnect');
    memories.splice(0).forEach((m) => m.close());
    expect(mappingsOf(extra.name)).toBe(0);
    expect(countGuestMappings()).toBe(mappings);
    expect(fdKinds()).toEqual(fds);
  });

  const PLACEMENTS: { name: string; opts: Partial<NetDriverOptions> }[] = [
    { name: 'TX buffers in a middle slot, RX in the last (MRG_RXBUF)', opts: { bufferRegions: { tx: MIDDLE, rx: LAST }, mrgRxbuf: true } },
    {
      name: 'TX buffers in the last slot, RX in a middle one (no MRG_RXBUF)',
      opts: { bufferRegions: { tx: LAST, rx: MIDDLE }, mrgRxbuf: false },
    },
  ];
  for (const { name, opts } of PLACEMENTS) {
    it(`returns frames intact with ${name}`, async () => {
      fx.start();
      const { state, onFrames } = checker();
      const driver = await startDriver(slotMemory(), { ...opts, onFrames });
      await pump(driver, 0, 5000, state);
      expect(state.firstBad).toBe('');
      const [rx, tx] = fx.backend.device.stats();
      expect(tx.packets).toBe(5000n);
      expect(rx.packets).toBe(5000n);
    });
  }

  it('keeps traffic flowing while other regions are removed and added', async () => {
    fx.start();
    const memory = slotMemory();
    const { state, onFrames } = checker();
    const driver = await startDriver(memory, { bufferRegions: { tx: MIDDLE, rx: LAST }, onFrames });
    const extra = memfd(4096);
    let cycles = 0;
    let running = true;
    const churn = (async () => {
      while (running && driver.isOpen) {
        // A 4 KiB region no ring or buffer uses: out, a new one in the hole beside it, and back.
        const i = 1 + ((cycles * 37) % (MIDDLE - 1));
        const { region, fd } = regionOf(memory, i);
        const req = (r: Parameters<VirtioNetDriver['control']['request']>[0]) => driver.control.request(r, { needReply: true });
        await req({ request: Request.REM_MEM_REG, region, fd: null });
        await req({ request: Request.ADD_MEM_REG, region: holeRegion(i), fd: extra.fd });
        await req({ request: Request.REM_MEM_REG, region: holeRegion(i), fd: null });
        await req({ request: Request.ADD_MEM_REG, region, fd });
        cycles++;
      }
    })();
    await pump(driver, 0, 20_000, state);
    running = false;
    await churn;
    native.close(extra.fd);
    expect(cycles).toBeGreaterThan(0);
    expect(state.firstBad).toBe('');
    expect(mappingsOf(extra.name)).toBe(0);
    expect(fx.warnings).toEqual([]);
  });
});

describe('a sorted table still refuses what overlaps', () => {
  it('nacks ADD_MEM_REG overlapping a neighbour by guest or front-end address, and REM_MEM_REG of part of a region', async () => {
    fx.start();
    const memory = slotMemory(16);
    const { state, onFrames } = checker();
    const driver = await startDriver(memory, { onFrames });
    const fds = fdKinds();
    const mappings = countGuestMappings();
    const m = memfd(1 << 20);
    const add = (region: MemoryRegion) => driver.control.request({ request: Request.ADD_MEM_REG, region, fd: m.fd }, { needReply: true });
    const rem = (region: MemoryRegion) => driver.control.request({ request: Request.REM_MEM_REG, region, fd: null }, { needReply: true });
    const { region: r9 } = regionOf(memory, 9); // 4 KiB at 9 * 4 GiB, neighbours 8 and 10
    const fresh = holeRegion(9);
    // Guest-physical overlaps: the tail of the region below, the head of the one above, around one.
    await expectNack(add({ ...fresh, guestPhysAddr: r9.guestPhysAddr + 4095n }));
    await expectNack(add({ ...fresh, guestPhysAddr: 10n * REGION_STRIDE - 4095n }));
    await expectNack(add({ ...fresh, guestPhysAddr: r9.guestPhysAddr - 4096n, size: 3n * 4096n }));
    // The same guest range under another front-end address: a duplicate.
    await expectNack(add({ ...r9, userAddr: fresh.userAddr }));
    // A free guest range whose front-end range overlaps region 9's.
    await expectNack(add({ ...fresh, userAddr: r9.userAddr + 2048n }));
    // REM_MEM_REG must match a region exactly.
    await expectNack(rem({ ...r9, size: 2048n }));
    await expectNack(rem({ ...r9, userAddr: fresh.userAddr }));
    native.close(m.fd);
    expect(mappingsOf(m.name)).toBe(0);
    expect(countGuestMappings()).toBe(mappings);
    expect(fdKinds()).toEqual(fds);
    // The table is as it was: region 9 is still there to remove, and traffic flows.
    await rem(r9);
    await pump(driver, 0, 500, state);
    expect(state.firstBad).toBe('');
  });
});
