/**
 * DPDK testpmd for the end-to-end tests: the driver lives in lib/bench/testpmd.ts (the benchmark
 * uses it too); what is the tests' own is the CI rule for a missing DPDK and the fixture the DPDK
 * suites share: our back-end in this process, the features it logged as acked, and the checks that
 * testpmd's counters and ours agree (summed over the queue pairs).
 *
 * In `io` mode testpmd's single port forwards to itself: the frames `start tx_first` injects
 * circulate guest TX -> our loopback -> guest RX -> testpmd -> guest TX ... So testpmd's TX-packets
 * is what our TX queues took and its RX-packets what our RX queues delivered, up to the frames in
 * flight, which are never more than the injected population (`tx_first` bursts on every queue).
 */
import { afterAll, afterEach, beforeEach, expect } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VhostUserBackend } from '../../lib/backend';
import { DEBIAN_PACKAGES, dpdkMissing, describeRun, killAllTestpmd, requireStats, runTestpmd } from '../../lib/bench/testpmd';
import type { PhaseResult, PortStats, TestpmdOptions, TestpmdResult } from '../../lib/bench/testpmd';
import type { NetDeviceOptions } from '../../lib/net/device';
import type { QueueStats } from '../../lib/net/stats';
import { IN_CI } from '../helpers/peers';
import { ackedFeatures } from './features';

export * from '../../lib/bench/testpmd';

/**
 * True when testpmd and the virtio PMD are installed. Outside CI a missing DPDK returns false (the
 * tests skip); in CI (`CI=true`) it throws, naming the packages to install.
 */
export function dpdkAvailable(): boolean {
  const missing = dpdkMissing();
  if (missing.length === 0) return true;
  if (IN_CI) {
    throw new Error(
      `DPDK end-to-end tests cannot run: missing ${missing.join(', ')}. ` +
        `Install with: apt-get install -y --no-install-recommends ${DEBIAN_PACKAGES.join(' ')}`,
    );
  }
  return false;
}

/** Queue `2p` is pair p's RX (the device writes), `2p + 1` its TX. */
export const [RX, TX] = [0, 1];

/** The RX and TX counters of every pair summed, plus each pair's own. */
export interface PairTotals {
  rx: QueueStats;
  tx: QueueStats;
  pairs: { rx: QueueStats; tx: QueueStats }[];
}

export function totals(stats: QueueStats[]): PairTotals {
  const pairs = [];
  for (let q = 0; q + 1 < stats.length; q += 2) pairs.push({ rx: stats[q + RX], tx: stats[q + TX] });
  const sum = (qs: QueueStats[]): QueueStats => {
    const out = { ...qs[0] };
    for (const k of Object.keys(out) as (keyof QueueStats)[]) out[k] = qs.reduce((n, q) => n + q[k], 0n);
    return out;
  };
  return { rx: sum(pairs.map((p) => p.rx)), tx: sum(pairs.map((p) => p.tx)), pairs };
}

/** What a loopback io run injected: `tx_first` bursts of 32 frames of 64 bytes on each queue. */
export interface IoRun {
  /** testpmd's TX-packets stop condition. */
  frames: number;
  /** Frames circulating: `tx_first` bursts x 32 x queues. */
  population: number;
  /**
   * The back-end returns each frame on the pair it came in on (the loopback): default true. The js
   * port's send() picks a pair by flow hash, so only the sums over the pairs are compared.
   */
  samePair?: boolean;
}

export function expectNoDropsNorErrors(stats: QueueStats[], why: string): void {
  for (const [q, s] of stats.entries()) expect({ q, drops: s.drops, errors: s.errors }, why).toEqual({ q, drops: 0n, errors: 0n });
}

/**
 * Our back-end for the DPDK suites, made fresh for every test (loopback port unless a test starts
 * another), with its log, and the rates a suite prints at its end.
 */
export class DpdkBackend {
  dir = '';
  backend!: VhostUserBackend;
  logs: string[] = [];
  readonly rates: string[] = [];

  /** Registers the per-test set-up and tear-down (call at the top of a suite file). */
  constructor(title: string) {
    beforeEach(() => {
      this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-dpdk-'));
      this.logs = [];
      this.start();
    });
    afterEach(() => {
      killAllTestpmd();
      this.backend.close();
      fs.rmSync(this.dir, { recursive: true, force: true });
    });
    afterAll(() => {
      if (this.rates.length > 0) console.log(`${title}:\n${this.rates.join('\n')}`);
    });
  }

  /** (Re)starts our back-end on the test's socket, with the loopback port unless told otherwise. */
  start(device?: NetDeviceOptions): void {
    this.backend?.close();
    this.backend = new VhostUserBackend({
      socketPath: path.join(this.dir, 'net.sock'),
      device: { port: 'loopback', ...device },
      log: (level, message) => this.logs.push(`${level}: ${message}`),
    });
    this.backend.start();
  }

  get socketPath(): string {
    return this.backend.socketPath;
  }

  stats(): QueueStats[] {
    return this.backend.device.stats();
  }

  warnings(): string[] {
    return this.logs.filter((l) => !l.startsWith('info: '));
  }

  /** Every SET_FEATURES the back-end logged, in order. */
  ackedFeatures(): bigint[] {
    return ackedFeatures(this.logs);
  }

  /** Per-queue counters minus an earlier snapshot. */
  since(before: QueueStats[] | null): QueueStats[] {
    const now = this.stats();
    if (!before) return now;
    return now.map((q, i) => {
      const out = { ...q };
      for (const k of Object.keys(q) as (keyof QueueStats)[]) out[k] = q[k] - before[i][k];
      return out;
    });
  }

