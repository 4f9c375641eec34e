/**
 * The per-queue counters under DPDK's names and meanings: known traffic through the loopback port
 * lands in the right size bins, multicast and broadcast are told apart by the destination MAC (the
 * loopback swaps MACs, so the guest's RX sees the TX frame's source), notifications add up.
 */
import { describe, expect, it } from 'vitest';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { DPDK_NAMES, STAT_NAMES, dpdkQueueName, formatStats, type QueueStats } from '../lib/net/stats';
import { useBackendFixture } from './helpers/fixture';
import { macSwapped } from './helpers/frames';
import { until } from './helpers/until';

const fx = useBackendFixture();

const UNICAST = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const OTHER = [0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc];
const MULTICAST = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
const BROADCAST = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

function frame(len: number, dst: number[], src: number[], seq: number): Buffer {
  const f = Buffer.alloc(len);
  f.set(dst, 0);
  f.set(src, 6);
  f.writeUInt16BE(0x88b5, 12);
  if (len >= 18) f.writeUInt32BE(seq, 14);
  return f;
}

/** Frame lengths (without the virtio-net header) and the DPDK bin each belongs to. */
const SIZES: [len: number, bin: keyof QueueStats, count: number][] = [
  [60, 'undersize', 3],
  [63, 'undersize', 1],
  [64, 'size64', 4],
  [65, 'size65To127', 2],
  [127, 'size65To127', 1],
  [128, 'size128To255', 2],
  [255, 'size128To255', 1],
  [256, 'size256To511', 1],
  [511, 'size256To511', 1],
  [512, 'size512To1023', 1],
  [1023, 'size512To1023', 1],
  [1024, 'size1024To1518', 1],
  [1518, 'size1024To1518', 2],
  [1519, 'size1519ToMax', 1],
  [1800, 'size1519ToMax', 1],
];

async function sendAll(driver: VirtioNetDriver, frames: Buffer[], received: () => number) {
  const before = received();
  for (let i = 0; i < frames.length;) {
    while (i < frames.length && driver.txSpace > 0) driver.send(frames[i++]);
    driver.flush();
    if (i < frames.length) await driver.waitTxSpace();
  }
  expect(await until(() => received() === before + frames.length)).toBe(true);
}

