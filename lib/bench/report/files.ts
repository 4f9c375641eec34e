/** The results on disk: the run's JSON and its SVG chart in the results folder. */
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

/** Writes <stamp>.json, latest.json and latest.svg to `outDir` and says where they are. */
export function saveResults(outDir: string, report: Report): void {
  fs.mkdirSync(outDir, { recursive: true });
  const stamp = report.startedAt.replace(/[:.]/g, '-');
  const json = JSON.stringify(report, null, 2) + '\n';
  const file = path.join(outDir, `${stamp}.json`);
  fs.writeFileSync(file, json);
  fs.writeFileSync(path.join(outDir, 'latest.json'), json);
  fs.writeFileSync(path.join(outDir, 'latest.svg'), chart(report));
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), file)}, ${path.relative(process.cwd(), path.join(outDir, 'latest.json'))}, ${path.relative(process.cwd(), path.join(outDir, 'latest.svg'))}\n`);
}
