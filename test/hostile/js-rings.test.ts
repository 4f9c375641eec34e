/**
 * A program that writes garbage into the js port's shared rings: the mapping is the program's to
 * scribble on (any view's .buffer is all of it), so the worker trusts nothing it reads there.
 * Descriptors outside one slot are counted (stats `errors`) and skipped while good ones around
 * them are delivered; an index moved out of the ring's reach breaks that pair's JS rings with a
 * logged reason, and the other pair, another device and a later connection keep working. Plus the
 * legal oddities a careless program does: the same batch sent twice, a subarray of a view, nothing.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VhostUserBackend } from '../../lib/backend';
import type { NativeFrameRings } from '../../lib/binding';
import { GuestMemory } from '../../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../../lib/frontend/net_driver';
import { FrameLayout } from '../../lib/net/frame_layout';
import { useBackendFixture } from '../helpers/fixture';
import { fdKinds, macSwapped, makeFrame } from '../helpers/frames';
import { countJsRingMappings, jsEcho } from '../helpers/js_echo';
import { sleep, until, within } from '../helpers/until';

const fx = useBackendFixture();

async function start(queuePairs: number) {
  const backend = fx.start({ port: 'js', queuePairs });
  const received: Buffer[][] = Array.from({ length: queuePairs }, () => []);
  const driver = await VirtioNetDriver.start({
    socketPath: backend.socketPath,
    memory: fx.memory,
    queuePairs,
    onFrames: (f, pair) => received[pair].push(...f),
  });
  await until(() => backend.device.activePairs().length === queuePairs);
  // The rings as the program could reach them: the same mapping frames() hands views into.
  const rings: NativeFrameRings = backend.device.native.frameRings(256, 2048);
  const layout = new FrameLayout(rings);
  return { backend, driver, received, rings, layout };
}

/** Writes descriptors straight into the ring from JS of `pair` and publishes them, as a hostile program would. */
function produce(r: Awaited<ReturnType<typeof start>>, pair: number, descs: [number, number][]): void {
  const ring = r.layout.fromJs[pair];
  let head = ring.head();
  for (const [offset, len] of descs) ring.setDesc(head++, offset, len);
  ring.setHead(head);
  r.backend.device.native.serveInline(true); // the port looks, as the program's next call would make it
}

/** A frame written into the program's own slot `index` of `pair`; returns its descriptor. */
function ownFrame(r: Awaited<ReturnType<typeof start>>, pair: number, index: number, frame: Buffer): [number, number] {
  const offset = r.layout.slotOffset(pair, 1, index);
  r.layout.bytes.set(frame, offset);
  return [offset, frame.length];
}

/** Whether the data path logged a line containing every part (the backend also drains the log into warnings, once a second). */
function logged(r: Awaited<ReturnType<typeof start>>, ...parts: string[]): Promise<boolean> {
  const seen: string[] = [];
  return until(() => {
    seen.push(...r.backend.device.takeEvents());
    return [...seen, ...fx.warnings].some((line) => parts.every((p) => line.includes(p)));
  });
}

const rxErrors = (r: Awaited<ReturnType<typeof start>>, pair: number) => r.backend.device.stats()[2 * pair].errors;

