/**
 * `vhost-user bench --user-net`: guest <-> host TCP through our user port, QEMU's -netdev user and passt
 * on the same guest, rounds alternating the back-ends, medians and ratios. See bench/README.md,
 * "User-mode network"; the options are in options.ts.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildInitramfs, type BootFiles } from '../../guest/initramfs';
import { killAll } from '../../guest/processes';
import { guestGap } from '../../guest/tools';
import { findProgram } from '../find_program';
import { Workspace, hostInfo } from '../host';
import { waitQuiet } from '../measure/snapshot';
import { saveReportJson } from '../report/files';
import { userNetMarkdown } from './markdown';
import { measureRun } from './measure';
import { USER_NET_HELP, configsOf, parseUserNetOptions, roundOrder, type UserNetOptions } from './options';
import { debianVersion, peerGap } from './peers';
import { DIRECTION_LABEL, aggregate, configLabel, ratios } from './summary';
import { freePort, randomPayload } from './transfer';
import type { Transfer, UserNetReport, UserNetRun } from './types';

export const PINNING =
  'none: QEMU (vCPU thread and main loop, where -netdev user runs libslirp), our back-end (its worker runs libslirp) and ' +
  'passt each get whichever of the CPUs is free, since any pinning favours one of these thread layouts';

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

const rate = (t: Transfer | null): string =>
  t
    ? `${t.mbps.toFixed(1)} MB/s${t.guestSeconds ? ` (guest ${(t.bytes / t.guestSeconds / 1e6).toFixed(1)})` : ''}${t.verified ? '' : ' UNVERIFIED'}`
    : '—';

function runLine(run: UserNetRun, total: number, index: number): string {
  const head = `[${index}/${total}] round ${run.round + 1} ${configLabel(run.config).padEnd(13)}`;
  if (run.error && !run.h2g) return `${head} failed: ${run.error}\n`;
  const during = run.otherLoadDuring === null ? '?' : run.otherLoadDuring.toFixed(2);
  return `${head} h2g ${rate(run.h2g)}, g2h ${rate(run.g2h)}, guest mtu ${run.guestMtu ?? '?'}, other load ${run.otherLoadBefore.toFixed(2)} before, ${during} during\n`;
}

function qemuVersion(): string | null {
  const qemu = findProgram('qemu-system-x86_64');
  const out = qemu ? spawnSync(qemu, ['--version'], { encoding: 'utf8' }).stdout : '';
  return /version (\S+)/.exec(out ?? '')?.[1] ?? null;
}

function checkInstalled(opts: UserNetOptions): void {
  const gap = guestGap();
  if (gap) fail(`${gap.what}: the benchmark boots a guest (Debian package ${gap.pkg})`);
  for (const peer of opts.peers) {
    const why = peerGap(peer);
    if (why) fail(`${why} (or leave ${peer} out with --peers)`);
  }
}

/** Copies of the kernel and initramfs in the workspace: the shared cache may be rebuilt by another checkout meanwhile. */
function privateBootFiles(boot: BootFiles, dir: string): BootFiles {
  const kernel = path.join(dir, 'kernel');
  const initrd = path.join(dir, 'initrd.cpio.gz');
  fs.copyFileSync(boot.kernel, kernel);
  fs.copyFileSync(boot.initrd, initrd);
  return { ...boot, kernel, initrd };
}

async function main(argv: string[]): Promise<number> {
  let opts: UserNetOptions | null;
  try {
    opts = parseUserNetOptions(argv);
  } catch (err) {
    fail((err as Error).message);
  }
  if (!opts) {
    process.stdout.write(USER_NET_HELP);
    return 0;
  }
  checkInstalled(opts);
  const started = new Date();
  const ws = new Workspace();
  process.once('SIGINT', () => {
    process.stderr.write('bench: interrupted, cleaning up\n');
    void killAll().then(() => {
      ws.cleanup();
      process.exit(130);
    });
  });
  const boot = privateBootFiles(await buildInitramfs(), ws.dir);
  const payload = randomPayload(opts.mib << 20);
  const configs = configsOf(opts);
  const total = configs.length * opts.rounds;
  process.stdout.write(`user-mode network: ${opts.mib} MiB each way, ${opts.rounds} round(s) of ${configs.map(configLabel).join(', ')}\n`);

  const runs: UserNetRun[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    for (const config of roundOrder(configs, round)) {
      const otherLoadBefore = await waitQuiet(opts.quietWait);
      const ctx = { cli: ws.code.cli, env: ws.code.env, socketPath: ws.nextSocket() };
      const hostPorts = { h2g: await freePort(), g2h: await freePort() };
      const run = await measureRun({ round, config, payload, hostPorts, ctx, boot, otherLoadBefore });
      runs.push(run);
      process.stdout.write(runLine(run, total, runs.length));
    }
  }

  const aggregates = aggregate(configs, runs);
  const h = hostInfo();
  const report: UserNetReport = {
    kind: 'user-net',
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    argv,
    host: {
      nproc: h.nproc,
      cpuModel: h.cpuModel,
      kernel: h.kernel,
      node: h.node,
      qemu: qemuVersion(),
      passt: debianVersion('passt'),
      commit: h.commit,
    },
    setup: {
      mib: opts.mib,
      rounds: opts.rounds,
      peers: opts.peers,
      mtus: opts.mtus,
      guest: 'the host kernel + busybox initramfs (lib/guest), TCG -cpu max, -smp 1, 384 MiB memfd, virtio-net-pci vectors=0',
      pinning: PINNING,
    },
    runs,
    aggregates,
    ratios: ratios(aggregates),
    errors: runs.filter((r) => r.error).map((r) => `round ${r.round + 1} ${configLabel(r.config)}: ${r.error}`),
  };
  const file = saveReportJson(opts.outDir, report);
  process.stdout.write(`\n${userNetMarkdown(report)}\nresults: ${path.relative(process.cwd(), file)} (latest.json points to it)\n`);
  process.stdout.write(`directions: h2g = ${DIRECTION_LABEL.h2g}, g2h = ${DIRECTION_LABEL.g2h}\n`);
  await killAll();
  ws.cleanup();
  return report.errors.length ? 1 : 0;
}

/** `vhost-user bench --user-net ARGS`: runs the benchmark and exits with its status. */
export function userNetMain(argv: string[]): void {
  main(argv).then(
    (status) => process.exit(status),
    (err: unknown) => {
      process.stderr.write(`bench: ${(err as Error)?.message ?? String(err)}\n`);
      void killAll().then(() => process.exit(1));
    },
  );
}
