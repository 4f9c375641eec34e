/**
 * Packed virtqueues end to end: our driver (packed: true) against the loopback port over a real
 * socket. Exact frame counts and contents for frames of 60..9000 bytes with and without MRG_RXBUF,
 * EVENT_IDX on and off, INDIRECT, IN_ORDER, rings of 256 and 200 (not a power of two), two queue
 * pairs, many laps of the ring; GET_VRING_BASE after traffic and a reconnect that resumes there.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { VirtioNetDriver, type NetDriverOptions, type TxLayout } from '../lib/frontend/net_driver';
import { encodePackedBase, type PackedPosition } from '../lib/frontend/packed_driver_ring';
import { VirtioFeature, hasBit } from '../lib/protocol/constants';
import { useBackendFixture } from './helpers/fixture';
import { macSwapped, makeFrame } from './helpers/frames';
import { until } from './helpers/until';

const fx = useBackendFixture();
/** Drivers of this test, closed after it even when it failed half-way. */
const drivers: VirtioNetDriver[] = [];
afterEach(() => {
  for (const d of drivers.splice(0)) d.close();
});
const JUMBO = 9000;
const LAYOUTS: TxLayout[] = ['single', 'split-header', 'indirect'];

/** Frame i of 60..max bytes: makeFrame's pattern, stretched. */
function frame(i: number, max: number): Buffer {
  if (max <= 1514) return makeFrame(i);
  const len = 60 + ((i * 7919) % (max - 60 + 1));
  const f = Buffer.alloc(len);
  const head = makeFrame(i);
  head.copy(f, 0, 0, Math.min(len, head.length));
  for (let k = head.length; k < len; k++) f[k] = (i * 13 + k * 31) & 0xff;
  return f;
}

/** What comes back, per pair, checked against what was sent in order. */
function receiver(firstOf: (pair: number) => number, max: number) {
  const got = [0, 0];
  const bad: string[] = [];
  const onFrames = (frames: Buffer[], pair: number) => {
    for (const f of frames) {
      const i = firstOf(pair) + got[pair]++;
      const want = macSwapped(frame(i, max));
      if (bad.length < 3 && !f.equals(want)) bad.push(`pair ${pair}: frame ${i}: got ${f.length} bytes, want ${want.length}`);
    }
  };
  return { got, bad, onFrames };
}

/** Sends `count` frames (numbers from `first`) on `pair`, layouts in turn, waiting for room as needed. */
async function pump(d: VirtioNetDriver, pair: number, first: number, count: number, max: number, layouts = LAYOUTS): Promise<void> {
  let sent = 0;
  while (sent < count && d.isOpen) {
    while (sent < count && d.txSpaceOf(pair) > 0) {
      const i = first + sent++;
      d.send(frame(i, max), layouts[i % layouts.length], pair);
    }
    d.flush();
    if (d.txSpaceOf(pair) === 0) await d.waitTxSpace();
  }
}

async function start(opts: Partial<NetDriverOptions>, device = {}, onFrames?: NetDriverOptions['onFrames']) {
  const backend = fx.start(device);
  const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory, packed: true, onFrames, ...opts });
  drivers.push(driver);
  expect(driver.packed).toBe(true);
  return { backend, driver };
}

/** Runs `count` frames through pair 0 and checks every count and byte. */
async function roundTrip(opts: Partial<NetDriverOptions>, count: number, max: number, layouts = LAYOUTS) {
  const r = receiver(() => 0, max);
  const { backend, driver } = await start({ maxFrame: max, ...opts }, {}, r.onFrames);
  await pump(driver, 0, 0, count, max, layouts);
  expect(await until(() => r.got[0] >= count, 20_000), `received ${r.got[0]} of ${count}`).toBe(true);
  expect(r.bad).toEqual([]);
  expect(r.got[0]).toBe(count);
  // The TX ring's used entries come back with their own call, after the frames on RX: wait for it
  // before a test looks at the TX ring's position.
  expect(await until(() => driver.packedRings.tx.outstanding === 0), 'TX buffers still outstanding').toBe(true);
  const [rx, tx] = backend.device.stats();
  expect(tx.packets).toBe(BigInt(count));
  expect(rx.packets).toBe(BigInt(count));
  expect(tx.drops + tx.errors + rx.drops + rx.errors).toBe(0n);
  expect(fx.warnings).toEqual([]);
  return { backend, driver };
}

