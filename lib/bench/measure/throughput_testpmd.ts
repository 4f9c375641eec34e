/** One throughput run with DPDK testpmd's virtio-user as the front-end: a warm-up phase, then the measured one. */
import type { BackendProcess } from '../backends';
import type { Options } from '../cli';
import type { Code } from '../host';
import { runTestpmd, type PhaseResult, type TestpmdResult } from '../testpmd';
import type { RunResult } from '../types';
import { fairness, pairFigures } from '../pairs';
import { excerpt, requireAskedLayout, startThroughputBackend } from './peers';
import { pidsWithArg } from './procstat';
import { direction, fillBackendFigures, snapshot, type Snapshot } from './snapshot';

/** testpmd's result with the back-end snapshots taken at the end of each phase. */
interface Driven {
  result: TestpmdResult;
  s0: Snapshot | null;
  s1: Snapshot | null;
}

export async function runWithTestpmd(opts: Options, code: Code, run: RunResult, socketPath: string): Promise<void> {
  const be = await startThroughputBackend(opts, code, run, socketPath);
  let driven: Driven;
  try {
    driven = await driveTestpmd(opts, run, be, socketPath);
  } finally {
    const exit = await be.stop();
    if (exit.forward) {
      run.dpdkForward = { rxPackets: exit.forward.rxPackets, txPackets: exit.forward.txPackets, txDropped: exit.forward.txDropped };
    }
  }
  const { result: r, s0, s1 } = driven;
  const [p0, p1] = r.phases;
  if (!r.started || !completed(p0) || !completed(p1) || !s0 || !s1) {
    throw new Error(
      `testpmd did not complete both phases (started=${r.started} phases=${r.phases.length} stop=${r.phases.map((p) => p.stopReason).join(',')} exit=${r.exitCode ?? r.signal})\n` +
        `command: ${r.command}\n--- testpmd output ---\n${excerpt(r.output)}\n--- back-end output ---\n${excerpt(be.output())}`,
    );
  }
  requireAskedLayout(run, be);
  const seconds = fillRates(run, p0, p1);
  if (run.pairs > 1) {
    run.perPair = pairFigures(run.mode === 'io' || run.mode === 'rxonly' ? 'rx' : 'tx', run.pairs, p1.streams, seconds);
    run.fairness = fairness(run.perPair.map((p) => p.mpps)) ?? undefined;
  }
  fillBackendFigures(run, be, s0, s1, seconds, Math.max(run.guestTx?.packets ?? 0, run.guestRx?.packets ?? 0));
  const notes = runNotes(run, p1);
  if (notes.length) run.notes = notes;
}

/** Runs testpmd through the warm-up and the measured phase, snapshotting the back-end after each. */
async function driveTestpmd(opts: Options, run: RunResult, be: BackendProcess, socketPath: string): Promise<Driven> {
  const { mode, size, queueSize, layout, pairs } = run;
  let s0: Snapshot | null = null;
  let s1: Snapshot | null = null;
  let lastProgress = { tx: -1, rx: -1, t: 0 };
  let frontendPids: number[] = [];
  const result = await runTestpmd({
    socketPath,
    forwardMode: mode,
    // flowgen takes 4 bytes off --txpkts for an FCS the virtio path never carries: ask for 4
    // more so that its frames are `size` bytes like txonly's.
    txPkts: mode === 'flowgen' ? size + 4 : size,
    queueSize,
    mrgRxbuf: opts.mrgRxbuf,
    inOrder: opts.inOrder,
    packedVq: layout === 'packed',
    queues: pairs,
    cpu: opts.cpuFrontend,
    memory: opts.memory === 'hugepages' ? 'hugepages' : 'no-huge',
    memoryMb: 256,
    burst: 32,
    pollMs: 500,
    // io: half a ring of frames circulates per pair (tx_first N sends N bursts of 32 on each stream).
    txFirstBursts: mode === 'io' ? Math.max(1, Math.floor(queueSize / 64)) : 0,
    durationMs: opts.warmup * 1000,
    timeoutMs: opts.warmup * 1000 + 10_000,
    thenPhases: [
      {
        forwardMode: mode,
        durationMs: opts.seconds * 1000,
        timeoutMs: opts.seconds * 1000 + 10_000,
        // Stop early when nothing moves any more (our loopback holds txonly back: see README).
        until: (s) => {
          const now = Date.now();
          if (s.txPackets !== lastProgress.tx || s.rxPackets !== lastProgress.rx) {
            lastProgress = { tx: s.txPackets, rx: s.rxPackets, t: now };
            return false;
          }
          return now - lastProgress.t >= 1000;
        },
      },
    ],
    extraAppArgs: ['--no-flush-rx'], // `start` would otherwise drop the frames in the RX ring (io: the population)
    afterPhase: async (_phase: PhaseResult, i: number) => {
      if (i === 0) {
        frontendPids = pidsWithArg(`path=${socketPath},`);
        s0 = await snapshot(be, frontendPids);
      } else s1 = await snapshot(be, frontendPids);
    },
  });
  return { result, s0, s1 };
}

