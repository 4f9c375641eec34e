/** The SVG chart of a run: grouped bars of Mpps, ours next to DPDK. */
import type { BackendKind } from '../backends';
import { LAYOUTS } from '../layout';
import type { CellSummary } from '../types';
import { aggregateOf, modeLabel } from './summary';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A "nice" axis maximum at or above x (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k) and how many gridline steps divide it evenly. */
function niceAxis(x: number): { max: number; steps: number } {
  if (!(x > 0)) return { max: 1, steps: 4 };
  const e = Math.pow(10, Math.floor(Math.log10(x)));
  const options: [number, number][] = [
    [1, 5],
    [1.5, 3],
    [2, 4],
    [2.5, 5],
    [3, 3],
    [4, 4],
    [5, 5],
    [6, 3],
    [8, 4],
    [10, 5],
  ];
  for (const [m, steps] of options) if (m * e >= x) return { max: m * e, steps };
  return { max: 10 * e, steps: 5 };
}

const COLOURS: Record<BackendKind, string> = { ours: '#2563eb', js: '#16a34a', dpdk: '#ea580c' };
const NAMES: Record<BackendKind, string> = {
  ours: 'ours (vhost-user: loopback, sink or source port)',
  js: 'js (js port: MAC-swap echo in JavaScript)',
  dpdk: 'DPDK vhost PMD (testpmd macswap, rxonly or txonly)',
};

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/**
 * Grouped bars of Mpps per frame size, ours next to DPDK, one panel per (mode, queue size), with
 * the ours/DPDK ratio under each group. Written by hand: no dependency.
 */
export function renderSvg(cells: CellSummary[], backends: BackendKind[], title: string, subtitle: string): string {
  const modes = [...new Set(cells.map((c) => c.mode))];
  const queues = [...new Set(cells.map((c) => c.queueSize))];
  // Several layouts or pair counts: a group per (size, layout, pairs), labelled under its size.
  const variants = new Set(cells.map((c) => `${c.layout}/${c.pairs}`)).size > 1;
  const H = variants ? 262 : 250;
  const margin = { top: 88, left: 20 };
  const cols = Math.max(1, queues.length);
  const groups = Math.max(1, ...modes.flatMap((m) => queues.map((q) => cells.filter((c) => c.mode === m && c.queueSize === q).length)));
  const width = Math.max(800, margin.left * 2 + cols * Math.max(380, 65 + groups * 80));
  const W = (width - margin.left * 2) / cols;
  const height = margin.top + modes.length * H + 20;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
  );
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="${margin.left}" y="22" font-size="16" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="${margin.left}" y="40" fill="#444">${esc(subtitle)}</text>`);
  out.push(
    `<text x="${margin.left}" y="80" fill="#444">bars: median over rounds · whiskers: slowest and fastest round · n/a: not measurable (see bench/README.md)</text>`,
  );
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
      const panel = cells
        .filter((c) => c.mode === mode && c.queueSize === q)
        .sort((a, b) => a.size - b.size || a.pairs - b.pairs || LAYOUTS.indexOf(a.layout) - LAYOUTS.indexOf(b.layout));
      out.push(
        `<text x="${x0 + 10}" y="${y0 + 16}" font-size="12" font-weight="bold">${esc(`${modeLabel(mode)}, queue size ${q}`)}</text>`,
      );
      renderPanel(out, panel, backends, x0, { x: x0 + 45, y: y0 + 28, w: W - 65, h: H - (variants ? 90 : 78) }, variants);
    });
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** One panel: its axis and gridlines, then a group of bars per frame size with the ratios under it. */
function renderPanel(out: string[], panel: CellSummary[], backends: BackendKind[], x0: number, plot: Box, variants: boolean): void {
  const values = panel.flatMap((c) => backends.map((b) => aggregateOf(c, b)?.mppsMax ?? 0));
  const axis = niceAxis(Math.max(0.001, ...values) * 1.1);
  const ymax = axis.max;
  for (let i = 0; i <= axis.steps; i++) {
    const v = (ymax * i) / axis.steps;
    const y = plot.y + plot.h - (plot.h * i) / axis.steps;
    out.push(`<line x1="${plot.x}" y1="${y.toFixed(1)}" x2="${plot.x + plot.w}" y2="${y.toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${plot.x - 4}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="#555">${v.toFixed(ymax < 2 ? 2 : 1)}</text>`);
  }
  out.push(
    `<text x="${x0 + 10}" y="${plot.y + plot.h / 2}" transform="rotate(-90 ${x0 + 10} ${plot.y + plot.h / 2})" text-anchor="middle" fill="#555">Mpps</text>`,
  );
  const groupW = plot.w / Math.max(1, panel.length);
  const barW = Math.min(40, (groupW - 20) / Math.max(1, backends.length));
  panel.forEach((c, i) => {
    const gx = plot.x + i * groupW + (groupW - barW * backends.length) / 2;
    backends.forEach((b, k) => renderBar(out, c, b, gx + k * barW, barW, plot, ymax));
    const cx = plot.x + i * groupW + groupW / 2;
    out.push(`<text x="${cx.toFixed(1)}" y="${plot.y + plot.h + 14}" text-anchor="middle">${c.size} B</text>`);
    const dy = variants ? 12 : 0;
    if (variants)
      out.push(
        `<text x="${cx.toFixed(1)}" y="${plot.y + plot.h + 26}" text-anchor="middle" font-size="10">${esc(`${c.layout}${c.pairs > 1 ? `, ${c.pairs} pairs` : ''}`)}</text>`,
      );
    if (c.ratio !== null) {
      out.push(
        `<text x="${cx.toFixed(1)}" y="${plot.y + plot.h + 27 + dy}" text-anchor="middle" fill="#444" font-size="10">ours/DPDK ${c.ratio.toFixed(2)}</text>`,
      );
      if (c.bestRatio !== null)
        out.push(
          `<text x="${cx.toFixed(1)}" y="${plot.y + plot.h + 39 + dy}" text-anchor="middle" fill="#777" font-size="9">best rounds ${c.bestRatio.toFixed(2)}</text>`,
        );
    }
  });
  out.push(`<line x1="${plot.x}" y1="${plot.y + plot.h}" x2="${plot.x + plot.w}" y2="${plot.y + plot.h}" stroke="#333"/>`);
}