  /**
   * After testpmd's final `stop`: wait (connection still up) until our TX queues have taken every
   * frame testpmd transmitted, so the comparison is exact even when this CPU is busy.
   */
  async settle(phase: PhaseResult, base: QueueStats[] | null = null): Promise<void> {
    const want = BigInt(phase.stats?.txPackets ?? 0);
    const deadline = Date.now() + 3_000;
    while (totals(this.since(base)).tx.packets < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }

  /**
   * Runs testpmd against this back-end and takes our counters when its phase ends: after they have
   * caught up with testpmd's TX count (`settle`, for the runs whose guest transmits) or at once;
   * with `base`, the counters since that snapshot.
   */
  async run(
    opts: Omit<TestpmdOptions, 'socketPath' | 'afterPhase'>,
    settle = true,
    base: QueueStats[] | null = null,
  ): Promise<{ r: TestpmdResult; ours: QueueStats[] }> {
    let ours: QueueStats[] = [];
    const r = await runTestpmd({
      ...opts,
      socketPath: this.socketPath,
      afterPhase: async (phase) => {
        if (settle) await this.settle(phase, base);
        ours = this.since(base);
      },
    });
    return { r, ours };
  }

  async disconnected(): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (this.backend.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(this.backend.connected, 'back-end still connected after testpmd exited').toBe(false);
  }
}

/** Assertions every loopback io run must pass: testpmd's counters and ours agree, nothing lost. */
export function checkIoRun(r: TestpmdResult, ours: QueueStats[], run: IoRun): PortStats {
  const why = describeRun(r);
  const s = requireStats(r);
  expect(r.stopReason, why).toBe('count');
  expect(r.exitCode, why).toBe(0);
  // testpmd's side: all frames went out and came back, up to the circulating population.
  expect(s.txPackets, why).toBeGreaterThanOrEqual(run.frames);
  expect(s.txPackets - s.rxPackets, why).toBeGreaterThanOrEqual(0);
  expect(s.txPackets - s.rxPackets, why).toBeLessThanOrEqual(run.population);
  expect({ rxMissed: s.rxMissed, rxErrors: s.rxErrors, rxNombuf: s.rxNombuf, txErrors: s.txErrors }, why).toEqual({
    rxMissed: 0,
    rxErrors: 0,
    rxNombuf: 0,
    txErrors: 0,
  });
  expect(r.forward, why).not.toBeNull();
  expect(r.forward?.txDropped, why).toBe(0);
  expect(s.txBytes, why).toBe(s.txPackets * 64); // tx_first frames: testpmd's default 64 bytes
  // Ours: the TX queues took exactly what testpmd sent; the back-end put each frame on an RX queue
  // (the loopback: its own pair's); the frames testpmd has not received yet are still in its RX rings.
  const t = totals(ours);
  expect(t.tx.packets, why).toBe(BigInt(s.txPackets));
  expect(t.tx.bytes, why).toBe(BigInt(s.txBytes));
  if (run.samePair ?? true) {
    for (const [p, pair] of t.pairs.entries()) {
      expect({ p, rx: pair.rx.packets, rxBytes: pair.rx.bytes }, why).toEqual({ p, rx: pair.tx.packets, rxBytes: pair.tx.bytes });
    }
  } else expect({ rx: t.rx.packets, rxBytes: t.rx.bytes }, why).toEqual({ rx: t.tx.packets, rxBytes: t.tx.bytes });
  const unreceived = t.rx.packets - BigInt(s.rxPackets);
  expect(unreceived >= 0n && unreceived <= BigInt(run.population), `${unreceived} frames unreceived\n${why}`).toBe(true);
  expect(t.rx.bytes - BigInt(s.rxBytes), why).toBe(unreceived * 64n);
  expectNoDropsNorErrors(ours, why);
  return s;
}

/** Assertions of a txonly run into the sink port: every frame testpmd sent taken and counted. */
export function checkSinkRun(r: TestpmdResult, ours: QueueStats[], frames: number): PortStats {
  const why = describeRun(r);
  const s = requireStats(r);
  expect(r.stopReason, why).toBe('count');
  expect(s.txPackets, why).toBeGreaterThanOrEqual(frames);
  expect({ rx: s.rxPackets, txErrors: s.txErrors }, why).toEqual({ rx: 0, txErrors: 0 });
  const t = totals(ours);
  expect(t.tx.packets, why).toBe(BigInt(s.txPackets));
  expect(t.tx.bytes, why).toBe(BigInt(s.txBytes));
  expect(t.rx.packets, why).toBe(0n);
  expectNoDropsNorErrors(ours, why);
  return s;
}

/**
 * Assertions of an rxonly run from the source port: every frame whole, and what we delivered that
 * testpmd has not taken yet still in its RX rings (at most one ring per queue).
 */
export function checkSourceRun(
  r: TestpmdResult,
  ours: QueueStats[],
  want: { frames: number; frameSize: number; inRings: number },
): PortStats {
  const why = describeRun(r);
  const s = requireStats(r);
  expect(r.stopReason, why).toBe('count');
  expect(s.rxPackets, why).toBeGreaterThanOrEqual(want.frames);
  expect(s.rxBytes, why).toBe(s.rxPackets * want.frameSize);
  expect({ missed: s.rxMissed, errors: s.rxErrors, nombuf: s.rxNombuf, tx: s.txPackets }, why).toEqual({
    missed: 0,
    errors: 0,
    nombuf: 0,
    tx: 0,
  });
  const t = totals(ours);
  const unreceived = t.rx.packets - BigInt(s.rxPackets);
  expect(unreceived >= 0n && unreceived <= BigInt(want.inRings), `${unreceived} frames unreceived\n${why}`).toBe(true);
  expect(t.rx.bytes, why).toBe(t.rx.packets * BigInt(want.frameSize));
  expectNoDropsNorErrors(ours, why);
  return s;
}
