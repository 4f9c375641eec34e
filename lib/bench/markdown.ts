/**
 * Prints a results file as Markdown tables, for bench/README.md:
 *
 *   node dist/bench/markdown.js [bench/results/latest.json]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { jsMarkdown } from './report/js_table';
import { backendLabel, fixed as f, modeLabel } from './report/summary';
import type { Aggregate, CellSummary, LayoutRatio, Report } from './types';

function mpps(a: Aggregate | null): string {
  if (!a) return '—';
  if (a.mpps === null) return a.note?.startsWith('not run') ? 'n/a' : 'failed';
  if (a.stalled) return `${f(a.mpps)} (stall)`;
  const spread = a.runs > 1 && a.mppsMin !== null && a.mppsMax !== null ? ` (${f(a.mppsMin)}–${f(a.mppsMax)})` : '';
  return `${f(a.mpps)}${spread}`;
}

function kicks(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  return x === 0 ? '0' : x >= 0.001 ? x.toFixed(3) : x.toExponential(1);
}

/** One row per cell; the fairness columns (Jain's index of the pairs' rates) only when a cell has more than one pair. */
function throughputTable(cells: CellSummary[]): string[] {
  const multi = cells.some((c) => (c.pairs ?? 1) > 1);
  const out = [
    `| Q | size | mode | layout | pairs | ours Mpps | DPDK Mpps | ratio | best | ours Gb/s | DPDK Gb/s | CPU s/Mpkt ours | DPDK | RSS MiB ours | DPDK | kicks/frame |${multi ? ' Jain ours | DPDK |' : ''}`,
    `| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |${multi ? ' ---: | ---: |' : ''}`,
  ];
  for (const c of cells) {
    // Results from before layouts and pairs were dimensions: split rings, one pair.
    const layout = c.layout ?? 'split';
    const pairs = c.pairs ?? 1;
    out.push(
      `| ${c.queueSize} | ${c.size} | ${modeLabel(c.mode)} | ${layout} | ${pairs} | ${mpps(c.ours)} | ${mpps(c.dpdk)} | ${f(c.ratio)} | ${f(c.bestRatio)} | ${f(c.ours?.gbps, 1)} | ${f(c.dpdk?.gbps, 1)} | ` +
        `${f(c.ours?.cpuPerMpkt, 3)} | ${f(c.dpdk?.cpuPerMpkt, 3)} | ${f(c.ours?.rssMiB, 0)} | ${f(c.dpdk?.rssMiB, 0)} | ${kicks(c.ours?.txKicksPerPkt)} |` +
        (multi ? ` ${f(c.fairness?.ours?.jain, 3)} | ${f(c.fairness?.dpdk?.jain, 3)} |` : ''),
    );
  }
  return out;
}

/** The faster-layout ratios (ours' best layout against DPDK's), when there is more than one layout to choose from. */
function layoutTable(ratios: LayoutRatio[]): string[] {
  if (!ratios.some((x) => x.ratio !== null)) return [];
  const out = [
    '',
    "ours / DPDK's faster layout: each back-end at its faster ring layout (median Mpps), and the ratio of the two; " +
      'unmeasured = layouts a back-end has no figure for (failed or not run), which the choice could not consider:',
    '',
    '| Q | size | mode | pairs | ours Mpps | ours layout | DPDK Mpps | DPDK layout | ratio | unmeasured |',
    '| ---: | ---: | --- | ---: | ---: | --- | ---: | --- | ---: | --- |',
  ];
  for (const x of ratios) {
    out.push(
      `| ${x.queueSize} | ${x.size} | ${modeLabel(x.mode)} | ${x.pairs} | ${f(x.ours?.mpps)} | ${x.ours?.layout ?? '—'} | ` +
        `${f(x.dpdk?.mpps)} | ${x.dpdk?.layout ?? '—'} | ${f(x.ratio)} | ${x.unmeasured.join(', ') || '—'} |`,
    );
  }
  return out;
}

export function toMarkdown(r: Report): string {
  const out: string[] = [];
  const h = r.host;
  out.push(
    `Measured ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC on: \`nproc\` ${h.nproc}, ${h.cpuModel}, ${h.kernel}, ` +
      `DPDK ${h.dpdk ?? 'absent'}, Node ${h.node}, commit ${h.commit ?? '?'}.`,
    '',
    `Command: \`${r.command}\` (${r.setup.rounds} rounds A/B, ${r.setup.warmupSeconds} s warm-up + ${r.setup.seconds} s per run, ` +
      `${Math.round(r.durationSeconds / 60)} min). Front-end: ${r.setup.frontendDescription}. Back-ends on CPU ${r.setup.cpuBackend}.`,
    '',
    'Mpps: median over rounds (min–max); ratio = ours / DPDK of the medians; CPU = back-end CPU seconds per million frames; ' +
      'RSS = back-end VmRSS; kicks = our TX-queue kicks per guest-TX frame; best = ratio of the fastest rounds.',
    '',
    ...throughputTable(r.cells),
    ...layoutTable(r.layoutRatios ?? []),
    ...jsMarkdown(r.cells),
  );
  if (r.latency.length) {
    out.push(
      '',
      'Latency, one-frame ping-pong through the loopback with our event-driven driver (median over rounds; ours with its default adaptive worker and purely event-driven, `--poll-us 0`):',
      '',
    );
    out.push(
      '| size | ours p50 µs | ours p99 µs | event-driven p50 µs | event-driven p99 µs | DPDK p50 µs | DPDK p99 µs | p50 ours/DPDK | p99 ours/DPDK |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const l of r.latency) {
      out.push(
        `| ${l.size} | ${f(l.ours?.p50Us, 1)} | ${f(l.ours?.p99Us, 1)} | ${f(l.oursEvent?.p50Us, 1)} | ${f(l.oursEvent?.p99Us, 1)} | ${f(l.dpdk?.p50Us, 1)} | ${f(l.dpdk?.p99Us, 1)} | ${f(l.p50Ratio)} | ${f(l.p99Ratio)} |`,
      );
    }
  }
  if (r.idle?.length) {
    out.push(
      '',
      'Idle: a connected front-end that sends nothing; back-end CPU (median over rounds):',
      '',
      '| back-end | CPU, % of one core |',
      '| --- | ---: |',
    );
    for (const i of r.idle) out.push(`| ${backendLabel(i.backend, i.worker)} | ${(100 * i.cpuUtilisation).toFixed(2)} |`);
  }
  if (r.errors.length) out.push('', `${r.errors.length} run(s) failed: ${r.errors.map((e) => e.split('\n')[0]).join('; ')}`);
  return out.join('\n') + '\n';
}

if (require.main === module) {
  const file = process.argv[2] ?? path.resolve('bench', 'results', 'latest.json');
  process.stdout.write(toMarkdown(JSON.parse(fs.readFileSync(file, 'utf8')) as Report));
}
