/**
 * The ring state a migration hands over (item 2 of #14), with our own front-end in the role of QEMU:
 * in the middle of traffic, with frames queued that the first back-end has not taken, every ring is
 * stopped there (GET_VRING_BASE) and a second back-end on the same guest memory resumes each ring
 * where it stood (SET_VRING_BASE). Every frame then comes back exactly once, intact and in order: none
 * lost, none used twice. Split and packed; and back again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { VhostUserBackend } from '../lib/backend';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { useBackendFixture } from './helpers/fixture';
import { macSwapped, makeFrame } from './helpers/frames';
import { until } from './helpers/until';

const fx = useBackendFixture();
const others: VhostUserBackend[] = [];
afterEach(() => {
  for (const b of others.splice(0)) b.close();
});

describe('ring state handed over between two back-ends mid-traffic', () => {
  for (const packed of [false, true]) {
    it(`${packed ? 'packed' : 'split'}: every frame back exactly once, in order, across two handovers`, async () => {
      const first = fx.start();
      const warnings: string[] = [];
      const second = new VhostUserBackend({
        socketPath: path.join(fx.dir, 'second.sock'),
        device: { port: 'loopback' },
        log: (level, m) => level === 'warn' && warnings.push(m),
      });
      others.push(second);
      second.start();
      const got: Buffer[] = [];
      const driver = await VirtioNetDriver.start({
        socketPath: first.socketPath,
        memory: fx.memory,
        packed,
        onFrames: (frames) => got.push(...frames),
      });
      let sent = 0;
      // Queues a burst and kicks: the device is working on it when the handover begins.
      const burst = (n: number) => {
        for (let i = 0; i < n && driver.txSpace > 0; i++) driver.send(makeFrame(sent++));
        driver.flush();
      };
      const settle = async (target: number) => {
        while (sent < target) {
          burst(target - sent);
          if (sent < target) await driver.waitTxSpace();
        }
      };
      await settle(3000);
      burst(200); // in flight, partly taken, when the rings stop
      await driver.handOver(second.socketPath);
      expect(first.connected).toBe(false);
      await settle(6000);
      burst(200);
      await driver.handOver(first.socketPath);
      await settle(9000);
      expect(await until(() => got.length >= sent)).toBe(true);
      await new Promise((r) => setTimeout(r, 100)); // and no more than that
      expect(got.length).toBe(sent);
      const wrong = got.map((f, i) => (f.equals(macSwapped(makeFrame(i))) ? -1 : i)).filter((i) => i >= 0);
      expect(wrong).toEqual([]);
      // Both back-ends moved frames: the second from where the first stopped.
      expect(second.device.stats()[1].packets).toBeGreaterThan(0n);
      expect(fx.warnings.concat(warnings)).toEqual([]);
      driver.close();
    });
  }
});
