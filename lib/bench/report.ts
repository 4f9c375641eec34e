/** Turning runs into per-cell figures, the terminal table and the SVG chart. */
import type { BackendKind } from './backends';
import type { Aggregate, CellSummary, IdleRun, IdleSummary, LatencyRun, LatencySummary, Mode, OursWorker, RunResult } from './types';

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
    const { mode, size, queueSize } = list[0];
    const ours = backends.includes('ours') ? aggregate(list.filter((r) => r.backend === 'ours')) : null;
    const dpdk = backends.includes('dpdk') ? aggregate(list.filter((r) => r.backend === 'dpdk')) : null;
    const ratio = ours?.mpps != null && dpdk?.mpps ? ours.mpps / dpdk.mpps : null;
    const bestRatio = ours?.mppsMax != null && dpdk?.mppsMax ? ours.mppsMax / dpdk.mppsMax : null;
    const cpuRatio = ours?.cpuPerMpkt != null && dpdk?.cpuPerMpkt ? ours.cpuPerMpkt / dpdk.cpuPerMpkt : null;
    // Ratio within each round (the A and B runs next to each other in time).
    const roundRatios: number[] = [];
    for (const r of new Set(list.map((x) => x.round))) {
      const a = list.find((x) => x.round === r && x.backend === 'ours' && x.mpps !== undefined && !x.error);
      const b = list.find((x) => x.round === r && x.backend === 'dpdk' && x.mpps !== undefined && !x.error);
      if (a && b && (b.mpps as number) > 0) roundRatios.push(Number(((a.mpps as number) / (b.mpps as number)).toFixed(3)));
    }
    const probes = list.map((x) => x.crossCpuNs).filter((x): x is number => x !== undefined);
    const crossCpuNs: [number, number] | null = probes.length ? [Math.min(...probes), Math.max(...probes)] : null;
    out.push({ cell, mode, size, queueSize, ours, dpdk, ratio, bestRatio, crossCpuNs, cpuRatio, roundRatios });
  }
  return out;
}

