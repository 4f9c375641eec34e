/**
 * End to end with DPDK on the packed ring: testpmd's virtio-user PMD with `packed_vq=1` is the guest,
 * our back-end (loopback, sink and source ports) runs in this process, with one and with two queue
 * pairs. Every run asserts that RING_PACKED was negotiated: virtio-user silently falls back to the
 * split ring when the device does not offer it, and a fallback must not pass for packed coverage.
 *
 * The loopback runs the full matrix (queues 1/2 x mrg_rxbuf 0/1 x in_order 0/1: each run takes 1-3 s);
 * the sink and the source run with one and with two pairs. The shared fixture and checks are in ./dpdk.ts.
 *
 * Skips when DPDK is not installed, except in CI (CI=true), where dpdkAvailable() throws.
 */
import { describe, expect, it } from 'vitest';
import type { QueueStats } from '../../lib/net/stats';
import { VirtioNetFeature } from '../../lib/net/features';
import { VirtioFeature, hasBit as has } from '../../lib/protocol/constants';
import { expectRingNegotiated } from './features';
import { DpdkBackend, checkIoRun, checkSinkRun, checkSourceRun, dpdkAvailable, totals, txRate } from './dpdk';

const HAVE_DPDK = dpdkAvailable();

/** virtio-user ring size (queue_size): every ring. */
const QUEUE_SIZE = 256;
/** `start tx_first 4` with 32-frame bursts: 128 frames circulate per queue, half a ring. */
const TX_FIRST_BURSTS = 4;
const FRAMES = 1_000_000;

const fx = new DpdkBackend('DPDK testpmd on the packed ring against our back-end');

interface Variant {
  queues: 1 | 2;
  mrgRxbuf: boolean;
  inOrder: boolean;
}

const label = (v: Variant) => `queues=${v.queues} mrg_rxbuf=${+v.mrgRxbuf} in_order=${+v.inOrder}`;

/** The device our back-end serves for `v`: as many queue pairs as virtio-user's queues. */
const device = (v: Variant, port: 'loopback' | 'sink' | 'source', frameSize?: number) => ({
  port,
  queuePairs: v.queues,
  ...(frameSize === undefined ? {} : { frameSize }),
});

/** testpmd's virtio-user options for `v`, packed ring. */
const ring = (v: Variant) => ({
  queueSize: QUEUE_SIZE,
  packedVq: true,
  queues: v.queues,
  mrgRxbuf: v.mrgRxbuf,
  inOrder: v.inOrder,
});

/**
 * The one SET_FEATURES of the run has RING_PACKED (no split fallback) and the options asked for:
 * MRG_RXBUF as asked, IN_ORDER when asked and offered, MQ with two pairs.
 */
function expectPackedNegotiated(v: Variant): bigint {
  const acked = fx.ackedFeatures();
  const offered = fx.backend.device.features;
  expect(acked, fx.logs.join('\n')).toHaveLength(1);
  const [a] = acked;
  const hex = (n: bigint) => `0x${n.toString(16)}`;
  expectRingNegotiated(fx.logs, true);
  expect(has(a, VirtioNetFeature.MRG_RXBUF), `MRG_RXBUF in ${hex(a)}`).toBe(v.mrgRxbuf);
  expect(has(a, VirtioFeature.IN_ORDER), `IN_ORDER in ${hex(a)}`).toBe(v.inOrder && has(offered, VirtioFeature.IN_ORDER));
  expect(has(a, VirtioNetFeature.MQ), `MQ in ${hex(a)}`).toBe(v.queues > 1);
  return a;
}

/** With two pairs, each carried frames: testpmd spread its streams over both queues. */
function expectEveryPairUsed(ours: QueueStats[], v: Variant, dir: 'rx' | 'tx'): void {
  const pairs = totals(ours).pairs;
  expect(pairs).toHaveLength(v.queues);
  for (const [p, q] of pairs.entries()) expect(q[dir].packets, `pair ${p} ${dir}`).toBeGreaterThan(0n);
}

