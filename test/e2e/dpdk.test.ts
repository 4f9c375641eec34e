/**
 * End to end with DPDK: testpmd's virtio-user PMD is the guest on a split ring, our back-end
 * (loopback, sink and source ports) runs in this process. See ./dpdk.ts for the shared fixture and
 * checks, lib/bench/testpmd.ts for how testpmd is run (no hugepages needed: `--no-huge -m 512`), and
 * ./dpdk-packed.test.ts for the packed ring.
 *
 * Skips when DPDK is not installed, except in CI (CI=true), where dpdkAvailable() throws.
 */
import { describe, expect, it } from 'vitest';
import type { QueueStats } from '../../lib/net/stats';
import { VirtioNetFeature } from '../../lib/net/features';
import { VirtioFeature, hasBit as has } from '../../lib/protocol/constants';
import {
  DpdkBackend,
  RX,
  TX,
  checkIoRun,
  checkSinkRun,
  checkSourceRun,
  describeRun,
  dpdkAvailable,
  runTestpmd,
  txRate,
  type PortStats,
} from './dpdk';

const HAVE_DPDK = dpdkAvailable();

/** virtio-user ring size (queue_size): both rings. */
const QUEUE_SIZE = 256;
/** `start tx_first 4` with 32-frame bursts: 128 frames circulate, half a ring. */
const TX_FIRST_BURSTS = 4;
const POPULATION = TX_FIRST_BURSTS * 32;
const FRAMES = 1_000_000;

const fx = new DpdkBackend('DPDK testpmd against our back-end');

