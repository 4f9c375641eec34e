/** What a benchmark prints on stdout: the set-up first, one line per finished run, the tables at the end. */
import type { Options } from '../cli';
import { IDLE_SECONDS } from '../measure/idle';
import type { IdleRun, LatencyRun, Report, RunResult } from '../types';
import { backendLabel } from './summary';
import { formatJsTable } from './js_table';
import { formatIdle, formatLatency, formatLayoutRatios, formatTable } from './tables';

export function printBanner(opts: Options, host: Report['host'], frontendDescription: string, total: number): void {
  process.stdout.write(
    `vhost-user benchmark: ${host.nproc} CPUs (${host.cpuModel}), ${host.kernel}, DPDK ${host.dpdk ?? 'absent'}, node ${host.node}\n` +
      `front-end: ${frontendDescription}\nback-ends: ${opts.backends.join(' vs ')} on CPU ${opts.cpuBackend}; ` +
      `${opts.rounds} round(s) A/B, ${opts.warmup} s warm-up + ${opts.seconds} s per run; ${total} runs\n`,
  );
}

export function throughputLabel(run: RunResult, rounds: number): string {
  return `${run.cell} ${run.backend} round ${run.round}/${rounds}`;
}

export function latencyLabel(lat: LatencyRun, rounds: number): string {
  return `latency ${lat.size}B ${backendLabel(lat.backend, lat.worker)} round ${lat.round}/${rounds}`;
}

export function idleLabel(idle: IdleRun, rounds: number): string {
  return `idle ${backendLabel(idle.backend, idle.worker)} round ${idle.round}/${rounds}`;
}

/** The figures of a finished throughput run, on one line. */
export function throughputLine(label: string, run: RunResult): string {
  const extra = run.ours
    ? `, kicks tx ${run.ours.delta.tx.kicks} rx ${run.ours.delta.rx.kicks} calls ${run.ours.delta.tx.calls + run.ours.delta.rx.calls}, ` +
      `sleeps ${run.cpu?.voluntaryPerMpkt.toFixed(0)}/Mpkt`
    : '';
  return (
    `  ${label}: ${run.mpps?.toFixed(3)} Mpps ${run.gbps?.toFixed(2)} Gb/s${run.stalled ? ' (stalled)' : ''}` +
    `${run.unsteady ? ` (unsteady: ${Math.min(...(run.timeline ?? [])).toFixed(1)}-${Math.max(...(run.timeline ?? [])).toFixed(1)})` : ''}, ` +
    `CPU ${run.cpu?.utilisation.toFixed(2)} (${run.cpu?.perMpkt.toFixed(3)} s/Mpkt, ${((run.cpu?.systemShare ?? 0) * 100).toFixed(0)}% kernel), RSS ${run.memory?.rssMiB.toFixed(1)} MiB${extra}` +
    `, x-CPU ${run.crossCpuNs?.toFixed(0)} ns` +
    `${(run.foreignLoadDuring ?? 0) > 0.1 ? `, other load ${run.foreignLoadDuring?.toFixed(2)} CPU` : ''}` +
    `${(run.stealDuring ?? 0) > 0.05 ? `, steal ${run.stealDuring?.toFixed(2)} CPU` : ''}` +
    pairsText(run)
  );
}

/** Pairs > 1: each pair's Mpps and the fairness, for the run's line. */
function pairsText(run: RunResult): string {
  if (!run.perPair) return '';
  const each = run.perPair.map((p) => p.mpps.toFixed(2)).join('/');
  return `, pairs ${each} Mpps${run.fairness ? ` (Jain ${run.fairness.jain.toFixed(3)}, min/max ${run.fairness.minMax.toFixed(2)})` : ''}`;
}

export function latencyLine(label: string, lat: LatencyRun): string {
  return (
    `  ${label}: p50 ${lat.p50Us?.toFixed(1)} µs p99 ${lat.p99Us?.toFixed(1)} µs (${lat.count} pings, ${lat.lost} lost), ` +
    `back-end CPU ${lat.backendCpuUtilisation?.toFixed(2)}` +
    (lat.oursPerPing ? `, per ping: ${lat.oursPerPing.txKicks.toFixed(2)} TX kicks, ${lat.oursPerPing.calls.toFixed(2)} calls` : '') +
    `, x-CPU ${lat.crossCpuNs?.toFixed(0)} ns` +
    `${(lat.foreignLoadDuring ?? 0) > 0.1 ? `, other load ${lat.foreignLoadDuring?.toFixed(2)} CPU` : ''}`
  );
}

export function idleLine(label: string, idle: IdleRun): string {
  return `  ${label}: back-end CPU ${(100 * (idle.cpuUtilisation ?? NaN)).toFixed(2)} % over ${idle.seconds?.toFixed(1)} s`;
}

/** The tables and the notes, after the last run. */
export function printSummary(report: Report): void {
  const { rounds, backends, notes } = report.setup;
  process.stdout.write(
    `\nThroughput, Mpps: median of ${rounds} round(s) and the best round; ratio = ours / DPDK of the medians, best r. = of the best rounds\n`,
  );
  process.stdout.write(`${formatTable(report.cells, backends)}\n`);
  const js = formatJsTable(report.cells);
  if (js) process.stdout.write(`\nJS port: the JS echo (js) against the native loopback (ours) and DPDK, Mpps and ratios\n${js}\n`);
  const ratios = report.layoutRatios ?? [];
  if (backends.length > 1 && report.setup.layouts.length > 1 && ratios.length) {
    process.stdout.write(`\nours / DPDK's faster layout: each back-end's best layout (median Mpps), the ratio of the two\n`);
    process.stdout.write(`${formatLayoutRatios(ratios)}\n`);
  }
  if (report.latency.length) {
    process.stdout.write(`\nLatency: one frame ping-pong with our event-driven driver (median over rounds of p50 / p99)\n`);
    process.stdout.write(`${formatLatency(report.latency, backends)}\n`);
  }
  if (report.idle.length) {
    process.stdout.write(
      `\nIdle: back-end CPU with a connected front-end sending nothing (${IDLE_SECONDS} s per run)\n${formatIdle(report.idle)}\n`,
    );
  }
  for (const n of notes) process.stdout.write(`\nnote: ${n}`);
  process.stdout.write('\n');
}

/** The failed runs, one line each, after the results. */
export function printErrors(errors: string[]): void {
  if (errors.length) process.stdout.write(`\n${errors.length} run(s) failed:\n${errors.map((e) => `  ${e.split('\n')[0]}`).join('\n')}\n`);
}
