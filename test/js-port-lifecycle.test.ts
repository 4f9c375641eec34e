/**
 * The js port's life around the frames: a program that stops reading (the guest waits, nothing is
 * lost), leaving the loop, a disconnect while the program holds a batch or waits in send(), close()
 * inside the loop; each ends cleanly, and no fd or mapping is left behind. Plus the one-line
 * errors of misuse.
 */
import { describe, expect, it } from 'vitest';
import { VhostUserError } from '../lib/errors';
import { VirtioNetDriver, type NetDriverOptions } from '../lib/frontend/net_driver';
import { useBackendFixture } from './helpers/fixture';
import { fdKinds, macSwapped, makeFrame } from './helpers/frames';
import { countJsRingMappings, jsEcho } from './helpers/js_echo';
import { sleep, until, within } from './helpers/until';

const fx = useBackendFixture();

/** A driver that counts what it receives and checks it is the echo of what was sent. */
async function startDriver(opts: Partial<NetDriverOptions> = {}) {
  const got = { count: 0, bad: 0 };
  const driver = await VirtioNetDriver.start({
    socketPath: fx.backend.socketPath,
    memory: fx.memory,
    onFrames: (frames) => {
      for (const f of frames) {
        if (f.length < 18 || !f.equals(macSwapped(makeFrame(f.readUInt32BE(14))))) got.bad++;
        got.count++;
      }
    },
    ...opts,
  });
  return { driver, got };
}

/** Sends frames first..first+count-1, waiting for ring space as the guest would. */
async function sendFrames(driver: VirtioNetDriver, first: number, count: number): Promise<void> {
  for (let i = first; i < first + count;) {
    while (i < first + count && driver.txSpace > 0) driver.send(makeFrame(i++));
    driver.flush();
    if (i < first + count) await Promise.race([driver.waitTxSpace(), sleep(50)]);
  }
}

const totals = (q: 0 | 1) =>
  fx.backend.device
    .stats()
    .filter((_, i) => i % 2 === q)
    .reduce((a, s) => ({ packets: a.packets + s.packets, drops: a.drops + s.drops }), { packets: 0n, drops: 0n });

async function rejection(p: Promise<unknown>): Promise<VhostUserError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VhostUserError);
  return err as VhostUserError;
}

