/**
 * The js back-end's table (--backends ...,js): per cell where it ran, the JS echo's Mpps next to the
 * native loopback's (ours) and DPDK's, and the ratios js / ours and js / DPDK. The bar is
 * js / ours >= 0.25 at 64 B on the same front-end. Printed on the terminal and as Markdown.
 */
import type { CellSummary } from '../types';
import { fixed as f, modeLabel } from './summary';

/** The cells where the js back-end was planned and not skipped (io and flowgen). */
function jsCells(cells: CellSummary[]): CellSummary[] {
  return cells.filter((c) => c.js?.aggregate && !c.js.aggregate.note?.startsWith('not run'));
}

/** One row's values, in the order of COLUMNS. */
function row(c: CellSummary): string[] {
  const js = c.js!;
  const a = js.aggregate;
  const mpps = a?.mpps === null ? 'FAIL' : `${f(a?.mpps)}${a?.stalled ? ' stall' : ''}`;
  return [
    String(c.queueSize),
    String(c.size),
    modeLabel(c.mode),
    c.layout,
    String(c.pairs),
    mpps,
    f(a?.mppsMax),
    f(c.ours?.mpps),
    f(js.perOurs),
    f(js.bestPerOurs),
    js.roundRatios.map((r) => r.toFixed(2)).join(' ') || '—',
    f(c.dpdk?.mpps),
    f(js.perDpdk),
    f(a?.cpuPerMpkt, 3),
    f(a?.rssMiB, 1),
  ];
}

const COLUMNS: [string, number][] = [
  ['Q', 5],
  ['size', 5],
  ['mode', 25],
  ['layout', 6],
  ['pairs', 5],
  ['js Mpps', 9],
  ['best', 6],
  ['ours Mpps', 9],
  ['js/ours', 7],
  ['best r.', 7],
  ['per round', 14],
  ['DPDK Mpps', 9],
  ['js/DPDK', 7],
  ['CPU s/Mpkt js', 13],
  ['RSS MiB js', 10],
];

const LEFT = new Set(['mode', 'layout', 'per round']);

/** The terminal table, or '' when the js back-end ran in no cell. */
export function formatJsTable(cells: CellSummary[]): string {
  const rows = jsCells(cells);
  if (rows.length === 0) return '';
  const pad = (s: string, i: number) => (LEFT.has(COLUMNS[i][0]) ? s.padEnd(COLUMNS[i][1]) : s.padStart(COLUMNS[i][1]));
  const head = COLUMNS.map(([name], i) => pad(name, i)).join(' ');
  return [head, '-'.repeat(head.length), ...rows.map((c) => row(c).map(pad).join(' '))].join('\n');
}

/** The same as Markdown lines (with a heading line), or none when the js back-end ran in no cell. */
export function jsMarkdown(cells: CellSummary[]): string[] {
  const rows = jsCells(cells);
  if (rows.length === 0) return [];
  return [
    '',
    'JS port: the js back-end (MAC-swap echo in JavaScript on the js port) against the native loopback (ours) and DPDK; ' +
      'Mpps median over rounds; js/ours and js/DPDK of the medians, best r. of the fastest rounds, per round = js/ours within each round:',
    '',
    `| ${COLUMNS.map(([name]) => name).join(' | ')} |`,
    `| ${COLUMNS.map(([name]) => (LEFT.has(name) ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((c) => `| ${row(c).join(' | ')} |`),
  ];
}