type MeasuredPhase = PhaseResult & { stats: NonNullable<PhaseResult['stats']> };

/** The phase ran to its `stop` and testpmd printed its port counters. */
function completed(phase: PhaseResult | undefined): phase is MeasuredPhase {
  return !!phase?.stats;
}

/** Rates of the measured phase (the difference from the end of the warm-up), and how steady they were; returns its seconds. */
function fillRates(run: RunResult, p0: MeasuredPhase, p1: MeasuredPhase): number {
  const { mode } = run;
  const seconds = p1.forwardingMs / 1000;
  run.seconds = seconds;
  run.guestTx = direction(p1.stats.txPackets - p0.stats.txPackets, p1.stats.txBytes - p0.stats.txBytes, seconds);
  run.guestRx = direction(p1.stats.rxPackets - p0.stats.rxPackets, p1.stats.rxBytes - p0.stats.rxBytes, seconds);
  run.frontendTxDropped = p1.forward?.txDropped;
  // Rate between successive polls of the measured phase (to see whether a run changed pace).
  const useTx = mode === 'txonly' || mode === 'flowgen';
  let prev = { t: 0, n: useTx ? p0.stats.txPackets : p0.stats.rxPackets };
  run.timeline = [];
  for (const sample of p1.samples) {
    const n = useTx ? sample.stats.txPackets : sample.stats.rxPackets;
    if (sample.t > prev.t) run.timeline.push(Number(((n - prev.n) / ((sample.t - prev.t) * 1000)).toFixed(3)));
    prev = { t: sample.t, n };
  }
  const moving = run.timeline.slice(0, -1); // the last poll may straddle the stop
  if (moving.length >= 2 && Math.max(...moving) > 0 && Math.min(...moving) / Math.max(...moving) < 0.75) run.unsteady = true;
  run.stalled = p1.stopReason === 'until';
  const primary = mode === 'txonly' || mode === 'flowgen' ? run.guestTx : run.guestRx;
  run.mpps = primary.mpps;
  run.gbps = primary.gbps;
  return seconds;
}

function runNotes(run: RunResult, p1: MeasuredPhase): string[] {
  const notes: string[] = [];
  if (run.stalled) {
    notes.push(
      `stalled: no frame moved for 1 s (front-end sent ${p1.stats.txPackets} frames in all, received ${p1.stats.rxPackets}); ` +
        `back-end CPU meanwhile ${run.cpu?.utilisation.toFixed(2)}`,
    );
  }
  if (run.dpdkForward && run.dpdkForward.txDropped > 0) {
    const total = run.dpdkForward.txPackets + run.dpdkForward.txDropped;
    notes.push(
      `DPDK back-end dropped ${((100 * run.dpdkForward.txDropped) / total).toFixed(1)}% of the frames it tried to send to the guest (guest RX ring full)`,
    );
  }
  return notes;
}