describe('js port: a hostile program', () => {
  it('descriptors outside one slot are counted and skipped; the good ones around them arrive', async () => {
    const r = await start(1);
    const { slotsStart, slotSize } = r.rings;
    const end = r.layout.buffer.byteLength;
    const bad: [number, number][] = [
      [slotsStart, 0], // empty
      [slotsStart, slotSize + 1], // longer than a slot
      [slotsStart + slotSize - 10, 60], // across a slot's end
      [0, 60], // the doorbell page
      [r.rings.ringsStart, 60], // a ring header
      [end - 30, 60], // past the mapping
      [end + 4096, 60], // far past it
      [0xffffffc0, 64], // wrapping
    ];
    const good = (i: number) => ownFrame(r, 0, i, makeFrame(i));
    const descs: [number, number][] = [good(0), ...bad, good(1)];
    produce(r, 0, descs);
    expect(await until(() => r.received[0].length === 2)).toBe(true);
    expect(r.received[0].map((f) => f.readUInt32BE(14))).toEqual([0, 1]);
    expect(r.received[0][0].equals(makeFrame(0))).toBe(true);
    expect(await until(() => rxErrors(r, 0) === BigInt(bad.length))).toBe(true);
    expect(r.layout.fromJs[0].tail()).toBe(descs.length); // all taken, the slots free again
    r.driver.close();
  });

  it('an index moved out of reach breaks that pair only; the other pair and another device go on', async () => {
    const r = await start(2);
    // A bystander: another js device in the same process, echoing throughout.
    const bystander = new VhostUserBackend({ socketPath: path.join(fx.dir, 'bystander.sock'), device: { port: 'js' } });
    bystander.start();
    const bystanderEcho = jsEcho(bystander.device);
    const bystanderGot: Buffer[] = [];
    const bystanderMemory = new GuestMemory();
    const b = await VirtioNetDriver.start({
      socketPath: bystander.socketPath,
      memory: bystanderMemory,
      onFrames: (f) => bystanderGot.push(...f),
    });
    // Pair 0's ring from JS: head far beyond the tail.
    r.layout.fromJs[0].setHead(r.layout.fromJs[0].tail() + 100_000);
    r.backend.device.native.serveInline(true);
    expect(await logged(r, 'js port, pair 0', 'out of reach')).toBe(true);
    // Pair 1 still delivers what the program sends.
    produce(r, 1, [ownFrame(r, 1, 0, makeFrame(7))]);
    expect(await until(() => r.received[1].length === 1)).toBe(true);
    expect(r.received[1][0].equals(makeFrame(7))).toBe(true);
    // Pair 1's ring toward JS: tail ahead of the head.
    r.layout.toJs[1].setTail(r.layout.toJs[1].head() + 5);
    // The guest's frames on pair 1 are taken and dropped now, not left in its ring.
    const echo = r.backend.device.frames();
    r.driver.send(makeFrame(1), 'single', 1);
    r.driver.flush();
    expect(await until(() => r.backend.device.stats()[3].drops + r.backend.device.stats()[3].packets > 0n)).toBe(true);
    expect(await logged(r, 'js port, pair 1', 'out of reach')).toBe(true);
    await echo.return?.();
    r.driver.close();
    for (let i = 0; i < 10; i++) b.send(makeFrame(i));
    b.flush();
    expect(await until(() => bystanderGot.length === 10)).toBe(true);
    b.close();
    bystander.close();
    bystanderMemory.close();
    await bystanderEcho;
    // A new connection starts with fresh rings: the echo works on both pairs again.
    const again = jsEcho(r.backend.device, { stopAfter: 20 });
    const got: Buffer[] = [];
    const d2 = await VirtioNetDriver.start({
      socketPath: r.backend.socketPath,
      memory: fx.memory,
      queuePairs: 2,
      onFrames: (f) => got.push(...f),
    });
    for (let i = 0; i < 20; i++) d2.send(makeFrame(i), 'single', i % 2);
    d2.flush();
    expect(await within(again, 10_000, 'the echo after reconnecting')).toBe(20);
    expect(await until(() => got.length === 20)).toBe(true);
    for (const f of got) expect(f.equals(macSwapped(makeFrame(f.readUInt32BE(14))))).toBe(true);
    d2.close();
  });

  it('the same batch sent twice, a subarray of a view, and an empty send all behave', async () => {
    const fdsBefore = fdKinds();
    const r = await start(1);
    const device = r.backend.device;
    const loop = (async () => {
      for await (const batch of device.frames()) {
        await device.send(batch);
        await device.send(batch); // each frame twice: its slot stays held until both are copied
        await device.send([batch[0].subarray(6)]); // a frame from inside a view: sent by reference
        await device.send([]);
        break;
      }
    })();
    r.driver.send(makeFrame(3));
    r.driver.flush();
    await within(loop, 10_000, 'the loop');
    expect(await until(() => r.received[0].length === 3)).toBe(true);
    expect(r.received[0][0].equals(makeFrame(3))).toBe(true);
    expect(r.received[0][1].equals(makeFrame(3))).toBe(true);
    expect(r.received[0][2].equals(makeFrame(3).subarray(6))).toBe(true);
    expect(device.sendCounts).toEqual({ referenced: 3, copied: 0 });
    r.driver.close();
    r.backend.close();
    await sleep(50);
    expect(countJsRingMappings()).toBe(0);
    expect(fdKinds()).toEqual(fdsBefore);
  });
});
