/**
 * Medians and ratios of the switch benchmark's runs, and its Markdown tables (terminal and README):
 *
 *   node dist/bench/switch/summary.js [bench/results/switch/latest.json]
 */
import * as fs from 'node:fs';
import type { FairCell, FairRun, PairCell, PairRun, SwitchBackend, SwitchReport } from './types';

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const ratio = (a: number | null, b: number | null): number | null => (a !== null && b !== null && b > 0 ? a / b : null);

export function pairCells(runs: PairRun[], sizes: number[]): PairCell[] {
  return sizes.map((size) => {
    const ok = (b: SwitchBackend) => runs.filter((r) => r.size === size && r.backend === b && !r.error);
    const [sw, tp] = [ok('switch'), ok('testpmd')];
    const med = (rs: PairRun[], f: (r: PairRun) => number) => median(rs.map(f));
    const rounds = [...new Set(runs.filter((r) => r.size === size).map((r) => r.round))].sort((a, b) => a - b);
    const best = (rs: PairRun[]) => (rs.length ? Math.max(...rs.map((r) => r.mpps)) : null);
    return {
      size,
      switchMpps: med(sw, (r) => r.mpps),
      testpmdMpps: med(tp, (r) => r.mpps),
      switchGbps: med(sw, (r) => r.gbps),
      testpmdGbps: med(tp, (r) => r.gbps),
      switchForward: med(sw, (r) => r.forward.mpps),
      switchReverse: med(sw, (r) => r.reverse.mpps),
      testpmdForward: med(tp, (r) => r.forward.mpps),
      testpmdReverse: med(tp, (r) => r.reverse.mpps),
      ratio: ratio(
        med(sw, (r) => r.mpps),
        med(tp, (r) => r.mpps),
      ),
      bestRatio: ratio(best(sw), best(tp)),
      roundRatios: rounds.map((round) =>
        ratio(sw.find((r) => r.round === round)?.mpps ?? null, tp.find((r) => r.round === round)?.mpps ?? null),
      ),
      switchRounds: sw.map((r) => r.mpps),
      testpmdRounds: tp.map((r) => r.mpps),
    };
  });
}

export function fairCells(runs: FairRun[], sizes: number[]): FairCell[] {
  const out: FairCell[] = [];
  for (const size of sizes) {
    for (const backend of ['switch', 'testpmd'] as const) {
      const of = (flooder: FairRun['flooder']) =>
        runs.filter((r) => r.size === size && r.backend === backend && r.flooder === flooder && !r.error);
      if (of('idle').length + of('flooding').length === 0) continue;
      const idle = median(of('idle').map((r) => r.pairMpps));
      const flooding = median(of('flooding').map((r) => r.pairMpps));
      out.push({
        backend,
        size,
        idleMpps: idle,
        floodingMpps: flooding,
        kept: ratio(flooding, idle),
        flooderTxMpps: median(of('flooding').map((r) => r.flooderTxMpps)),
      });
    }
  }
  return out;
}

const n = (x: number | null | undefined, digits = 2) => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits));

/** The report as Markdown: the pair table, the fairness table and the shares of the flooding runs. */
export function switchMarkdown(report: SwitchReport): string {
  const lines = [
    '| size | switch Mpps | testpmd Mpps | **switch / testpmd** | best rounds | per round | switch Gb/s | testpmd Gb/s | switch S0→S1 / S1→S0 Mpps | testpmd S0→S1 / S1→S0 Mpps |',
    '| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const c of report.pairCells) {
    const rounds = (xs: number[]) => xs.map((x) => n(x)).join(', ');
    lines.push(
      `| ${c.size} | ${n(c.switchMpps)} (${rounds(c.switchRounds)}) | ${n(c.testpmdMpps)} (${rounds(c.testpmdRounds)}) | **${n(c.ratio)}** | ${n(c.bestRatio)} | ` +
        `${c.roundRatios.map((x) => n(x)).join(' ')} | ${n(c.switchGbps, 1)} | ${n(c.testpmdGbps, 1)} | ` +
        `${n(c.switchForward)} / ${n(c.switchReverse)} | ${n(c.testpmdForward)} / ${n(c.testpmdReverse)} |`,
    );
  }
  if (report.fairCells.length > 0) {
    lines.push(
      '',
      '| back-end | size | pair Mpps, flooder idle | pair Mpps, flooder flooding | kept | flooder sent Mpps |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const c of report.fairCells)
      lines.push(`| ${c.backend} | ${c.size} | ${n(c.idleMpps)} | ${n(c.floodingMpps)} | ${n(c.kept)} | ${n(c.flooderTxMpps)} |`);
    const flooded = report.fairRuns.filter((r) => r.flooder === 'flooding' && r.ports && !r.error);
    if (flooded.length > 0) {
      lines.push(
        '',
        'Our switch under the flood, per port over the measured interval (round, size: port from-guest / to-guest / drops, share of frames taken):',
        '',
      );
      for (const r of flooded)
        lines.push(
          `- round ${r.round + 1}, ${r.size} B: ` +
            r.ports!.map((p) => `${p.port} ${p.fromGuest} / ${p.toGuest} / ${p.drops}, ${(100 * p.share).toFixed(1)} %`).join('; '),
        );
    }
  }
  return lines.join('\n') + '\n';
}

if (require.main === module) {
  const file = process.argv[2] ?? 'bench/results/switch/latest.json';
  try {
    process.stdout.write(switchMarkdown(JSON.parse(fs.readFileSync(file, 'utf8')) as SwitchReport));
  } catch (err) {
    process.stderr.write(`bench: cannot read ${file}: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