describe('DPDK-named per-queue counters', () => {
  it('counts sizes, multicast and broadcast per direction, and every name maps', async () => {
    const backend = fx.start({ pollUs: 0 });
    const got: Buffer[] = [];
    const driver = await VirtioNetDriver.start({
      socketPath: backend.socketPath,
      memory: fx.memory,
      maxFrame: 2000,
      onFrames: (f) => got.push(...f),
    });
    const frames: Buffer[] = [];
    for (const [len, , count] of SIZES) for (let k = 0; k < count; k++) frames.push(frame(len, UNICAST, OTHER, frames.length));
    // TX broadcast + multicast; the loopback's replies carry the swapped source: unicast back.
    for (let k = 0; k < 5; k++) frames.push(frame(100, BROADCAST, OTHER, frames.length));
    for (let k = 0; k < 7; k++) frames.push(frame(100, MULTICAST, OTHER, frames.length));
    // A multicast *source* (bogus, but it shows the RX side reads the frame it delivered).
    for (let k = 0; k < 6; k++) frames.push(frame(100, UNICAST, MULTICAST, frames.length));
    for (let k = 0; k < 2; k++) frames.push(frame(100, UNICAST, BROADCAST, frames.length));
    await sendAll(driver, frames, () => got.length);
    for (let i = 0; i < frames.length; i++) expect(got[i].equals(macSwapped(frames[i]))).toBe(true);

    const [rx, tx] = backend.device.stats();
    const total = BigInt(frames.length);
    const bytes = BigInt(frames.reduce((n, f) => n + f.length, 0));
    for (const q of [rx, tx]) {
      expect(q.packets).toBe(total);
      expect(q.bytes).toBe(bytes);
      const bins: Record<string, bigint> = {};
      for (const [, bin, count] of SIZES) bins[bin] = (bins[bin] ?? 0n) + BigInt(count);
      bins.size65To127 += 20n; // the 100-byte frames
      for (const bin of Object.keys(bins)) expect(q[bin as keyof QueueStats], bin).toBe(bins[bin]);
      const binSum = STAT_NAMES.filter((n) => n === 'undersize' || n.startsWith('size')).reduce((n, k) => n + q[k], 0n);
      expect(binSum).toBe(total);
      expect(q.drops).toBe(0n);
      expect(q.errors).toBe(0n);
      expect(q.callErrors).toBe(0n);
      expect(q.captureDrops).toBe(0n);
    }
    expect([tx.broadcast, tx.multicast]).toEqual([5n, 7n]);
    expect([rx.broadcast, rx.multicast]).toEqual([2n, 6n]);

    const x = backend.device.xstats();
    expect(Object.keys(x)).toHaveLength(2 * STAT_NAMES.length);
    expect(x.rx_q0_good_packets).toBe(tx.packets); // DPDK's rx is the guest's TX queue (1)
    expect(x.tx_q0_good_packets).toBe(rx.packets);
    expect(x.rx_q0_broadcast_packets).toBe(5n);
    expect(x.tx_q0_multicast_packets).toBe(6n);
    expect(x.rx_q0_size_1519_max_packets).toBe(2n);
    expect(x.tx_q0_undersize_packets).toBe(4n);
    expect(x.rx_q0_guest_notifications).toBe(tx.calls);
    expect(x.tx_q0_guest_notifications_suppressed).toBe(rx.callsSuppressed);
    expect([dpdkQueueName(0), dpdkQueueName(1), dpdkQueueName(5)]).toEqual(['tx_q0', 'rx_q0', 'rx_q2']);
    expect(new Set(Object.values(DPDK_NAMES)).size).toBe(STAT_NAMES.length);

    const text = formatStats(backend.device.stats());
    expect(text).toContain('queue 1 (guest TX of pair 0, DPDK rx_q0): packets=' + total);
    expect(text).toMatch(/queue 0 \(guest RX of pair 0, DPDK tx_q0\).*\n\s+sizes <64:4 64:4 65-127:23/);
    driver.close();
  });

  for (const eventIdx of [true, false]) {
    it(`counts notifications made and suppressed (${eventIdx ? 'EVENT_IDX' : 'NO_INTERRUPT flag'})`, async () => {
      const backend = fx.start({ pollUs: 0 });
      let received = 0;
      const driver = await VirtioNetDriver.start({
        socketPath: backend.socketPath,
        memory: fx.memory,
        eventIdx,
        onFrames: (f) => (received += f.length),
      });
      const frames = Array.from({ length: 200 }, (_, i) => frame(64 + (i % 100), UNICAST, OTHER, i));
      await sendAll(driver, frames, () => received);
      const [rx, tx] = backend.device.stats();
      for (const q of [rx, tx]) {
        // One call decision per publish, and a publish carries at least one used entry (one per frame here).
        expect(q.calls).toBeGreaterThan(0n);
        expect(q.calls + q.callsSuppressed).toBeLessThanOrEqual(q.packets);
        expect(q.callErrors).toBe(0n);
      }
      if (!eventIdx) {
        // The guest sets NO_INTERRUPT on its TX queue: each frame's publish there is counted as suppressed,
        // none as a call. (No TX completion is needed: five frames fit in the ring; with EVENT_IDX the
        // driver re-arms on every call, so this is only deterministic with the flag.)
        driver.rings.tx.suppressCalls();
        const [, armed] = backend.device.stats();
        for (let i = 0; i < 5; i++) await sendAll(driver, [frame(80, UNICAST, OTHER, 1000 + i)], () => received);
        const [, after] = backend.device.stats();
        expect(after.callsSuppressed - armed.callsSuppressed).toBe(5n);
        expect(after.calls).toBe(armed.calls);
      }
      driver.close();
    });
  }
});
