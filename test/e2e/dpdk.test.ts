/**
 * End to end with DPDK: testpmd's virtio-user PMD is the guest, our back-end (loopback port) runs in
 * this process. See ./dpdk.ts for how testpmd is run (no hugepages needed: `--no-huge -m 512`).
 *
 * In `io` mode testpmd's single port forwards to itself: the frames `start tx_first` injects
 * circulate guest TX -> our loopback -> guest RX -> testpmd -> guest TX ... So testpmd's TX-packets
 * is what our TX queue (1) took and its RX-packets what our RX queue (0) delivered, up to the
 * frames in flight, which are never more than the injected population.
 *
 * Skips when DPDK is not installed, except in CI (CI=true), where dpdkAvailable() throws.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VhostUserBackend } from '../../lib/backend';
import type { NetDeviceOptions } from '../../lib/net/device';
import type { QueueStats } from '../../lib/net/stats';
import { VirtioNetFeature } from '../../lib/net/features';
import { VirtioFeature } from '../../lib/protocol/constants';
import {
  describeRun,
  dpdkAvailable,
  killAllTestpmd,
  requireStats,
  runTestpmd,
  txRate,
  type PhaseResult,
  type PortStats,
  type TestpmdResult,
} from './dpdk';

const HAVE_DPDK = dpdkAvailable();

/** virtio-user ring size (queue_size): both rings. */
const QUEUE_SIZE = 256;
/** `start tx_first 4` with 32-frame bursts: 128 frames circulate, half a ring. */
const TX_FIRST_BURSTS = 4;
const POPULATION = TX_FIRST_BURSTS * 32;
const FRAMES = 1_000_000;

const has = (mask: bigint, bitNumber: number) => ((mask >> BigInt(bitNumber)) & 1n) === 1n;

let dir: string;
let backend: VhostUserBackend;
let logs: string[];
const rates: string[] = [];

/** (Re)starts our back-end on the test's socket, with the loopback port unless told otherwise. */
function startBackend(device?: NetDeviceOptions): void {
  backend?.close();
  backend = new VhostUserBackend({
    socketPath: path.join(dir, 'net.sock'),
    device,
    log: (level, message) => logs.push(`${level}: ${message}`),
  });
  backend.start();
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-dpdk-'));
  logs = [];
  startBackend();
});