describe.skipIf(!HAVE_DPDK)('DPDK testpmd (virtio-user, split ring) through the loopback port', () => {
  for (const mrgRxbuf of [false, true]) {
    for (const inOrder of [false, true]) {
      const name = `mrg_rxbuf=${+mrgRxbuf} in_order=${+inOrder}`;
      it(`io forwarding, ${FRAMES.toLocaleString('en')} frames each way (${name})`, async () => {
        const { r, ours } = await fx.run({
          forwardMode: 'io',
          txFirstBursts: TX_FIRST_BURSTS,
          queueSize: QUEUE_SIZE,
          mrgRxbuf,
          inOrder,
          untilTxPackets: FRAMES,
          timeoutMs: 15_000,
        });
        checkIoRun(r, ours, { frames: FRAMES, population: POPULATION });
        await fx.disconnected();
        const acked = fx.ackedFeatures();
        expect(acked).toHaveLength(1);
        expect(has(acked[0], VirtioNetFeature.MRG_RXBUF)).toBe(mrgRxbuf);
        // in_order=1 negotiates IN_ORDER exactly when the device offers it.
        expect(has(acked[0], VirtioFeature.IN_ORDER)).toBe(inOrder && has(fx.backend.device.features, VirtioFeature.IN_ORDER));
        expect(has(acked[0], VirtioFeature.RING_PACKED)).toBe(false);
        expect(fx.warnings()).toEqual([]);
        fx.rates.push(
          `  io ${name}: ${Math.round(txRate(r) / 1000)} kframes/s each way ` +
            `(${r.stats?.txPackets} frames in ${r.forwardingMs} ms, ${ours[TX].kicks} TX kicks; acked 0x${acked[0].toString(16)})`,
        );
      }, 30_000);
    }
  }

  it('txonly: the loopback fills the guest RX ring, then holds the rest back until the guest receives', async () => {
    // testpmd's txonly engine never polls its RX queue. The loopback does not drop when the guest has
    // no RX buffer: it waits. So exactly QUEUE_SIZE frames reach the guest RX ring, QUEUE_SIZE more
    // sit in the TX ring, and every further burst testpmd tries is refused by its full TX ring
    // (counted as TX-dropped by testpmd's engine, not by the device). Switching testpmd to rxonly
    // then releases the back-pressure: every held frame arrives, none lost.
    let afterTxonly: QueueStats[] = [];
    let afterRxonly: QueueStats[] = [];
    let stalledCpuSeconds = Infinity;
    const r = await runTestpmd({
      socketPath: fx.socketPath,
      forwardMode: 'txonly',
      queueSize: QUEUE_SIZE,
      mrgRxbuf: true,
      durationMs: 1_500,
      thenPhases: [{ forwardMode: 'rxonly', untilRxPackets: 2 * QUEUE_SIZE, timeoutMs: 5_000 }],
      afterPhase: async (phase, i) => {
        if (i === 0) {
          // Give the back-end the same chance to move frames as in the io runs, then snapshot.
          await new Promise((res) => setTimeout(res, 100));
          afterTxonly = fx.stats();
          // Stalled, the back-end must sleep, not spin: CPU of this whole process over 500 ms.
          const before = process.cpuUsage();
          await new Promise((res) => setTimeout(res, 500));
          const used = process.cpuUsage(before);
          stalledCpuSeconds = (used.user + used.system) / 1e6;
        } else {
          await fx.settle(phase);
          afterRxonly = fx.stats();
        }
      },
    });
    const why = describeRun(r);
    expect(
      r.phases.map((p) => p.stopReason),
      why,
    ).toEqual(['duration', 'count']);
    const [tx, rx] = r.phases;
    const txStats = tx.stats as PortStats;
    // testpmd: both rings full, nothing received; the stall is complete (no progress after the fill).
    expect({ tx: txStats.txPackets, rx: txStats.rxPackets, txErrors: txStats.txErrors }, why).toEqual({
      tx: 2 * QUEUE_SIZE,
      rx: 0,
      txErrors: 0,
    });
    expect(tx.samples.length, why).toBeGreaterThanOrEqual(3);
    expect(
      tx.samples.every((s) => s.stats.txPackets === 2 * QUEUE_SIZE),
      why,
    ).toBe(true);
    expect(tx.forward?.txDropped ?? 0, why).toBeGreaterThan(1_000);
    // Ours: one ring's worth moved, nothing dropped, nothing in error.
    expect(afterTxonly[RX].packets, why).toBe(BigInt(QUEUE_SIZE));
    expect(afterTxonly[TX].packets, why).toBe(BigInt(QUEUE_SIZE));
    expect(stalledCpuSeconds, `CPU seconds in 0.5 s of stall; ${why}`).toBeLessThan(0.2);
    // rxonly: testpmd takes the ring, reposts buffers, and the held frames follow.
    const rxStats = rx.stats as PortStats;
    expect({ tx: rxStats.txPackets, rx: rxStats.rxPackets, missed: rxStats.rxMissed, nombuf: rxStats.rxNombuf }, why).toEqual({
      tx: 2 * QUEUE_SIZE,
      rx: 2 * QUEUE_SIZE,
      missed: 0,
      nombuf: 0,
    });
    expect(afterRxonly[RX].packets, why).toBe(BigInt(2 * QUEUE_SIZE));
    expect(afterRxonly[TX].packets, why).toBe(BigInt(2 * QUEUE_SIZE));
    expect(afterRxonly[RX].bytes, why).toBe(BigInt(rxStats.rxBytes));
    for (const q of [RX, TX]) {
      expect({ drops: afterRxonly[q].drops, errors: afterRxonly[q].errors }, why).toEqual({ drops: 0n, errors: 0n });
    }
    await fx.disconnected();
    expect(fx.warnings()).toEqual([]);
    fx.rates.push(
      `  txonly: stalled at ${txStats.txPackets} frames sent (${QUEUE_SIZE} delivered + ${QUEUE_SIZE} held in the ` +
        `TX ring); testpmd counted ${tx.forward?.txDropped} TX-dropped in ${tx.forwardingMs} ms; rxonly then ` +
        `received all ${rxStats.rxPackets}`,
    );
  }, 30_000);

  it('packed_vq=1: RING_PACKED is negotiated only if offered; the run works, and a split-ring run follows', async () => {
    const frames = 200_000;
    const offersPacked = has(fx.backend.device.features, VirtioFeature.RING_PACKED);
    const { r: packed, ours } = await fx.run({
      forwardMode: 'io',
      txFirstBursts: TX_FIRST_BURSTS,
      queueSize: QUEUE_SIZE,
      mrgRxbuf: true,
      packedVq: true,
      untilTxPackets: frames,
      timeoutMs: 10_000,
    });
    // Not offered: virtio-user falls back to the split ring (no refusal, no error).
    checkIoRun(packed, ours, { frames, population: POPULATION });
    await fx.disconnected();
    const [first] = fx.ackedFeatures();
    expect(has(first, VirtioFeature.RING_PACKED)).toBe(offersPacked);
    expect(fx.warnings()).toEqual([]);

    const base = fx.stats();
    const { r: split, ours: oursSplit } = await fx.run(
      {
        forwardMode: 'io',
        txFirstBursts: TX_FIRST_BURSTS,
        queueSize: QUEUE_SIZE,
        mrgRxbuf: true,
        untilTxPackets: frames,
        timeoutMs: 10_000,
      },
      true,
      base,
    );
    checkIoRun(split, oursSplit, { frames, population: POPULATION });
    await fx.disconnected();
    const acked = fx.ackedFeatures();
    expect(acked).toHaveLength(2);
    expect(has(acked[1], VirtioFeature.RING_PACKED)).toBe(false);
    expect(fx.warnings()).toEqual([]);
    fx.rates.push(
      `  packed_vq=1: acked 0x${first.toString(16)} (RING_PACKED ${has(first, VirtioFeature.RING_PACKED) ? 'negotiated' : 'not negotiated: split ring'}), ` +
        `${Math.round(txRate(packed) / 1000)} kframes/s; following split run ${Math.round(txRate(split) / 1000)} kframes/s`,
    );
  }, 30_000);
});

