/**
 * End to end through a real unix socket: our front-end negotiates with the back-end like QEMU,
 * shares a two-region memory table, and pushes frames through the loopback port.
 */
import { describe, expect, it } from 'vitest';
import { VirtioNetDriver, type NetDriverOptions, type TxLayout } from '../lib/frontend/net_driver';
import { useBackendFixture } from './helpers/fixture';
import { macSwapped, makeFrame } from './helpers/frames';

const LAYOUTS: TxLayout[] = ['single', 'split-header', 'indirect'];

const fx = useBackendFixture();

/** Sends `count` frames starting at frame number `first` and checks every one comes back right. */
async function pump(driver: VirtioNetDriver, first: number, count: number, check: { next: number; bad: number }) {
  let sent = 0;
  const target = check.next + count;
  const stuck = () => new Promise((r) => setTimeout(r, 10_000));
  while (sent < count && driver.isOpen) {
    while (sent < count && driver.txSpace > 0) {
      const i = first + sent;
      driver.send(makeFrame(i), LAYOUTS[i % 3]);
      sent++;
    }
    driver.flush();
    if (sent < count && (await Promise.race([driver.waitTxSpace().then(() => false), stuck().then(() => true)]))) break;
  }
  const deadline = Date.now() + 10_000;
  while (check.next < target && Date.now() < deadline && driver.isOpen) await new Promise((r) => setTimeout(r, 2));
  if (check.next < target) {
    // A stall: say where each ring stands, so that the failure explains itself.
    const view = (r: { availGpa: number; usedGpa: number; outstanding: number }) => {
      const a = fx.memory.view(r.availGpa, 4);
      const u = fx.memory.view(r.usedGpa, 4);
      return `avail flags=${a.readUInt16LE(0)} idx=${a.readUInt16LE(2)} used flags=${u.readUInt16LE(0)} idx=${u.readUInt16LE(2)} outstanding=${r.outstanding}`;
    };
    const stats = fx.backend.device.stats().map((s) => JSON.stringify(s, (_, v) => (typeof v === 'bigint' ? Number(v) : v)));
    throw new Error(
      `stalled at ${check.next}/${target} (sent ${sent}): rx ${view(driver.rings.rx)}; tx ${view(driver.rings.tx)}; stats ${stats.join(' ')}`,
    );
  }
}

function checker(first: number) {
  const state = { next: first, bad: 0, firstBad: '' };
  const onFrames = (frames: Buffer[]) => {
    for (const f of frames) {
      const want = macSwapped(makeFrame(state.next));
      if (!f.equals(want)) {
        state.bad++;
        if (!state.firstBad) state.firstBad = `frame ${state.next}: got ${f.length} bytes, want ${want.length}`;
      }
      state.next++;
    }
  };
  return { state, onFrames };
}

const MODES: { name: string; opts: Partial<NetDriverOptions>; pollUs?: number }[] = [
  { name: 'EVENT_IDX + MRG_RXBUF', opts: { eventIdx: true, mrgRxbuf: true } },
  { name: 'no EVENT_IDX, no MRG_RXBUF', opts: { eventIdx: false, mrgRxbuf: false, indirect: false } },
  { name: 'EVENT_IDX, no MRG_RXBUF', opts: { eventIdx: true, mrgRxbuf: false } },
  { name: 'MRG_RXBUF with 256-byte buffers', opts: { eventIdx: false, mrgRxbuf: true, rxBufferSize: 256 } },
  // The worker purely event-driven (no busy polling): every burst waits for a kick.
  { name: 'EVENT_IDX + MRG_RXBUF, event-driven worker', opts: { eventIdx: true, mrgRxbuf: true }, pollUs: 0 },
  { name: 'no EVENT_IDX, no MRG_RXBUF, event-driven worker', opts: { eventIdx: false, mrgRxbuf: false }, pollUs: 0 },
];

describe('loopback port over a real socket', () => {
  for (const mode of MODES) {
    it(`returns 100,000 frames of 60..1514 bytes MAC-swapped (${mode.name})`, async () => {
      const backend = fx.start({ pollUs: mode.pollUs });
      const { state, onFrames } = checker(0);
      const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory, onFrames, ...mode.opts });
      await pump(driver, 0, 100_000, state);
      driver.close();
      expect(state.firstBad).toBe('');
      expect(state.next).toBe(100_000);
      const [rx, tx] = backend.device.stats();
      expect(tx.packets).toBe(100_000n);
      expect(rx.packets).toBe(100_000n);
      expect(tx.drops + tx.errors + rx.drops + rx.errors).toBe(0n);
      expect(fx.warnings).toEqual([]);
    });
  }
});
