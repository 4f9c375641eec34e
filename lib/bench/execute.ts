/**
 * The execution of a plan: each run after the machine went quiet, with the CPUs' distance probed,
 * repeated when other processes disturbed it, and one line printed when it finished.
 */
import type { Options } from './cli';
import type { Code, Workspace } from './host';
import { crossCpuRoundTripNs } from './measure/cpu_probe';
import { runIdle } from './measure/idle';
import { runLatency } from './measure/latency';
import { waitQuiet } from './measure/snapshot';
import { runWithOurFrontend } from './measure/throughput_ours';
import { runWithTestpmd } from './measure/throughput_testpmd';
import type { Plan } from './plan';
import { idleLabel, idleLine, latencyLabel, latencyLine, throughputLabel, throughputLine } from './report/console';
import type { Progress } from './report/progress';
import type { IdleRun, LatencyRun, RunResult } from './types';

/** Runs every planned run in order; the latency and idle runs are filled in where they stand in the plan. */
export async function executePlan(
  opts: Options,
  ws: Workspace,
  plan: Plan,
  progress: Progress,
): Promise<{ runs: RunResult[]; errors: string[] }> {
  const runs: RunResult[] = [];
  const errors: string[] = [];
  const failed = (label: string, error: string) => {
    errors.push(`${label}: ${error}`);
    progress.log(`  ${label}: FAILED: ${error.split('\n')[0]}`);
  };
  for (const planned of plan.throughput) {
    if (planned.skipped) {
      runs.push(planned);
      continue;
    }
    const label = throughputLabel(planned, opts.rounds);
    progress.start(label);
    const run = await throughputWithRetries(opts, ws, planned, label, progress);
    runs.push(run);
    progress.finish();
    if (run.error) failed(label, run.error);
    else progress.log(throughputLine(label, run));
  }
  for (const lat of plan.latency) {
    const label = latencyLabel(lat, opts.rounds);
    progress.start(label);
    await latencyWithRetries(opts, ws, lat, label, progress);
    progress.finish();
    if (lat.error) failed(label, lat.error);
    else progress.log(latencyLine(label, lat));
  }
  for (const idle of plan.idle) {
    const label = idleLabel(idle, opts.rounds);
    progress.start(label);
    await measureIdle(opts, ws, idle);
    progress.finish();
    if (idle.error) failed(label, idle.error);
    else progress.log(idleLine(label, idle));
  }
  return { runs, errors };
}

/** Other processes used more CPU than allowed while the run measured. */
function disturbed(opts: Options, load: number | undefined): boolean {
  return (load ?? 0) > opts.maxOtherLoad;
}

async function probeCpus(opts: Options, code: Code): Promise<number | undefined> {
  return (await crossCpuRoundTripNs(opts.cpuBackend, { script: code.cpuProbeScript, env: code.env })) ?? undefined;
}

/** A throughput run; while disturbed, again (up to --retries), keeping the least disturbed attempt. */
async function throughputWithRetries(
  opts: Options,
  ws: Workspace,
  planned: RunResult,
  label: string,
  progress: Progress,
): Promise<RunResult> {
  let best: RunResult | null = null;
  for (let attempt = 1; ; attempt++) {
    const { cell, mode, size, queueSize, layout, pairs, backend, round } = planned;
    const run: RunResult = {
      cell,
      mode,
      size,
      queueSize,
      layout,
      pairs,
      backend,
      round,
      attempts: attempt,
      startedAt: new Date().toISOString(),
    };
    try {
      run.foreignLoad = await waitQuiet(opts.quietWait);
      run.crossCpuNs = await probeCpus(opts, ws.code);
      const socketPath = ws.nextSocket();
      if (opts.frontend === 'dpdk') await runWithTestpmd(opts, ws.code, run, socketPath);
      else await runWithOurFrontend(opts, ws.code, run, socketPath);
    } catch (err) {
      run.error = (err as Error).message;
    }
    if (run.error || !disturbed(opts, run.foreignLoadDuring)) return run;
    if (!best || (run.foreignLoadDuring ?? 0) < (best.foreignLoadDuring ?? 0)) best = run;
    if (attempt > opts.retries) {
      best.attempts = attempt;
      (best.notes ??= []).push(
        `other processes used ${best.foreignLoadDuring?.toFixed(2)} CPU during the run (${attempt} attempts, least disturbed kept)`,
      );
      return best;
    }
    progress.log(`  ${label}: other processes used ${run.foreignLoadDuring?.toFixed(2)} CPU meanwhile: repeating`);
  }
}

/** A latency run, in place; while disturbed, again (up to --retries), keeping the least disturbed attempt. */
async function latencyWithRetries(opts: Options, ws: Workspace, lat: LatencyRun, label: string, progress: Progress): Promise<void> {
  let best: LatencyRun | null = null;
  for (let attempt = 1; ; attempt++) {
    // Start each attempt from the planned entry alone.
    for (const k of Object.keys(lat) as (keyof LatencyRun)[]) if (!['size', 'backend', 'worker', 'round'].includes(k)) delete lat[k];
    lat.attempts = attempt;
    try {
      lat.foreignLoad = await waitQuiet(opts.quietWait);
      lat.crossCpuNs = await probeCpus(opts, ws.code);
      await runLatency(opts, ws.code, lat, ws.nextSocket());
    } catch (err) {
      lat.error = (err as Error).message;
    }
    if (lat.error || !disturbed(opts, lat.foreignLoadDuring)) return;
    if (!best || (lat.foreignLoadDuring ?? 0) < (best.foreignLoadDuring ?? 0)) best = { ...lat };
    if (attempt > opts.retries) {
      Object.assign(lat, best, { attempts: attempt });
      return;
    }
    progress.log(`  ${label}: other processes used ${lat.foreignLoadDuring?.toFixed(2)} CPU meanwhile: repeating`);
  }
}

/** An idle run, in place (no retries: it measures the back-end alone, whatever else runs). */
async function measureIdle(opts: Options, ws: Workspace, idle: IdleRun): Promise<void> {
  try {
    await waitQuiet(opts.quietWait);
    await runIdle(opts, ws.code, idle, ws.nextSocket());
  } catch (err) {
    idle.error = (err as Error).message;
  }
}
