/**
 * Dirty-page logging (item 1 of #14) with our own front-end doing what QEMU does when it migrates a
 * guest: a sealed memfd log (SET_LOG_BASE, always answered), VHOST_F_LOG_ALL in SET_FEATURES, the
 * rings' addresses again with VHOST_VRING_F_LOG. The log marks the rings' device-written pages and
 * the buffers the device filled, nothing while logging is off or after it stops (the regression
 * rust-vmm had), and switching it on and off under traffic disturbs nothing. Which pages exactly: the
 * page-by-page oracle in native/test/dirty_log_test.cc.
 */
import { describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { FrontendDirtyLog } from '../lib/frontend/dirty_log';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { useBackendFixture } from './helpers/fixture';
import { macSwapped, makeFrame } from './helpers/frames';
import { until } from './helpers/until';

const fx = useBackendFixture();

/** A driver on a fresh loopback back-end that checks every frame it gets back; `sendAll` sends n more. */
async function looped(packed: boolean) {
  fx.start();
  let next = 0;
  let bad = 0;
  const driver = await VirtioNetDriver.start({
    socketPath: fx.backend.socketPath,
    memory: fx.memory,
    packed,
    onFrames: (frames) => {
      for (const f of frames) if (!f.equals(macSwapped(makeFrame(next++)))) bad++;
    },
  });
  let sent = 0;
  const sendAll = async (n: number) => {
    const target = sent + n;
    while (sent < target) {
      while (sent < target && driver.txSpace > 0) driver.send(makeFrame(sent++));
      driver.flush();
      if (sent < target) await driver.waitTxSpace();
    }
    expect(await until(() => next === target)).toBe(true);
  };
  return { driver, sendAll, bad: () => bad };
}

describe('dirty-page logging', () => {
  for (const packed of [false, true]) {
    it(`${packed ? 'packed' : 'split'}: nothing until asked, then the rings and the buffers it fills, nothing once LOG_ALL is off`, async () => {
      const { driver, sendAll, bad } = await looped(packed);
      const unused = new FrontendDirtyLog(64 << 20);
      await sendAll(500);
      expect(fx.backend.device.logging).toBe(false);

      const log = await driver.startLogging();
      expect(fx.backend.device.logging).toBe(true);
      log.take(); // what the SET_VRING_ADDRs themselves caused
      await sendAll(2000);
      const marked = log.take();
      const rings = driver.ringPagesWritten();
      expect(rings.filter((p) => !marked.includes(p))).toEqual([]);
      // 2,000 frames of up to 1,514 bytes in 1 KiB buffers: many buffer pages besides the rings'.
      expect(marked.length).toBeGreaterThan(rings.length + 16);

      await driver.stopLogging();
      expect(fx.backend.device.logging).toBe(false);
      log.take();
      await sendAll(2000);
      expect(log.take()).toEqual([]);
      expect(unused.take()).toEqual([]);
      expect(bad()).toBe(0);
      expect(fx.warnings).toEqual([]);
      driver.close();
      log.close();
      unused.close();
    });
  }

  it('switched on and off 20 times under traffic: every frame arrives intact and in order', async () => {
    const { driver, sendAll, bad } = await looped(false);
    const log = FrontendDirtyLog.over(fx.memory);
    for (let i = 0; i < 20; i++) {
      const traffic = sendAll(1000);
      await (i % 2 === 0 ? driver.startLogging(log) : driver.stopLogging());
      await traffic;
    }
    expect(bad()).toBe(0);
    expect(fx.warnings).toEqual([]);
    driver.close();
    log.close();
  });

  it('a new log replaces the old one: once SET_LOG_BASE is answered, only the new one is written', async () => {
    const { driver, sendAll } = await looped(false);
    const first = await driver.startLogging();
    await sendAll(500);
    expect(first.take().length).toBeGreaterThan(0);
    const second = await driver.startLogging();
    first.take();
    second.take();
    await sendAll(500);
    expect(first.take()).toEqual([]);
    expect(second.take().length).toBeGreaterThan(0);
    driver.close();
    first.close();
    second.close();
  });

  it('a log too small for the memory table: the connection is closed with the reason (SET_LOG_BASE cannot be nacked)', async () => {
    const { driver } = await looped(false);
    const small = new FrontendDirtyLog(4096 * 64); // 256 KiB of guest memory: the table is larger
    const gone = once(fx.backend, 'disconnect');
    await expect(driver.startLogging(small)).rejects.toThrow();
    const [reason] = (await gone) as [Error | undefined];
    expect(reason?.message).toMatch(/SET_LOG_BASE: a log of 8 bytes covers 262144 bytes of guest memory, which ends at \d+/);
    driver.close();
    small.close();
  });
});