afterEach(() => {
  killAllTestpmd();
  backend.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

afterAll(() => {
  if (rates.length > 0) console.log(`DPDK testpmd against our back-end:\n${rates.join('\n')}`);
});

const warnings = () => logs.filter((l) => !l.startsWith('info: '));

/** Every SET_FEATURES the back-end logged, in order. */
function ackedFeatures(): bigint[] {
  const out: bigint[] = [];
  for (const l of logs) {
    const m = /features acked: 0x([0-9a-f]+)/.exec(l);
    if (m) out.push(BigInt(`0x${m[1]}`));
  }
  return out;
}

const [RX, TX] = [0, 1];

/** Per-queue counters minus an earlier snapshot. */
function since(before: QueueStats[] | null): QueueStats[] {
  const now = backend.device.stats();
  if (!before) return now;
  return now.map((q, i) => {
    const out = { ...q };
    for (const k of Object.keys(q) as (keyof QueueStats)[]) out[k] = q[k] - before[i][k];
    return out;
  });
}

/**
 * After testpmd's final `stop`: wait (connection still up) until our TX queue has taken every frame
 * testpmd transmitted, so the comparison below is exact even when this CPU is busy.
 */
async function settle(phase: PhaseResult, base: QueueStats[] | null = null): Promise<void> {
  const want = BigInt(phase.stats?.txPackets ?? 0);
  const deadline = Date.now() + 3_000;
  while (since(base)[TX].packets < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

async function disconnected(): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (backend.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  expect(backend.connected, 'back-end still connected after testpmd exited').toBe(false);
}

/** Assertions every io loop run must pass: testpmd's counters and ours agree, nothing lost. */
function checkIoRun(r: TestpmdResult, ours: QueueStats[], frames: number): PortStats {
  const why = describeRun(r);
  const s = requireStats(r);
  expect(r.stopReason, why).toBe('count');
  expect(r.exitCode, why).toBe(0);
  // testpmd's side: all frames went out and came back, up to the circulating population.
  expect(s.txPackets, why).toBeGreaterThanOrEqual(frames);
  expect(s.txPackets - s.rxPackets, why).toBeGreaterThanOrEqual(0);
  expect(s.txPackets - s.rxPackets, why).toBeLessThanOrEqual(POPULATION);
  expect({ rxMissed: s.rxMissed, rxErrors: s.rxErrors, rxNombuf: s.rxNombuf, txErrors: s.txErrors }, why).toEqual({
    rxMissed: 0,
    rxErrors: 0,
    rxNombuf: 0,
    txErrors: 0,
  });
  expect(r.forward, why).not.toBeNull();
  expect(r.forward?.txDropped, why).toBe(0);
  expect(s.txBytes, why).toBe(s.txPackets * 64); // tx_first frames: testpmd's default 64 bytes
  // Ours: the TX queue took exactly what testpmd sent; loopback put each frame on the RX queue; the
  // frames testpmd has not received yet are still in its RX ring.
  expect(ours[TX].packets, why).toBe(BigInt(s.txPackets));
  expect(ours[TX].bytes, why).toBe(BigInt(s.txBytes));
  expect(ours[RX].packets, why).toBe(ours[TX].packets);
  expect(ours[RX].bytes, why).toBe(ours[TX].bytes);
  const unreceived = ours[RX].packets - BigInt(s.rxPackets);
  expect(unreceived >= 0n && unreceived <= BigInt(POPULATION), `${unreceived} frames unreceived\n${why}`).toBe(true);
  expect(ours[RX].bytes - BigInt(s.rxBytes), why).toBe(unreceived * 64n);
  for (const q of [RX, TX]) expect({ drops: ours[q].drops, errors: ours[q].errors }, why).toEqual({ drops: 0n, errors: 0n });
  return s;
}

describe.skipIf(!HAVE_DPDK)('DPDK testpmd (virtio-user, split ring) through the loopback port', () => {
  for (const mrgRxbuf of [false, true]) {
    for (const inOrder of [false, true]) {
      const name = `mrg_rxbuf=${+mrgRxbuf} in_order=${+inOrder}`;
      it(`io forwarding, ${FRAMES.toLocaleString('en')} frames each way (${name})`, async () => {
        let ours: QueueStats[] = [];
        const r = await runTestpmd({
          socketPath: backend.socketPath,
          forwardMode: 'io',
          txFirstBursts: TX_FIRST_BURSTS,
          queueSize: QUEUE_SIZE,
          mrgRxbuf,
          inOrder,
          untilTxPackets: FRAMES,
          timeoutMs: 15_000,
          afterPhase: async (phase) => {
            await settle(phase);
            ours = backend.device.stats();
          },
        });
        checkIoRun(r, ours, FRAMES);
        await disconnected();
        const acked = ackedFeatures();
        expect(acked).toHaveLength(1);
        expect(has(acked[0], VirtioNetFeature.MRG_RXBUF)).toBe(mrgRxbuf);
        // in_order=1 negotiates IN_ORDER exactly when the device offers it.
        expect(has(acked[0], VirtioFeature.IN_ORDER)).toBe(inOrder && has(backend.device.features, VirtioFeature.IN_ORDER));
        expect(has(acked[0], VirtioFeature.RING_PACKED)).toBe(false);
        expect(warnings()).toEqual([]);
        rates.push(
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
      socketPath: backend.socketPath,
      forwardMode: 'txonly',
      queueSize: QUEUE_SIZE,
      mrgRxbuf: true,
      durationMs: 1_500,
      thenPhases: [{ forwardMode: 'rxonly', untilRxPackets: 2 * QUEUE_SIZE, timeoutMs: 5_000 }],
      afterPhase: async (phase, i) => {
        if (i === 0) {
          // Give the back-end the same chance to move frames as in the io runs, then snapshot.
          await new Promise((res) => setTimeout(res, 100));
          afterTxonly = backend.device.stats();
          // Stalled, the back-end must sleep, not spin: CPU of this whole process over 500 ms.
          const before = process.cpuUsage();
          await new Promise((res) => setTimeout(res, 500));
          const used = process.cpuUsage(before);
          stalledCpuSeconds = (used.user + used.system) / 1e6;
        } else {
          await settle(phase);
          afterRxonly = backend.device.stats();
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
    await disconnected();
    expect(warnings()).toEqual([]);
    rates.push(
      `  txonly: stalled at ${txStats.txPackets} frames sent (${QUEUE_SIZE} delivered + ${QUEUE_SIZE} held in the ` +
        `TX ring); testpmd counted ${tx.forward?.txDropped} TX-dropped in ${tx.forwardingMs} ms; rxonly then ` +
        `received all ${rxStats.rxPackets}`,
    );
  }, 30_000);

  it('packed_vq=1: RING_PACKED is negotiated only if offered; the run works, and a split-ring run follows', async () => {
    const frames = 200_000;
    const offersPacked = has(backend.device.features, VirtioFeature.RING_PACKED);
    let ours: QueueStats[] = [];
    const packed = await runTestpmd({
      socketPath: backend.socketPath,
      forwardMode: 'io',
      txFirstBursts: TX_FIRST_BURSTS,
      queueSize: QUEUE_SIZE,
      mrgRxbuf: true,
      packedVq: true,
      untilTxPackets: frames,
      timeoutMs: 10_000,
      afterPhase: async (phase) => {
        await settle(phase);
        ours = backend.device.stats();
      },
    });
    // Not offered: virtio-user falls back to the split ring (no refusal, no error).
    checkIoRun(packed, ours, frames);
    await disconnected();
    const [first] = ackedFeatures();
    expect(has(first, VirtioFeature.RING_PACKED)).toBe(offersPacked);
    expect(warnings()).toEqual([]);

    const base = backend.device.stats();
    const split = await runTestpmd({
      socketPath: backend.socketPath,
      forwardMode: 'io',
      txFirstBursts: TX_FIRST_BURSTS,
      queueSize: QUEUE_SIZE,
      mrgRxbuf: true,
      untilTxPackets: frames,
      timeoutMs: 10_000,
      afterPhase: async (phase) => {
        await settle(phase, base);
        ours = since(base);
      },
    });
    checkIoRun(split, ours, frames);
    await disconnected();
    const acked = ackedFeatures();
    expect(acked).toHaveLength(2);
    expect(has(acked[1], VirtioFeature.RING_PACKED)).toBe(false);
    expect(warnings()).toEqual([]);
    rates.push(
      `  packed_vq=1: acked 0x${first.toString(16)} (RING_PACKED ${has(first, VirtioFeature.RING_PACKED) ? 'negotiated' : 'not negotiated: split ring'}), ` +
        `${Math.round(txRate(packed) / 1000)} kframes/s; following split run ${Math.round(txRate(split) / 1000)} kframes/s`,
    );
  }, 30_000);
});

describe.skipIf(!HAVE_DPDK)('DPDK testpmd (virtio-user) against the sink and source ports', () => {
  it(`txonly into the sink port: every one of ${FRAMES.toLocaleString('en')} frames is taken and counted`, async () => {
    startBackend({ port: 'sink' });
    let ours: QueueStats[] = [];
    const r = await runTestpmd({
      socketPath: backend.socketPath,
      forwardMode: 'txonly',
      queueSize: QUEUE_SIZE,
      untilTxPackets: FRAMES,
      timeoutMs: 15_000,
      afterPhase: async (phase) => {
        await settle(phase);
        ours = backend.device.stats();
      },
    });
    const why = describeRun(r);
    const s = requireStats(r);
    expect(r.stopReason, why).toBe('count');
    expect(s.txPackets, why).toBeGreaterThanOrEqual(FRAMES);
    expect({ rx: s.rxPackets, txErrors: s.txErrors }, why).toEqual({ rx: 0, txErrors: 0 });
    expect(ours[TX].packets, why).toBe(BigInt(s.txPackets));
    expect(ours[TX].bytes, why).toBe(BigInt(s.txBytes));
    expect(ours[RX].packets, why).toBe(0n);
    for (const q of [RX, TX]) expect({ drops: ours[q].drops, errors: ours[q].errors }, why).toEqual({ drops: 0n, errors: 0n });
    await disconnected();
    expect(warnings()).toEqual([]);
    rates.push(`  txonly into the sink: ${Math.round(txRate(r) / 1000)} kframes/s (${s.txPackets} frames in ${r.forwardingMs} ms)`);
  }, 30_000);

  for (const [frameSize, mrgRxbuf] of [
    [64, true],
    [1518, false],
    [1518, true],
  ] as const) {
    it(`rxonly from the source port: ${FRAMES.toLocaleString('en')} frames of ${frameSize} B arrive whole (mrg_rxbuf=${+mrgRxbuf})`, async () => {
      startBackend({ port: 'source', frameSize });
      let ours: QueueStats[] = [];
      const r = await runTestpmd({
        socketPath: backend.socketPath,
        forwardMode: 'rxonly',
        queueSize: QUEUE_SIZE,
        mrgRxbuf,
        untilRxPackets: FRAMES,
        timeoutMs: 15_000,
        afterPhase: async () => {
          ours = backend.device.stats();
        },
      });
      const why = describeRun(r);
      const s = requireStats(r);
      expect(r.stopReason, why).toBe('count');
      expect(s.rxPackets, why).toBeGreaterThanOrEqual(FRAMES);
      expect(s.rxBytes, why).toBe(s.rxPackets * frameSize);
      expect({ missed: s.rxMissed, errors: s.rxErrors, nombuf: s.rxNombuf, tx: s.txPackets }, why).toEqual({
        missed: 0,
        errors: 0,
        nombuf: 0,
        tx: 0,
      });
      // What we delivered and testpmd has not taken yet is still in its RX ring.
      const unreceived = ours[RX].packets - BigInt(s.rxPackets);
      expect(unreceived >= 0n && unreceived <= BigInt(QUEUE_SIZE), `${unreceived} frames unreceived\n${why}`).toBe(true);
      expect(ours[RX].bytes, why).toBe(ours[RX].packets * BigInt(frameSize));
      for (const q of [RX, TX]) expect({ drops: ours[q].drops, errors: ours[q].errors }, why).toEqual({ drops: 0n, errors: 0n });
      await disconnected();
      expect(warnings()).toEqual([]);
      const rate = (s.rxPackets / r.forwardingMs) * 1000;
      rates.push(
        `  rxonly from the source, ${frameSize} B mrg_rxbuf=${+mrgRxbuf}: ${Math.round(rate / 1000)} kframes/s (${s.rxPackets} frames in ${r.forwardingMs} ms)`,
      );
    }, 30_000);
  }
});