describe('packed rings through the loopback port', () => {
  for (const eventIdx of [true, false]) {
    for (const mrgRxbuf of [true, false]) {
      it(`returns 3,000 frames of 60..9000 bytes (EVENT_IDX ${eventIdx ? 'on' : 'off'}, MRG_RXBUF ${mrgRxbuf ? 'on' : 'off'})`, async () => {
        const { driver } = await roundTrip({ eventIdx, mrgRxbuf }, 3000, JUMBO);
        expect(hasBit(driver.features, VirtioFeature.RING_EVENT_IDX)).toBe(eventIdx);
        // 3,000 frames in 256 descriptors: the TX ring went round more than three times.
        expect(driver.packedRings.tx.position).toEqual(lapsOf(descriptorsOf(3000), 256));
        expect(driver.packedRings.tx.usedRead).toBe(3000); // without IN_ORDER: one used descriptor per buffer
        driver.close();
      });
    }
  }

  it('INDIRECT: every frame in an indirect table, one ring descriptor each', async () => {
    const { driver } = await roundTrip({ indirect: true }, 2000, 1514, ['indirect']);
    expect(hasBit(driver.features, VirtioFeature.RING_INDIRECT_DESC)).toBe(true);
    expect(driver.packedRings.tx.position).toEqual(lapsOf(2000, 256));
    driver.close();
  });

  it('IN_ORDER: negotiated when asked, batched returns retire every buffer', async () => {
    const { driver } = await roundTrip({ inOrder: true }, 3000, JUMBO);
    expect(hasBit(driver.features, VirtioFeature.IN_ORDER)).toBe(true);
    // The device returned TX buffers in batches: fewer used descriptors than buffers.
    expect(driver.packedRings.tx.usedRead).toBeLessThan(3000);
    expect(driver.packedRings.tx.position).toEqual(lapsOf(descriptorsOf(3000), 256));
    driver.close();
  });

  it('IN_ORDER is not negotiated unless asked (as before)', async () => {
    const { driver } = await start({});
    expect(hasBit(driver.features, VirtioFeature.IN_ORDER)).toBe(false);
    driver.close();
  });

  it('a ring of 200 (not a power of two) goes round 10 times', async () => {
    const { driver } = await roundTrip({ queueSize: 200, mrgRxbuf: false }, 2000, 1514, ['single']);
    expect(driver.packedRings.tx.position).toEqual(lapsOf(2000, 200));
    // Without MRG_RXBUF each frame took one two-descriptor receive buffer.
    expect(driver.packedRings.rx.position.usedIdx).toBe((2 * 2000) % 200);
    driver.close();
  });

  it('two queue pairs: every frame back on the pair it was sent on', async () => {
    const r = receiver((pair) => pair * 100_000, 1514);
    const { backend, driver } = await start({ queuePairs: 2 }, { queuePairs: 2 }, r.onFrames);
    await Promise.all([pump(driver, 0, 0, 1500, 1514), pump(driver, 1, 100_000, 1500, 1514)]);
    expect(await until(() => r.got[0] + r.got[1] >= 3000, 20_000)).toBe(true);
    expect(r.bad).toEqual([]);
    expect(r.got).toEqual([1500, 1500]);
    const s = backend.device.stats();
    expect(s.map((q) => q.packets)).toEqual([1500n, 1500n, 1500n, 1500n]);
    driver.close();
  });

  it('is refused in one line when the device does not offer packed rings', async () => {
    const backend = fx.start();
    const device = backend.device as { features: bigint };
    device.features &= ~(1n << BigInt(VirtioFeature.RING_PACKED));
    const err = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory, packed: true }).catch((e: Error) => e);
    expect(err).toMatchObject({
      code: 'ENOTSUP',
      message: 'the device does not offer packed rings (VIRTIO_F_RING_PACKED): drop the packed option',
    });
  });
});

/** TX descriptors of `count` frames in LAYOUTS' turn: single 1, split-header 3, indirect 1. */
function descriptorsOf(count: number): number {
  let n = 0;
  for (let i = 0; i < count; i++) n += LAYOUTS[i % 3] === 'split-header' ? 3 : 1;
  return n;
}

/** Where both sides stand after `descs` one-descriptor buffers, all used, in a ring of `size`. */
function lapsOf(descs: number, size: number): PackedPosition {
  const wrap = 1 ^ (Math.floor(descs / size) & 1);
  return { availIdx: descs % size, availWrap: wrap, usedIdx: descs % size, usedWrap: wrap };
}

describe('packed ring bases', () => {
  it('GET_VRING_BASE after traffic gives the indexes and wrap counters; a reconnect resumes there', async () => {
    const r = receiver(() => 0, 1514);
    const opts = { queueSize: 200, mrgRxbuf: false, onFrames: r.onFrames };
    const { driver } = await start(opts, {}, r.onFrames);
    await pump(driver, 0, 0, 1234, 1514, ['single']);
    expect(await until(() => r.got[0] >= 1234 && driver.packedRings.tx.outstanding === 0)).toBe(true);
    const tx = await driver.vringBase(1);
    const rx = await driver.vringBase(0);
    expect(tx).toBe(encodePackedBase(lapsOf(1234, 200)));
    expect(rx).toBe(encodePackedBase(lapsOf(2 * 1234, 200))); // a two-descriptor buffer per frame
    expect(tx).toBe(encodePackedBase(driver.packedRings.tx.position));
    driver.close();

    const again = await VirtioNetDriver.start({
      socketPath: fx.backend.socketPath,
      memory: fx.memory,
      packed: true,
      ...opts,
      vringBases: [rx, tx],
    });
    drivers.push(again);
    await pump(again, 0, 1234, 766, 1514, ['single']);
    expect(await until(() => r.got[0] >= 2000)).toBe(true);
    expect(r.bad).toEqual([]);
    expect(r.got[0]).toBe(2000);
    expect(await again.vringBase(1)).toBe(encodePackedBase(lapsOf(2000, 200)));
    expect(await again.vringBase(0)).toBe(encodePackedBase(lapsOf(4000, 200)));
    again.close();
    expect(fx.warnings).toEqual([]);
  });
});