describe.skipIf(!HAVE_DPDK)('DPDK testpmd (virtio-user) against the sink and source ports', () => {
  it(`txonly into the sink port: every one of ${FRAMES.toLocaleString('en')} frames is taken and counted`, async () => {
    fx.start({ port: 'sink' });
    const { r, ours } = await fx.run({
      forwardMode: 'txonly',
      queueSize: QUEUE_SIZE,
      untilTxPackets: FRAMES,
      timeoutMs: 15_000,
    });
    const s = checkSinkRun(r, ours, FRAMES);
    await fx.disconnected();
    expect(fx.warnings()).toEqual([]);
    fx.rates.push(`  txonly into the sink: ${Math.round(txRate(r) / 1000)} kframes/s (${s.txPackets} frames in ${r.forwardingMs} ms)`);
  }, 30_000);

  for (const [frameSize, mrgRxbuf] of [
    [64, true],
    [1518, false],
    [1518, true],
  ] as const) {
    it(`rxonly from the source port: ${FRAMES.toLocaleString('en')} frames of ${frameSize} B arrive whole (mrg_rxbuf=${+mrgRxbuf})`, async () => {
      fx.start({ port: 'source', frameSize });
      const { r, ours } = await fx.run(
        {
          forwardMode: 'rxonly',
          queueSize: QUEUE_SIZE,
          mrgRxbuf,
          untilRxPackets: FRAMES,
          timeoutMs: 15_000,
        },
        false,
      );
      const s = checkSourceRun(r, ours, { frames: FRAMES, frameSize, inRings: QUEUE_SIZE });
      await fx.disconnected();
      expect(fx.warnings()).toEqual([]);
      const rate = (s.rxPackets / r.forwardingMs) * 1000;
      fx.rates.push(
        `  rxonly from the source, ${frameSize} B mrg_rxbuf=${+mrgRxbuf}: ${Math.round(rate / 1000)} kframes/s (${s.rxPackets} frames in ${r.forwardingMs} ms)`,
      );
    }, 30_000);
  }
});