/** One back-end's bar of a group: the median, a whisker from the slowest to the fastest round, its label. */
function renderBar(out: string[], c: CellSummary, b: BackendKind, bx: number, barW: number, plot: Box, ymax: number): void {
  const agg = aggregateOf(c, b);
  const v = agg?.mpps ?? null;
  if (v === null) {
    const label = agg?.note?.startsWith('not run') ? 'n/a' : agg?.note?.startsWith('failed') ? 'fail' : '—';
    out.push(`<text x="${(bx + barW / 2).toFixed(1)}" y="${plot.y + plot.h - 4}" text-anchor="middle" fill="#888">${label}</text>`);
    return;
  }
  const h = (plot.h * v) / ymax;
  out.push(
    `<rect x="${bx.toFixed(1)}" y="${(plot.y + plot.h - h).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLOURS[b]}"><title>${esc(`${NAMES[b]}: ${v.toFixed(3)} Mpps`)}</title></rect>`,
  );
  // Whisker: the slowest and fastest round.
  const lo = agg?.mppsMin ?? v;
  const hi = agg?.mppsMax ?? v;
  const cx = bx + barW / 2 - 1;
  if (hi > lo) {
    const yl = plot.y + plot.h - (plot.h * lo) / ymax;
    const yh = plot.y + plot.h - (plot.h * hi) / ymax;
    const line = (x1: number, y1: number, x2: number, y2: number) =>
      `<line x1="${x1.toFixed(1)}" y1="${y1.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="#111" stroke-width="1"/>`;
    out.push(line(cx, yl, cx, yh), line(cx - 4, yh, cx + 4, yh), line(cx - 4, yl, cx + 4, yl));
  }
  const label = agg?.stalled ? 'stall' : v.toFixed(v < 10 ? 2 : 1);
  const top = plot.y + plot.h - (plot.h * Math.max(v, hi)) / ymax;
  out.push(`<text x="${cx.toFixed(1)}" y="${(top - 3).toFixed(1)}" text-anchor="middle" font-size="9">${label}</text>`);
}