export function summariseLatency(runs: LatencyRun[], backends: BackendKind[]): LatencySummary[] {
  const sizes = [...new Set(runs.map((r) => r.size))];
  return sizes.map((size) => {
    const pick = (b: BackendKind, worker?: OursWorker) => {
      if (!backends.includes(b)) return null;
      const ok = runs.filter((r) => r.size === size && r.backend === b && r.worker === worker && !r.error && r.p50Us !== undefined);
      if (ok.length === 0) return null;
      return { p50Us: median(ok.map((r) => r.p50Us as number)) as number, p99Us: median(ok.map((r) => r.p99Us as number)) as number, runs: ok.length };
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
    if (ok.length) out.push({ backend: r.backend, worker: r.worker, runs: ok.length, cpuUtilisation: median(ok.map((x) => x.cpuUtilisation as number)) as number });
  }
  return out;
}

/** "ours (event-driven)", "DPDK". */
export function backendLabel(backend: BackendKind, worker?: OursWorker): string {
  return backend === 'dpdk' ? 'DPDK vhost PMD' : `ours (${worker ?? 'adaptive'})`;
}

// ---------------------------------------------------------------------------------------------
// Terminal

const MODE_LABEL: Record<Mode, string> = {
  io: 'io (round trip)',
  flowgen: 'flowgen (TX, RX drained)',
  txonly: 'txonly (guest TX)',
  rxonly: 'rxonly (guest RX)',
};

export function modeLabel(m: Mode): string {
  return MODE_LABEL[m];
}

function f(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return x.toFixed(digits);
}

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
  const head = cols.map(([name, n, right]) => pad(name, n, right)).join(' ');
  const lines = [head, '-'.repeat(head.length)];
  for (const c of cells) {
    const v: string[] = [String(c.queueSize), String(c.size), MODE_LABEL[c.mode], medianCell(c.ours), bestCell(c.ours)];
    if (both) v.push(medianCell(c.dpdk), bestCell(c.dpdk), f(c.ratio), f(c.bestRatio));
    v.push(f(c.ours?.gbps));
    if (both) v.push(f(c.dpdk?.gbps));
    v.push(f(c.ours?.cpuPerMpkt, 3));
    if (both) v.push(f(c.dpdk?.cpuPerMpkt, 3));
    v.push(f(c.ours?.rssMiB, 1));
    if (both) v.push(f(c.dpdk?.rssMiB, 1));
    v.push(small(c.ours?.txKicksPerPkt), small(c.ours?.rxKicksPerPkt));
    lines.push(v.map((x, i) => pad(x, cols[i][1], cols[i][2])).join(' '));
  }
  return lines.join('\n');
}

export function formatLatency(lat: LatencySummary[], backends: BackendKind[]): string {
  const both = backends.includes('ours') && backends.includes('dpdk');
  const head = [pad('size', 5, true), pad('ours p50 µs', 12, true), pad('p99 µs', 8, true), pad('event-driven p50', 17, true), pad('p99 µs', 8, true)];
  if (both) head.push(pad('DPDK p50 µs', 12, true), pad('p99 µs', 8, true), pad('p50 ratio', 10, true), pad('p99 ratio', 10, true));
  const lines = [head.join(' '), '-'.repeat(head.join(' ').length)];
  for (const l of lat) {
    const row = [pad(String(l.size), 5, true), pad(f(l.ours?.p50Us, 1), 12, true), pad(f(l.ours?.p99Us, 1), 8, true), pad(f(l.oursEvent?.p50Us, 1), 17, true), pad(f(l.oursEvent?.p99Us, 1), 8, true)];
    if (both) row.push(pad(f(l.dpdk?.p50Us, 1), 12, true), pad(f(l.dpdk?.p99Us, 1), 8, true), pad(f(l.p50Ratio), 10, true), pad(f(l.p99Ratio), 10, true));
    lines.push(row.join(' '));
  }
  return lines.join('\n');
}

export function formatIdle(idle: IdleSummary[]): string {
  return idle.map((i) => `  ${pad(backendLabel(i.backend, i.worker), 24)} ${(100 * i.cpuUtilisation).toFixed(2).padStart(7)} % of a CPU (median of ${i.runs})`).join('\n');
}

// ---------------------------------------------------------------------------------------------
// SVG

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A "nice" axis maximum at or above x (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k) and how many gridline steps divide it evenly. */
function niceAxis(x: number): { max: number; steps: number } {
  if (!(x > 0)) return { max: 1, steps: 4 };
  const e = Math.pow(10, Math.floor(Math.log10(x)));
  const options: [number, number][] = [[1, 5], [1.5, 3], [2, 4], [2.5, 5], [3, 3], [4, 4], [5, 5], [6, 3], [8, 4], [10, 5]];
  for (const [m, steps] of options) if (m * e >= x) return { max: m * e, steps };
  return { max: 10 * e, steps: 5 };
}

const COLOURS: Record<BackendKind, string> = { ours: '#2563eb', dpdk: '#ea580c' };
const NAMES: Record<BackendKind, string> = {
  ours: 'ours (vhost-user: loopback, sink or source port)',
  dpdk: 'DPDK vhost PMD (testpmd macswap, rxonly or txonly)',
};

/**
 * Grouped bars of Mpps per frame size, ours next to DPDK, one panel per (mode, queue size), with
 * the ours/DPDK ratio under each group. Written by hand: no dependency.
 */
export function renderSvg(cells: CellSummary[], backends: BackendKind[], title: string, subtitle: string): string {
  const modes = [...new Set(cells.map((c) => c.mode))];
  const queues = [...new Set(cells.map((c) => c.queueSize))];
  const H = 250;
  const margin = { top: 88, left: 20 };
  const cols = Math.max(1, queues.length);
  const width = Math.max(800, margin.left * 2 + cols * 380);
  const W = (width - margin.left * 2) / cols;
  const height = margin.top + modes.length * H + 20;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="${margin.left}" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="${margin.left}" y="40" fill="#444">${esc(subtitle)}</text>`);
  out.push(`<text x="${margin.left}" y="80" fill="#444">bars: median over rounds · whiskers: slowest and fastest round · n/a: not measurable (see bench/README.md)</text>`);
  let lx = margin.left;
  for (const b of backends) {
    out.push(`<rect x="${lx}" y="50" width="12" height="12" fill="${COLOURS[b]}"/>`);
    out.push(`<text x="${lx + 16}" y="60">${esc(NAMES[b])}</text>`);
    lx += 16 + NAMES[b].length * 6 + 20;
  }
  modes.forEach((mode, row) => {
    queues.forEach((q, col) => {
      const x0 = margin.left + col * W;
      const y0 = margin.top + row * H;
      const panel = cells.filter((c) => c.mode === mode && c.queueSize === q).sort((a, b) => a.size - b.size);
      const plot = { x: x0 + 45, y: y0 + 28, w: W - 65, h: H - 78 };
      out.push(`<text x="${x0 + 10}" y="${y0 + 16}" font-size="12" font-weight="bold">${esc(`${modeLabel(mode)}, queue size ${q}`)}</text>`);
      const values = panel.flatMap((c) => backends.map((b) => (b === 'ours' ? c.ours?.mppsMax : c.dpdk?.mppsMax) ?? 0));
      const axis = niceAxis(Math.max(0.001, ...values) * 1.1);
      const ymax = axis.max;
      for (let i = 0; i <= axis.steps; i++) {
        const v = (ymax * i) / axis.steps;
        const y = plot.y + plot.h - (plot.h * i) / axis.steps;
        out.push(`<line x1="${plot.x}" y1="${y.toFixed(1)}" x2="${plot.x + plot.w}" y2="${y.toFixed(1)}" stroke="#ddd"/>`);
        out.push(`<text x="${plot.x - 4}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#555">${v.toFixed(ymax < 2 ? 2 : 1)}</text>`);
      }
      out.push(`<text x="${x0 + 10}" y="${plot.y + plot.h / 2}" transform="rotate(-90 ${x0 + 10} ${plot.y + plot.h / 2})" text-anchor="middle" fill="#555">Mpps</text>`);
      const groupW = plot.w / Math.max(1, panel.length);
      const barW = Math.min(40, (groupW - 20) / Math.max(1, backends.length));
      panel.forEach((c, i) => {
        const gx = plot.x + i * groupW + (groupW - barW * backends.length) / 2;
        backends.forEach((b, k) => {
          const agg = b === 'ours' ? c.ours : c.dpdk;
          const v = agg?.mpps ?? null;
          const bx = gx + k * barW;
          if (v === null) {
            const label = agg?.note?.startsWith('not run') ? 'n/a' : agg?.note?.startsWith('failed') ? 'fail' : '—';
            out.push(`<text x="${(bx + barW / 2).toFixed(1)}" y="${plot.y + plot.h - 4}" text-anchor="middle" fill="#888">${label}</text>`);
            return;
          }
          const h = (plot.h * v) / ymax;
          out.push(`<rect x="${bx.toFixed(1)}" y="${(plot.y + plot.h - h).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLOURS[b]}"><title>${esc(`${NAMES[b]}: ${v.toFixed(3)} Mpps`)}</title></rect>`);
          // Whisker: the slowest and fastest round.
          const lo = agg?.mppsMin ?? v;
          const hi = agg?.mppsMax ?? v;
          const cx = bx + barW / 2 - 1;
          if (hi > lo) {
            const yl = plot.y + plot.h - (plot.h * lo) / ymax;
            const yh = plot.y + plot.h - (plot.h * hi) / ymax;
            out.push(`<line x1="${cx.toFixed(1)}" y1="${yl.toFixed(1)}" x2="${cx.toFixed(1)}" y2="${yh.toFixed(1)}" stroke="#111" stroke-width="1"/>`);
            out.push(`<line x1="${(cx - 4).toFixed(1)}" y1="${yh.toFixed(1)}" x2="${(cx + 4).toFixed(1)}" y2="${yh.toFixed(1)}" stroke="#111" stroke-width="1"/>`);
            out.push(`<line x1="${(cx - 4).toFixed(1)}" y1="${yl.toFixed(1)}" x2="${(cx + 4).toFixed(1)}" y2="${yl.toFixed(1)}" stroke="#111" stroke-width="1"/>`);
          }
          const label = agg?.stalled ? 'stall' : v.toFixed(v < 10 ? 2 : 1);
          const top = plot.y + plot.h - (plot.h * Math.max(v, hi)) / ymax;
          out.push(`<text x="${cx.toFixed(1)}" y="${(top - 3).toFixed(1)}" text-anchor="middle" font-size="9">${label}</text>`);
        });
        const cx = plot.x + i * groupW + groupW / 2;
        out.push(`<text x="${cx.toFixed(1)}" y="${plot.y + plot.h + 14}" text-anchor="middle">${c.size} B</text>`);
        if (c.ratio !== null) {
          out.push(`<text x="${cx.toFixed(1)}" y="${plot.y + plot.h + 27}" text-anchor="middle" fill="#444" font-size="10">ours/DPDK ${c.ratio.toFixed(2)}</text>`);
          if (c.bestRatio !== null) out.push(`<text x="${cx.toFixed(1)}" y="${plot.y + plot.h + 39}" text-anchor="middle" fill="#777" font-size="9">best rounds ${c.bestRatio.toFixed(2)}</text>`);
        }
      });
      out.push(`<line x1="${plot.x}" y1="${plot.y + plot.h}" x2="${plot.x + plot.w}" y2="${plot.y + plot.h}" stroke="#333"/>`);
    });
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
