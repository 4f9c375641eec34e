/** Turning runs into per-cell, latency and idle figures; the labels every output uses. */
import type { BackendKind } from '../backends';
import type { Fairness } from '../pairs';
import type {
  Aggregate,
  CellSummary,
  IdleRun,
  IdleSummary,
  JsFigures,
  LatencyRun,
  LatencySummary,
  Mode,
  OursWorker,
  RunResult,
} from '../types';

export function median(xs: number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function mean(xs: (number | undefined)[]): number | null {
  const v = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

function aggregate(runs: RunResult[]): Aggregate | null {
  if (runs.length === 0) return null;
  const ok = runs.filter((r) => !r.error && !r.skipped && r.mpps !== undefined);
  if (ok.length === 0) {
    const skipped = runs.find((r) => r.skipped)?.skipped;
    const error = runs.find((r) => r.error)?.error;
    return {
      runs: 0,
      mpps: null,
      mppsMin: null,
      mppsMax: null,
      gbps: null,
      txMpps: null,
      rxMpps: null,
      cpuPerMpkt: null,
      cpuUtilisation: null,
      rssMiB: null,
      stalled: false,
      note: skipped ? `not run: ${skipped}` : error ? `failed: ${error.split('\n')[0]}` : undefined,
    };
  }
  const mpps = ok.map((r) => r.mpps as number);
  const agg: Aggregate = {
    runs: ok.length,
    mpps: median(mpps),
    mppsMin: Math.min(...mpps),
    mppsMax: Math.max(...mpps),
    gbps: median(ok.map((r) => r.gbps ?? NaN)),
    txMpps: median(ok.map((r) => r.guestTx?.mpps ?? NaN)),
    rxMpps: median(ok.map((r) => r.guestRx?.mpps ?? NaN)),
    // A stalled run moved (next to) nothing: CPU per frame is meaningless there.
    cpuPerMpkt: mean(ok.filter((r) => !r.stalled).map((r) => r.cpu?.perMpkt)),
    cpuUtilisation: mean(ok.map((r) => r.cpu?.utilisation)),
    rssMiB: mean(ok.map((r) => r.memory?.rssMiB)),
    stalled: ok.some((r) => r.stalled),
  };
  if (ok.some((r) => r.ours)) {
    agg.txKicksPerPkt = mean(ok.filter((r) => !r.stalled).map((r) => r.ours?.txKicksPerPkt));
    agg.rxKicksPerPkt = mean(ok.filter((r) => !r.stalled).map((r) => r.ours?.rxKicksPerPkt));
    agg.callsPerPkt = mean(ok.filter((r) => !r.stalled).map((r) => r.ours?.callsPerPkt));
  }
  agg.voluntaryPerMpkt = mean(ok.filter((r) => !r.stalled).map((r) => r.cpu?.voluntaryPerMpkt));
  return agg;
}

export function summarise(runs: RunResult[], backends: BackendKind[]): CellSummary[] {
  const cells = new Map<string, RunResult[]>();
  for (const r of runs) {
    const list = cells.get(r.cell) ?? [];
    list.push(r);
    cells.set(r.cell, list);
  }
  const out: CellSummary[] = [];
  for (const [cell, list] of cells) {
    const { mode, size, queueSize, layout, pairs } = list[0];
    const ours = backends.includes('ours') ? aggregate(list.filter((r) => r.backend === 'ours')) : null;
    const dpdk = backends.includes('dpdk') ? aggregate(list.filter((r) => r.backend === 'dpdk')) : null;
    const ratio = ours?.mpps != null && dpdk?.mpps ? ours.mpps / dpdk.mpps : null;
    const bestRatio = ours?.mppsMax != null && dpdk?.mppsMax ? ours.mppsMax / dpdk.mppsMax : null;
    const cpuRatio = ours?.cpuPerMpkt != null && dpdk?.cpuPerMpkt ? ours.cpuPerMpkt / dpdk.cpuPerMpkt : null;
    const roundRatios = ratiosPerRound(list, 'ours', 'dpdk');
    const probes = list.map((x) => x.crossCpuNs).filter((x): x is number => x !== undefined);
    const crossCpuNs: [number, number] | null = probes.length ? [Math.min(...probes), Math.max(...probes)] : null;
    const cs: CellSummary = { cell, mode, size, queueSize, layout, pairs, ours, dpdk, ratio, bestRatio, crossCpuNs, cpuRatio, roundRatios };
    if (backends.includes('js')) cs.js = jsFigures(list, ours, dpdk);
    if (pairs > 1) cs.fairness = Object.fromEntries(backends.map((b) => [b, medianFairness(list.filter((r) => r.backend === b))]));
    out.push(cs);
  }
  return out;
}

/** a / b of the Mpps within each round (the runs next to each other in time). */
function ratiosPerRound(list: RunResult[], a: BackendKind, b: BackendKind): number[] {
  const out: number[] = [];
  const ok = (x: RunResult, r: number, kind: BackendKind) => x.round === r && x.backend === kind && x.mpps !== undefined && !x.error;
  for (const r of new Set(list.map((x) => x.round))) {
    const ra = list.find((x) => ok(x, r, a));
    const rb = list.find((x) => ok(x, r, b));
    if (ra && rb && (rb.mpps as number) > 0) out.push(Number(((ra.mpps as number) / (rb.mpps as number)).toFixed(3)));
  }
  return out;
}

/** The js back-end's figures in a cell, and its ratios to the native loopback (ours) and to DPDK. */
function jsFigures(list: RunResult[], ours: Aggregate | null, dpdk: Aggregate | null): JsFigures {
  const js = aggregate(list.filter((r) => r.backend === 'js'));
  return {
    aggregate: js,
    perOurs: js?.mpps != null && ours?.mpps ? js.mpps / ours.mpps : null,
    bestPerOurs: js?.mppsMax != null && ours?.mppsMax ? js.mppsMax / ours.mppsMax : null,
    perDpdk: js?.mpps != null && dpdk?.mpps ? js.mpps / dpdk.mpps : null,
    roundRatios: ratiosPerRound(list, 'js', 'ours'),
  };
}

/** A back-end's aggregate in a cell (null when it was not measured). */
export function aggregateOf(c: CellSummary, backend: BackendKind): Aggregate | null {
  return backend === 'js' ? (c.js?.aggregate ?? null) : c[backend];
}

/** Median over a cell's runs of Jain's index and of slowest / fastest pair; null when no run had per-pair figures. */
function medianFairness(runs: RunResult[]): Fairness | null {
  const ok = runs.filter((r) => !r.error && r.fairness);
  if (ok.length === 0) return null;
  return { jain: median(ok.map((r) => r.fairness!.jain)) as number, minMax: median(ok.map((r) => r.fairness!.minMax)) as number };
}

export function summariseLatency(runs: LatencyRun[], backends: BackendKind[]): LatencySummary[] {
  const sizes = [...new Set(runs.map((r) => r.size))];
  return sizes.map((size) => {
    const pick = (b: BackendKind, worker?: OursWorker) => {
      if (!backends.includes(b)) return null;
      const ok = runs.filter((r) => r.size === size && r.backend === b && r.worker === worker && !r.error && r.p50Us !== undefined);
      if (ok.length === 0) return null;
      return {
        p50Us: median(ok.map((r) => r.p50Us as number)) as number,
        p99Us: median(ok.map((r) => r.p99Us as number)) as number,
        runs: ok.length,
      };
    };
    const ours = pick('ours', 'adaptive');
    const oursEvent = pick('ours', 'event-driven');
    const dpdk = pick('dpdk');
    return {
      size,
      ours,
      oursEvent,
      dpdk,
      p50Ratio: ours && dpdk ? ours.p50Us / dpdk.p50Us : null,
      p99Ratio: ours && dpdk ? ours.p99Us / dpdk.p99Us : null,
    };
  });
}

export function summariseIdle(runs: IdleRun[]): IdleSummary[] {
  const out: IdleSummary[] = [];
  for (const r of runs) {
    if (out.some((o) => o.backend === r.backend && o.worker === r.worker)) continue;
    const ok = runs.filter((x) => x.backend === r.backend && x.worker === r.worker && !x.error && x.cpuUtilisation !== undefined);
    if (ok.length)
      out.push({
        backend: r.backend,
        worker: r.worker,
        runs: ok.length,
        cpuUtilisation: median(ok.map((x) => x.cpuUtilisation as number)) as number,
      });
  }
  return out;
}

/** "ours (event-driven)", "DPDK". */
export function backendLabel(backend: BackendKind, worker?: OursWorker): string {
  if (backend === 'js') return 'js (JS echo)';
  return backend === 'dpdk' ? 'DPDK vhost PMD' : `ours (${worker ?? 'adaptive'})`;
}

/** A mode with what it measures, for tables and charts. */
const MODE_LABEL: Record<Mode, string> = {
  io: 'io (round trip)',
  flowgen: 'flowgen (TX, RX drained)',
  txonly: 'txonly (guest TX)',
  rxonly: 'rxonly (guest RX)',
};

/** A figure with `digits` decimals, or a dash when there is none. */
export function fixed(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}

export function modeLabel(m: Mode): string {
  return MODE_LABEL[m];
}
