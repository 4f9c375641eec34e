/**
 * A user-mode network results file as Markdown tables (bench/README.md, "User-mode network"):
 *
 *   node dist/bench/usernet/markdown.js [bench/results/user-net/latest.json]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIRECTION_LABEL, configLabel } from './summary';
import { DIRECTIONS, type UserNetAggregate, type UserNetReport } from './types';

const fixed = (x: number | null | undefined, digits = 1): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);

function rate(a: UserNetAggregate | undefined): string {
  if (!a || a.mbps === null) return 'failed';
  return a.runs > 1 ? `${fixed(a.mbps)} (${fixed(a.min)}–${fixed(a.max)})` : fixed(a.mbps);
}

/** MB/s per back-end and MTU (median, with the range over rounds), both directions, and the MTU the guest used. */
export function throughputTable(report: Pick<UserNetReport, 'aggregates'>): string[] {
  const out = ['| back-end @ MTU | host -> guest MB/s | guest -> host MB/s | guest MTU | rounds |', '| --- | ---: | ---: | ---: | ---: |'];
  const seen = new Set<string>();
  for (const a of report.aggregates) {
    const label = configLabel(a.config);
    if (seen.has(label)) continue;
    seen.add(label);
    const h2g = report.aggregates.find((x) => x.direction === 'h2g' && configLabel(x.config) === label);
    const g2h = report.aggregates.find((x) => x.direction === 'g2h' && configLabel(x.config) === label);
    const mtus = [...new Set([...(h2g?.guestMtus ?? []), ...(g2h?.guestMtus ?? [])])].join(', ') || '—';
    out.push(`| ${label} | ${rate(h2g)} | ${rate(g2h)} | ${mtus} | ${Math.min(h2g?.runs ?? 0, g2h?.runs ?? 0)} |`);
  }
  return out;
}

/** ours / other, ratio of the medians, one row per comparison, one column per direction. */
export function ratioTable(report: Pick<UserNetReport, 'ratios'>): string[] {
  const out = [`| ratio | ${DIRECTIONS.map((d) => DIRECTION_LABEL[d]).join(' | ')} |`, `|---|${DIRECTIONS.map(() => ' ---: |').join('')}`];
  const rows = new Map<string, Record<string, number | null>>();
  for (const r of report.ratios) {
    const key = `${configLabel(r.ours)} / ${configLabel(r.other)}`;
    rows.set(key, { ...rows.get(key), [r.direction]: r.ratio });
  }
  for (const [key, byDir] of rows) out.push(`| ${key} | ${DIRECTIONS.map((d) => fixed(byDir[d], 2)).join(' | ')} |`);
  return out;
}

export function userNetMarkdown(report: UserNetReport): string {
  const { setup, host } = report;
  return [
    `${setup.mib} MiB per transfer, ${setup.rounds} round(s), ${host.nproc} × ${host.cpuModel}, ${host.kernel}, ` +
      `QEMU ${host.qemu ?? '?'}, passt ${host.passt ?? '—'}, commit ${host.commit ?? '?'}, ${report.startedAt.slice(0, 16)}Z.`,
    '',
    ...throughputTable(report),
    '',
    ...ratioTable(report),
    ...(report.errors.length ? ['', ...report.errors.map((e) => `- error: ${e}`)] : []),
    '',
  ].join('\n');
}

if (require.main === module) {
  const file = process.argv[2] ?? path.join('bench', 'results', 'user-net', 'latest.json');
  try {
    process.stdout.write(userNetMarkdown(JSON.parse(fs.readFileSync(file, 'utf8')) as UserNetReport));
  } catch (err) {
    process.stderr.write(`bench: cannot read ${file}: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