describe('js port: back-pressure and endings', () => {
  it('a program that stops reading for 2 s makes the guest wait; nothing is dropped and traffic resumes', async () => {
    fx.start({ port: 'js' });
    let stalled = false;
    const echo = jsEcho(fx.backend.device, {
      onBatch: async () => {
        if (stalled) return;
        stalled = true;
        await sleep(2000);
      },
    });
    const { driver, got } = await startDriver();
    const total = 3000; // more than the guest's TX ring (256) and the ring toward JS (256) together
    const sending = sendFrames(driver, 0, total);
    await sleep(1000);
    // Mid-stall: the guest's ring is full, nothing was dropped, little came back.
    expect(driver.txSpace).toBe(0);
    expect(got.count).toBeLessThan(total);
    expect(totals(1).drops).toBe(0n);
    await within(sending, 20_000, 'the guest to send everything after the stall');
    expect(await until(() => got.count === total, 20_000)).toBe(true);
    expect(got.bad).toBe(0);
    expect(totals(0).drops + totals(1).drops).toBe(0n);
    driver.close();
    fx.backend.close();
    expect(await echo).toBe(total);
  });

  it('leaving the loop ends it; guest TX is then dropped and counted; a new loop echoes again', async () => {
    fx.start({ port: 'js' });
    const first = jsEcho(fx.backend.device, { stopAfter: 100 });
    const { driver, got } = await startDriver();
    await sendFrames(driver, 0, 100);
    expect(await first).toBeGreaterThanOrEqual(100);
    expect(await until(() => got.count === 100)).toBe(true);
    // Nobody reads: the frames are taken from the guest and dropped, not left in its ring.
    await sendFrames(driver, 100, 50);
    expect(await until(() => totals(1).drops === 50n)).toBe(true);
    expect(got.count).toBe(100);
    const second = jsEcho(fx.backend.device, { stopAfter: 50 });
    await sendFrames(driver, 150, 50);
    expect(await within(second, 10_000, 'the second loop')).toBe(50);
    expect(await until(() => got.count === 150)).toBe(true);
    expect(got.bad).toBe(0);
    driver.close();
  });

  it('a disconnect while the program holds a batch: its send rejects (ENOTCONN) and the loop ends', async () => {
    const backend = fx.start({ port: 'js' });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const gotBatch = new Promise<void>((r) => (holding = r));
    const echo = jsEcho(backend.device, {
      onBatch: async () => {
        holding();
        await held;
      },
    }).catch((e: unknown) => e);
    const { driver } = await startDriver();
    await sendFrames(driver, 0, 10);
    await within(gotBatch, 10_000, 'the first batch');
    const disconnected = new Promise((r) => backend.once('disconnect', r));
    driver.close();
    await within(disconnected, 10_000, 'the disconnect');
    release();
    const err = (await echo) as VhostUserError;
    expect(err).toBeInstanceOf(VhostUserError);
    expect(err.code).toBe('ENOTCONN');
    // A new loop after the disconnect starts; it waits for the next front-end.
    const again = jsEcho(backend.device, { stopAfter: 5 });
    const second = await startDriver();
    await sendFrames(second.driver, 0, 5);
    expect(await within(again, 10_000, 'the loop of the second connection')).toBe(5);
    second.driver.close();
  });

  it('a send waiting for receive buffers rejects (ENOTCONN) when the front-end disconnects', async () => {
    const backend = fx.start({ port: 'js' });
    const { driver } = await startDriver({ rxBuffers: 0 }); // a guest that posts no receive buffers
    await until(() => backend.device.activePairs().length === 1 && driver.isOpen);
    await sleep(50);
    const frames = Array.from({ length: 300 }, (_, i) => makeFrame(i)); // more than the ring's 256 slots
    const sending = backend.device.send(frames);
    let settled = false;
    void sending.then(
      () => (settled = true),
      () => (settled = true),
    );
    await sleep(300);
    expect(settled).toBe(false);
    driver.close();
    const err = await rejection(within(sending, 10_000, 'the waiting send to end'));
    expect(err.code).toBe('ENOTCONN');
    expect(err.message).toMatch(/no front-end is connected/);
  });

  it('close() inside the loop: the loop ends, send rejects (ESHUTDOWN), held views read empty, the rings are unmapped', async () => {
    const fdsBefore = fdKinds();
    const backend = fx.start({ port: 'js' });
    let view: Uint8Array | undefined;
    let sendError: unknown;
    const loop = (async () => {
      for await (const batch of backend.device.frames()) {
        view = batch[0];
        backend.close();
        sendError = await backend.device.send(batch).catch((e: unknown) => e);
      }
    })();
    const { driver } = await startDriver();
    await sendFrames(driver, 0, 5);
    await within(loop, 10_000, 'the loop to end');
    expect(sendError).toBeInstanceOf(VhostUserError);
    expect((sendError as VhostUserError).code).toBe('ESHUTDOWN');
    expect(view?.byteLength).toBe(0);
    expect(countJsRingMappings()).toBe(0);
    expect(() => backend.device.frames()).toThrow(/the device is closed/);
    driver.close();
    await sleep(50);
    expect(fdKinds()).toEqual(fdsBefore);
  });

  it('20 connections with a loop each leave no fd or mapping behind', async () => {
    const fdsBefore = fdKinds();
    for (let i = 0; i < 20; i++) {
      const backend = fx.start({ port: 'js', queuePairs: 2 });
      const echo = jsEcho(backend.device, { stopAfter: 10 });
      const { driver, got } = await startDriver({ queuePairs: 2 });
      await sendFrames(driver, 0, 10);
      expect(await within(echo, 10_000, 'the echo')).toBe(10);
      expect(await until(() => got.count === 10)).toBe(true);
      driver.close();
      backend.close();
      fx.memory.resetAllocator();
    }
    await sleep(50);
    expect(countJsRingMappings()).toBe(0);
    expect(fdKinds()).toEqual(fdsBefore);
  });
});

describe('js port: misuse is one line', () => {
  it('refuses a second loop, frames() on another port, too long a frame, a pair not enabled, a send with no front-end', async () => {
    const backend = fx.start({ port: 'js', queuePairs: 2 });
    const first = backend.device.frames();
    expect(() => backend.device.frames()).toThrow('frames() is already being iterated: one consumer per device');
    await first.return?.();
    expect((await rejection(backend.device.send([new Uint8Array(60)]))).code).toBe('ENOTCONN');
    const { driver } = await startDriver();
    await until(() => driver.isOpen);
    await sleep(50);
    const tooLong = await rejection(backend.device.send([new Uint8Array(60), new Uint8Array(2049)]));
    expect(tooLong.code).toBe('EMSGSIZE');
    expect(tooLong.message).toContain('frame 1 is 2049 bytes');
    expect(tooLong.message).toContain('raise the device');
    expect(backend.device.sendCounts).toEqual({ referenced: 0, copied: 0 }); // all or nothing
    expect((await rejection(backend.device.send([new Uint8Array(60)], { pair: 1 }))).message).toContain(
      'pair 1 is not enabled by the guest',
    );
    driver.close();
    const loopback = fx.start({ port: 'loopback' });
    expect(() => loopback.device.frames()).toThrow("frames() needs the js port: device: { port: 'js' }");
  });
});
