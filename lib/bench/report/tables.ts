/** The terminal tables printed at the end of a run. */
import type { BackendKind } from '../backends';
import type { Aggregate, CellSummary, IdleSummary, LatencySummary, LayoutRatio } from '../types';
import { backendLabel, fixed as f, modeLabel } from './summary';

/** Small ratios (kicks per frame): fixed point down to 0.001, then exponent notation. */
function small(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (x === 0) return '0';
  return x >= 0.001 ? x.toFixed(3) : x.toExponential(1);
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

function medianCell(a: Aggregate | null): string {
  if (!a) return '—';
  if (a.mpps === null) return a.note?.startsWith('not run') ? 'n/a' : a.note?.startsWith('failed') ? 'FAIL' : '—';
  return `${f(a.mpps, 2)}${a.stalled ? ' stall' : ''}`;
}

function bestCell(a: Aggregate | null): string {
  return a?.mpps === null || !a ? '' : f(a.mppsMax, 2);
}

/** The results table: one row per cell, ours vs DPDK side by side. */
export function formatTable(cells: CellSummary[], backends: BackendKind[]): string {
  const both = backends.includes('ours') && backends.includes('dpdk');
  const cols: [string, number, boolean][] = [
    ['Q', 5, true],
    ['size', 5, true],
    ['mode', 25, false],
    ['layout', 6, false],
    ['pairs', 5, true],
    ['ours Mpps', 11, true],
    ['best', 6, true],
  ];
  if (both) cols.push(['DPDK Mpps', 10, true], ['best', 6, true], ['ratio', 6, true], ['best r.', 7, true]);
  cols.push(['ours Gb/s', 9, true]);
  if (both) cols.push(['DPDK', 6, true]);
  cols.push(['CPU s/Mpkt ours', 16, true]);
  if (both) cols.push(['DPDK', 6, true]);
  cols.push(['RSS MiB ours', 12, true]);
  if (both) cols.push(['DPDK', 6, true]);
  cols.push(['kicks/frame tx', 14, true], ['rx', 7, true]);
  const multi = cells.some((c) => c.pairs > 1);
  if (multi) cols.push(['Jain ours', 9, true], ['min/max', 7, true]);
  if (multi && both) cols.push(['Jain DPDK', 9, true], ['min/max', 7, true]);
  const head = cols.map(([name, n, right]) => pad(name, n, right)).join(' ');
  const lines = [head, '-'.repeat(head.length)];
  for (const c of cells) {
    const v: string[] = [
      String(c.queueSize),
      String(c.size),
      modeLabel(c.mode),
      c.layout,
      String(c.pairs),
      medianCell(c.ours),
      bestCell(c.ours),
    ];
    if (both) v.push(medianCell(c.dpdk), bestCell(c.dpdk), f(c.ratio), f(c.bestRatio));
    v.push(f(c.ours?.gbps));
    if (both) v.push(f(c.dpdk?.gbps));
    v.push(f(c.ours?.cpuPerMpkt, 3));
    if (both) v.push(f(c.dpdk?.cpuPerMpkt, 3));
    v.push(f(c.ours?.rssMiB, 1));
    if (both) v.push(f(c.dpdk?.rssMiB, 1));
    v.push(small(c.ours?.txKicksPerPkt), small(c.ours?.rxKicksPerPkt));
    if (multi) v.push(f(c.fairness?.ours?.jain, 3), f(c.fairness?.ours?.minMax));
    if (multi && both) v.push(f(c.fairness?.dpdk?.jain, 3), f(c.fairness?.dpdk?.minMax));
    lines.push(v.map((x, i) => pad(x, cols[i][1], cols[i][2])).join(' '));
  }
  return lines.join('\n');
}

/** The faster-layout ratios: one row per (queue size, size, mode, pairs). */
export function formatLayoutRatios(ratios: LayoutRatio[]): string {
  const cols: [string, number, boolean][] = [
    ['Q', 5, true],
    ['size', 5, true],
    ['mode', 25, false],
    ['pairs', 5, true],
    ['ours best', 10, true],
    ['layout', 7, false],
    ['DPDK best', 10, true],
    ['layout', 7, false],
    ['ratio', 6, true],
    ['unmeasured', 10, false],
  ];
  const head = cols.map(([name, n, right]) => pad(name, n, right)).join(' ');
  const lines = [head, '-'.repeat(head.length)];
  for (const r of ratios) {
    const v = [String(r.queueSize), String(r.size), modeLabel(r.mode), String(r.pairs), f(r.ours?.mpps), r.ours?.layout ?? '—'];
    v.push(f(r.dpdk?.mpps), r.dpdk?.layout ?? '—', f(r.ratio), r.unmeasured.join(', ') || '—');
    lines.push(v.map((x, i) => pad(x, cols[i][1], cols[i][2])).join(' '));
  }
  return lines.join('\n');
}

export function formatLatency(lat: LatencySummary[], backends: BackendKind[]): string {
  const both = backends.includes('ours') && backends.includes('dpdk');
  const head = [
    pad('size', 5, true),
    pad('ours p50 µs', 12, true),
    pad('p99 µs', 8, true),
    pad('event-driven p50', 17, true),
    pad('p99 µs', 8, true),
  ];
  if (both) head.push(pad('DPDK p50 µs', 12, true), pad('p99 µs', 8, true), pad('p50 ratio', 10, true), pad('p99 ratio', 10, true));
  const lines = [head.join(' '), '-'.repeat(head.join(' ').length)];
  for (const l of lat) {
    const row = [
      pad(String(l.size), 5, true),
      pad(f(l.ours?.p50Us, 1), 12, true),
      pad(f(l.ours?.p99Us, 1), 8, true),
      pad(f(l.oursEvent?.p50Us, 1), 17, true),
      pad(f(l.oursEvent?.p99Us, 1), 8, true),
    ];
    if (both)
      row.push(
        pad(f(l.dpdk?.p50Us, 1), 12, true),
        pad(f(l.dpdk?.p99Us, 1), 8, true),
        pad(f(l.p50Ratio), 10, true),
        pad(f(l.p99Ratio), 10, true),
      );
    lines.push(row.join(' '));
  }
  return lines.join('\n');
}

export function formatIdle(idle: IdleSummary[]): string {
  return idle
    .map(
      (i) =>
        `  ${pad(backendLabel(i.backend, i.worker), 24)} ${(100 * i.cpuUtilisation).toFixed(2).padStart(7)} % of a CPU (median of ${i.runs})`,
    )
    .join('\n');
}
