/** One throughput run with our own VirtioNetDriver as the front-end (when DPDK testpmd is not there, or not wanted). */
import type { Options } from '../cli';
import type { Code } from '../host';
import type { ThroughputResult } from '../ours_frontend';
import type { RunResult } from '../types';
import { runOursFrontend, type ChildRun } from './ours_child';
import { requireAskedLayout, startThroughputBackend } from './peers';
import { direction, fillBackendFigures } from './snapshot';

export async function runWithOurFrontend(opts: Options, code: Code, run: RunResult, socketPath: string): Promise<void> {
  const be = await startThroughputBackend(opts, code, run, socketPath);
  let child: ChildRun;
  try {
    const mode = run.mode === 'io' ? 'io' : run.mode === 'rxonly' ? 'rx' : 'tx';
    child = await runOursFrontend(
      opts,
      code,
      be,
      [
        '--mode',
        mode,
        '--size',
        String(run.size),
        '--queue-size',
        String(run.queueSize),
        '--seconds',
        String(opts.seconds),
        '--warmup',
        String(opts.warmup),
      ],
      (opts.seconds + opts.warmup) * 1000 + 20_000,
    );
  } finally {
    const exit = await be.stop();
    if (exit.forward)
      run.dpdkForward = { rxPackets: exit.forward.rxPackets, txPackets: exit.forward.txPackets, txDropped: exit.forward.txDropped };
  }
  requireAskedLayout(run, be);
  const res = child.result as ThroughputResult;
  run.seconds = res.seconds;
  run.guestTx = direction(res.txFrames, res.txBytes, res.seconds);
  run.guestRx = direction(res.rxFrames, res.rxBytes, res.seconds);
  const primary = run.mode === 'io' || run.mode === 'rxonly' ? run.guestRx : run.guestTx;
  run.mpps = primary.mpps;
  run.gbps = primary.gbps;
  if (child.s0 && child.s1) fillBackendFigures(run, be, child.s0, child.s1, res.seconds, Math.max(res.txFrames, res.rxFrames));
  run.notes = [`front-end: our VirtioNetDriver (event-driven, JavaScript per frame), mode ${oursModeNote(run)}; features ${res.features}`];
}

function oursModeNote(run: RunResult): string {
  if (run.mode === 'io') return 'io (population of queue/2 frames circulating)';
  if (run.mode === 'rxonly') return 'rx (receive only)';
  return 'tx (send as fast as the ring takes frames, RX drained)';
}
