/**
 * The results on disk: each run as <stamp>.json and its chart as <stamp>.svg in the results folder,
 * and latest.json / latest.svg as relative symlinks to the newest pair (one copy of each run's data).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Report } from '../types';
import { renderSvg } from './svg';

function chart(report: Report): string {
  const { host, setup } = report;
  return renderSvg(
    report.cells,
    setup.backends,
    'vhost-user virtio-net: ours vs DPDK vhost PMD (Mpps, higher is better)',
    `front-end: ${setup.frontend === 'dpdk' ? `DPDK testpmd virtio-user (mrg_rxbuf=${+setup.mrgRxbuf}, in_order=${+setup.inOrder})` : 'our VirtioNetDriver'}; ${host.nproc} × ${host.cpuModel}; ${host.kernel}; DPDK ${host.dpdk ?? 'absent'}; ${report.startedAt.slice(0, 16)}Z`,
  );
}

/** Points `outDir/name` at `target` (a file beside it), replacing whatever was there in one rename. */
function pointLatest(outDir: string, name: string, target: string): void {
  const temporary = path.join(outDir, `.${name}.${process.pid}`);
  fs.rmSync(temporary, { force: true });
  fs.symlinkSync(target, temporary);
  fs.renameSync(temporary, path.join(outDir, name));
}

/**
 * Writes any mode's report as <stamp>.json in `outDir` (the stamp from its startedAt) and points
 * latest.json at it; returns the file.
 */
export function saveReportJson(outDir: string, report: { startedAt: string }): string {
  fs.mkdirSync(outDir, { recursive: true });
  const json = path.join(outDir, `${report.startedAt.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(json, JSON.stringify(report, null, 2) + '\n');
  pointLatest(outDir, 'latest.json', path.basename(json));
  return json;
}

/** Writes <stamp>.json and <stamp>.svg to `outDir`, points latest.json and latest.svg at them, and says where they are. */
export function saveResults(outDir: string, report: Report): void {
  const json = saveReportJson(outDir, report);
  const svg = json.replace(/\.json$/, '.svg');
  fs.writeFileSync(svg, chart(report));
  pointLatest(outDir, 'latest.svg', path.basename(svg));
  const shown = (f: string) => path.relative(process.cwd(), f);
  process.stdout.write(
    `\nresults: ${shown(json)}, ${shown(svg)} (${shown(path.join(outDir, 'latest.json'))} and latest.svg point to them)\n`,
  );
}
