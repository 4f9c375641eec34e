/**
 * The js port end to end: our front-end sends frames of 60..1514 bytes, a JavaScript echo in this
 * process swaps their MACs in place and sends the batch itself back, and every frame returns
 * byte-identical otherwise; with one and two queue pairs, split and packed rings. The echo must
 * never have copied a frame (each send is a reference to the view it got).
 */
import { describe, expect, it } from 'vitest';
import { VirtioNetDriver, type NetDriverOptions } from '../lib/frontend/net_driver';
import { useBackendFixture } from './helpers/fixture';
import { macSwapped, makeFrame } from './helpers/frames';
import { jsEcho } from './helpers/js_echo';

const fx = useBackendFixture();

/** Checks that each of frames 0..count-1 returns once, MAC-swapped, on any pair. */
function receiver(count: number) {
  const seen = new Uint8Array(count);
  const state = { got: 0, bad: [] as string[] };
  const onFrames = (frames: Buffer[]) => {
    for (const f of frames) {
      const i = f.length >= 18 ? f.readUInt32BE(14) : -1;
      if (i < 0 || i >= count || seen[i] || !f.equals(macSwapped(makeFrame(i)))) {
        if (state.bad.length < 3) state.bad.push(`frame ${i} (${f.length} bytes) wrong or repeated`);
        continue;
      }
      seen[i] = 1;
      state.got++;
    }
  };
  return { state, onFrames };
}

/** Sends frames 0..count-1 spread over the pairs, then waits until all came back (or 20 s passed). */
async function pump(driver: VirtioNetDriver, count: number, pairs: number, state: { got: number; bad: string[] }): Promise<void> {
  let sent = 0;
  while (sent < count) {
    for (let p = 0; p < pairs; p++) {
      while (sent < count && driver.txSpaceOf(p) > 0) driver.send(makeFrame(sent++), 'single', p);
    }
    driver.flush();
    if (sent < count) await Promise.race([driver.waitTxSpace(), new Promise((r) => setTimeout(r, 50))]);
  }
  const deadline = Date.now() + 20_000;
  while (state.got < count && state.bad.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

const MATRIX: { pairs: number; opts: Partial<NetDriverOptions> }[] = [
  { pairs: 1, opts: {} },
  { pairs: 1, opts: { packed: true } },
  { pairs: 2, opts: {} },
  { pairs: 2, opts: { packed: true } },
  { pairs: 1, opts: { mrgRxbuf: false, eventIdx: false } },
];

describe('js port: frames in JavaScript', () => {
  for (const { pairs, opts } of MATRIX) {
    const name = `${pairs} pair${pairs > 1 ? 's' : ''}, ${opts.packed ? 'packed' : 'split'}${opts.mrgRxbuf === false ? ', no MRG_RXBUF' : ''}`;
    it(`a JS echo returns 100,000 frames of 60..1514 bytes MAC-swapped (${name})`, async () => {
      const backend = fx.start({ port: 'js', queuePairs: pairs });
      const echo = jsEcho(backend.device);
      const { state, onFrames } = receiver(100_000);
      const driver = await VirtioNetDriver.start({
        socketPath: backend.socketPath,
        memory: fx.memory,
        queuePairs: pairs,
        onFrames,
        ...opts,
      });
      await pump(driver, 100_000, pairs, state);
      expect(state.bad).toEqual([]);
      expect(state.got).toBe(100_000);
      const stats = backend.device.stats();
      const sum = (q: number, key: 'packets' | 'drops' | 'errors') => stats.filter((_, i) => i % 2 === q).reduce((a, s) => a + s[key], 0n);
      expect(sum(1, 'packets')).toBe(100_000n);
      expect(sum(0, 'packets')).toBe(100_000n);
      expect(sum(0, 'drops') + sum(1, 'drops') + sum(0, 'errors') + sum(1, 'errors')).toBe(0n);
      expect(backend.device.sendCounts).toEqual({ referenced: 100_000, copied: 0 });
      driver.close();
      backend.close();
      expect(await echo).toBe(100_000);
    });
  }
});
