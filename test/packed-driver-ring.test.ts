/**
 * Our packed driver ring on its own, against a device side written from the spec
 * (helpers/packed_device.ts): chains, indirect tables, wrap counters over many laps of a
 * non-power-of-two ring, out-of-order and IN_ORDER batched returns, the kick decision, calls, bases.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BufferSpec } from '../lib/frontend/driver_ring';
import { GuestMemory } from '../lib/frontend/guest_memory';
import {
  DESC_F_AVAIL,
  DESC_F_USED,
  EVENT_DESC,
  EVENT_DISABLE,
  EVENT_ENABLE,
  PACKED_BASE_START,
  PackedDriverRing,
  decodePackedBase,
  encodePackedBase,
} from '../lib/frontend/packed_driver_ring';
import { PackedDevice, type DeviceChain } from './helpers/packed_device';

let mem: GuestMemory;
beforeEach(() => {
  mem = new GuestMemory();
});
afterEach(() => mem.close());

/** A deterministic generator, so that a failure repeats. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const bufsFor = (n: number, k: number): BufferSpec[] =>
  Array.from({ length: n }, (_, i) => ({ gpa: 0x1000 * (k % 1000) + 64 * i, len: 100 + k + i, write: (k + i) % 2 === 0 }));

describe('packed driver ring against a spec device', () => {
  for (const size of [256, 200, 7]) {
    it(`moves 3,000 chains (1-3 descriptors, some indirect) through a ring of ${size}, returned out of order`, () => {
      const ring = new PackedDriverRing(mem, size, { eventIdx: false });
      const dev = new PackedDevice(mem, ring);
      const rand = rng(size);
      const sent = new Map<number, BufferSpec[]>();
      let next = 0;
      let returned = 0;
      let descs = 0;
      const held: DeviceChain[] = [];
      while (returned < 3000) {
        for (;;) {
          if (next >= 3000) break;
          const n = 1 + Math.floor(rand() * 3);
          const indirect = n > 1 && rand() < 0.3;
          const bufs = bufsFor(n, next);
          const id = ring.add(bufs, indirect);
          if (id === null) break;
          sent.set(id, bufs);
          descs += indirect ? 1 : n;
          next++;
        }
        ring.publish();
        for (let c = dev.pop(); c; c = dev.pop()) {
          const want = sent.get(c.id)!;
          expect(c.descs.map((d) => [Number(d.addr), d.len, (d.flags & 2) !== 0])).toEqual(want.map((b) => [b.gpa, b.len, b.write]));
          held.push(c);
        }
        // Return a random half, in a random order.
        const back = held.splice(0, Math.max(1, Math.floor(held.length / 2))).sort(() => rand() - 0.5);
        for (const c of back) dev.pushUsed(c.id, c.descs.length, c.count);
        const used = ring.takeUsed();
        expect(used).toEqual(back.map((c) => ({ id: c.id, len: c.descs.length })));
        for (const u of used) sent.delete(u.id);
        returned += used.length;
      }
      expect(returned).toBe(3000);
      expect(ring.outstanding).toBe(0);
      expect(ring.freeDescriptors).toBe(size);
      expect(descs).toBeGreaterThan(3 * size); // at least three laps: the wrap counters flipped
      const laps = Math.floor(descs / size);
      expect(ring.position).toEqual({ availIdx: descs % size, availWrap: 1 ^ (laps & 1), usedIdx: descs % size, usedWrap: 1 ^ (laps & 1) });
      expect({ availIdx: dev.availIdx, availWrap: dev.availWrap }).toEqual({ availIdx: descs % size, availWrap: 1 ^ (laps & 1) });
    });
  }

  it('makes a chain visible only at publish, by its head flags written last', () => {
    const ring = new PackedDriverRing(mem, 16, { eventIdx: false });
    const dev = new PackedDevice(mem, ring);
    ring.add(bufsFor(3, 1));
    expect(dev.flagsAt(1) & (DESC_F_AVAIL | DESC_F_USED)).toBe(DESC_F_AVAIL); // the rest is written
    expect(dev.flagsAt(0) & (DESC_F_AVAIL | DESC_F_USED)).toBe(0); // the head is not
    expect(dev.pop()).toBeNull();
    ring.publish();
    expect(dev.pop()?.descs.length).toBe(3);
  });

  it('IN_ORDER: one used descriptor retires every buffer up to its id, in order', () => {
    const ring = new PackedDriverRing(mem, 10, { eventIdx: false, inOrder: true });
    const dev = new PackedDevice(mem, ring);
    const ids: number[] = [];
    for (let lap = 0; lap < 8; lap++) {
      const got: DeviceChain[] = [];
      for (let k = 0; k < 4; k++) ids.push(ring.add(bufsFor(1 + (k % 2), k))!);
      ring.publish();
      for (let c = dev.pop(); c; c = dev.pop()) got.push(c);
      expect(got.length).toBe(4);
      dev.pushUsedBatch(got, 0);
      const used = ring.takeUsed();
      expect(used.map((u) => u.id)).toEqual(got.map((c) => c.id));
      expect(used.map((u) => u.len)).toEqual([0, 0, 0, 0]);
      expect(ring.outstanding).toBe(0);
    }
    expect(ring.position.usedIdx).toBe((8 * 6) % 10);
    expect(ring.position.usedWrap).toBe(1 ^ (Math.floor(48 / 10) & 1));
  });

  it('kicks as the device area says: DISABLE no, ENABLE yes, DESC when the event position was just made available', () => {
    const ring = new PackedDriverRing(mem, 200, { eventIdx: true });
    const dev = new PackedDevice(mem, ring);
    const drain = () => {
      for (let c = dev.pop(); c; c = dev.pop()) dev.pushUsed(c.id, 0, c.count);
      ring.takeUsed();
    };
    dev.setEvent(EVENT_DISABLE);
    ring.add(bufsFor(1, 0));
    expect(ring.publish()).toBe(false);
    expect(ring.publish()).toBe(false); // nothing new
    dev.setEvent(EVENT_ENABLE);
    ring.add(bufsFor(1, 0));
    expect(ring.publish()).toBe(true);
    drain();
    // Positions 2..4 made available now: an event at 3 (this lap) is among them, 5 is not.
    dev.setEvent(EVENT_DESC, 3 | (1 << 15));
    for (let k = 0; k < 3; k++) ring.add(bufsFor(1, k));
    expect(ring.publish()).toBe(true);
    dev.setEvent(EVENT_DESC, 6 | (1 << 15));
    for (let k = 0; k < 1; k++) ring.add(bufsFor(1, k)); // position 5
    expect(ring.publish()).toBe(false);
    drain();
    // Across the wrap: fill to 195, then 10 more (195..199 of lap 1, 0..4 of lap 0).
    while (ring.position.availIdx < 195) {
      ring.add(bufsFor(1, 0));
      ring.publish();
      drain();
    }
    dev.setEvent(EVENT_DESC, 198 | (1 << 15)); // in the old lap, among them
    for (let k = 0; k < 10; k++) ring.add(bufsFor(1, k));
    expect(ring.publish()).toBe(true);
    drain();
    expect(ring.position.availWrap).toBe(0);
    dev.setEvent(EVENT_DESC, 3); // lap 0, position 3: already passed before this batch (5..6)
    ring.add(bufsFor(2, 0));
    expect(ring.publish()).toBe(false);
    dev.setEvent(EVENT_DESC, 8); // lap 0, position 8: among 7..9
    ring.add(bufsFor(3, 0));
    expect(ring.publish()).toBe(true);
  });

  it('arms calls: ENABLE without EVENT_IDX, DESC at its used position and wrap with it; DISABLE when suppressed', () => {
    const plain = new PackedDriverRing(mem, 8, { eventIdx: false });
    expect(plain.armCall()).toBe(false);
    expect(new PackedDevice(mem, plain).driverEvent).toEqual({ flags: EVENT_ENABLE, offWrap: 0 });
    plain.suppressCalls();
    expect(new PackedDevice(mem, plain).driverEvent.flags).toBe(EVENT_DISABLE);

    const ring = new PackedDriverRing(mem, 8, { eventIdx: true });
    const dev = new PackedDevice(mem, ring);
    for (let k = 0; k < 8; k++) ring.add(bufsFor(1, k));
    ring.publish();
    for (let c = dev.pop(); c; c = dev.pop()) dev.pushUsed(c.id, 0, c.count);
    expect(ring.takeUsed().length).toBe(8);
    expect(ring.armCall()).toBe(false);
    expect(dev.driverEvent).toEqual({ flags: EVENT_DESC, offWrap: 0 }); // position 0 of lap 0
    ring.add(bufsFor(1, 0));
    ring.publish();
    const c = dev.pop()!;
    dev.pushUsed(c.id, 5, c.count);
    expect(ring.armCall()).toBe(true); // the race: already used
  });

  it('encodes bases as the spec lays them out and resumes from one', () => {
    expect(encodePackedBase({ availIdx: 0, availWrap: 1, usedIdx: 0, usedWrap: 1 })).toBe(PACKED_BASE_START);
    expect(decodePackedBase(0x0005_8123)).toEqual({ availIdx: 0x123, availWrap: 1, usedIdx: 5, usedWrap: 0 });
    const base = encodePackedBase({ availIdx: 150, availWrap: 0, usedIdx: 150, usedWrap: 0 });
    expect(base).toBe(150 | (150 << 16));
    const ring = new PackedDriverRing(mem, 200, { eventIdx: false, base });
    expect(ring.base).toBe(base);
    const dev = new PackedDevice(mem, ring);
    Object.assign(dev, { availIdx: 150, availWrap: 0, usedIdx: 150, usedWrap: 0 });
    expect(ring.takeUsed()).toEqual([]);
    for (let k = 0; k < 100; k++) ring.add(bufsFor(1, k));
    ring.publish();
    let n = 0;
    for (let c = dev.pop(); c; c = dev.pop(), n++) dev.pushUsed(c.id, 1, c.count);
    expect(n).toBe(100);
    expect(ring.takeUsed().length).toBe(100);
    expect(ring.position).toEqual({ availIdx: 50, availWrap: 1, usedIdx: 50, usedWrap: 1 });
    expect(() => new PackedDriverRing(mem, 200, { eventIdx: false, base: 5 | (6 << 16) })).toThrow(/outstanding/);
  });

  it('refuses used ids it does not hold', () => {
    const ring = new PackedDriverRing(mem, 8, { eventIdx: false });
    const dev = new PackedDevice(mem, ring);
    ring.add(bufsFor(1, 0));
    ring.publish();
    dev.pop();
    dev.pushUsed(9, 0, 1);
    expect(() => ring.takeUsed()).toThrow(/id 9, which is not outstanding/);
  });
});