describe.skipIf(!HAVE_DPDK)('DPDK testpmd (virtio-user, packed ring) through the loopback port', () => {
  const variants: Variant[] = [
    { queues: 1, mrgRxbuf: false, inOrder: false },
    { queues: 1, mrgRxbuf: false, inOrder: true },
    { queues: 1, mrgRxbuf: true, inOrder: false },
    { queues: 1, mrgRxbuf: true, inOrder: true },
    { queues: 2, mrgRxbuf: false, inOrder: false },
    { queues: 2, mrgRxbuf: false, inOrder: true },
    { queues: 2, mrgRxbuf: true, inOrder: false },
    { queues: 2, mrgRxbuf: true, inOrder: true },
  ];
  for (const v of variants) {
    it(`io forwarding, ${FRAMES.toLocaleString('en')} frames each way (${label(v)})`, async () => {
      fx.start(device(v, 'loopback'));
      const { r, ours } = await fx.run({
        forwardMode: 'io',
        txFirstBursts: TX_FIRST_BURSTS,
        ...ring(v),
        untilTxPackets: FRAMES,
        timeoutMs: 15_000,
      });
      await fx.disconnected();
      const acked = expectPackedNegotiated(v);
      checkIoRun(r, ours, { frames: FRAMES, population: TX_FIRST_BURSTS * 32 * v.queues });
      expectEveryPairUsed(ours, v, 'tx');
      expect(fx.warnings()).toEqual([]);
      fx.rates.push(
        `  io ${label(v)}: ${Math.round(txRate(r) / 1000)} kframes/s each way ` +
          `(${r.stats?.txPackets} frames in ${r.forwardingMs} ms; acked 0x${acked.toString(16)})`,
      );
    }, 30_000);
  }
});

describe.skipIf(!HAVE_DPDK)('DPDK testpmd (virtio-user, packed ring) against the sink and source ports', () => {
  for (const v of [
    { queues: 1, mrgRxbuf: false, inOrder: true },
    { queues: 2, mrgRxbuf: false, inOrder: false },
  ] satisfies Variant[]) {
    it(`txonly into the sink port: every one of ${FRAMES.toLocaleString('en')} frames is taken and counted (${label(v)})`, async () => {
      fx.start(device(v, 'sink'));
      const { r, ours } = await fx.run({
        forwardMode: 'txonly',
        ...ring(v),
        untilTxPackets: FRAMES,
        timeoutMs: 15_000,
      });
      await fx.disconnected();
      expectPackedNegotiated(v);
      const s = checkSinkRun(r, ours, FRAMES);
      expectEveryPairUsed(ours, v, 'tx');
      expect(fx.warnings()).toEqual([]);
      fx.rates.push(`  txonly into the sink, ${label(v)}: ${Math.round(txRate(r) / 1000)} kframes/s (${s.txPackets} frames)`);
    }, 30_000);
  }

  for (const [v, frameSize] of [
    [{ queues: 1, mrgRxbuf: true, inOrder: false }, 1518],
    [{ queues: 2, mrgRxbuf: false, inOrder: true }, 64],
    [{ queues: 2, mrgRxbuf: true, inOrder: true }, 1518],
  ] satisfies [Variant, number][]) {
    it(`rxonly from the source port: ${FRAMES.toLocaleString('en')} frames of ${frameSize} B arrive whole (${label(v)})`, async () => {
      fx.start(device(v, 'source', frameSize));
      const { r, ours } = await fx.run(
        {
          forwardMode: 'rxonly',
          ...ring(v),
          untilRxPackets: FRAMES,
          timeoutMs: 15_000,
        },
        false,
      );
      await fx.disconnected();
      expectPackedNegotiated(v);
      const s = checkSourceRun(r, ours, { frames: FRAMES, frameSize, inRings: QUEUE_SIZE * v.queues });
      expectEveryPairUsed(ours, v, 'rx');
      expect(fx.warnings()).toEqual([]);
      const rate = (s.rxPackets / r.forwardingMs) * 1000;
      fx.rates.push(`  rxonly from the source, ${frameSize} B ${label(v)}: ${Math.round(rate / 1000)} kframes/s (${s.rxPackets} frames)`);
    }, 30_000);
  }
});
