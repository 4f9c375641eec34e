/**
 * Benchmark: our vhost-user virtio-net back-end (A) against DPDK's vhost PMD (B), with the same
 * front-end, on the same CPUs, alternating A B A B within one run. See bench/README.md.
 *
 * `vhost-user bench` (lib/cli.ts) and `node dist/bench/run.js` start here; the options are in cli.ts.
 */
import { killAllBackends } from './backends';
import { parseOptions } from './cli';
import { executePlan } from './execute';
import { Workspace, checkPrerequisites, hostInfo, pinHarness } from './host';
import { buildPlan, describeFrontend, plannedRuns } from './plan';
import { buildReport } from './report/build';
import { printBanner, printErrors, printSummary } from './report/console';
import { saveResults } from './report/files';
import { Progress } from './report/progress';
import { killAllTestpmd } from './testpmd';

async function main(argv: string[]): Promise<number> {
  const opts = parseOptions(argv);
  const started = new Date();
  checkPrerequisites();
  pinHarness(opts.cpuFrontend);

  const host = hostInfo();
  const ws = new Workspace();
  let progress: Progress | null = null;
  process.once('SIGINT', () => {
    progress?.stop();
    process.stderr.write('bench: interrupted, cleaning up\n');
    ws.cleanup();
    process.exit(130);
  });
  if (opts.memory === 'hugepages') ws.useHugepages();

  const plan = buildPlan(opts);
  const total = plannedRuns(plan);
  progress = new Progress(total);
  printBanner(opts, host, describeFrontend(opts), total);
  const { runs, errors } = await executePlan(opts, ws, plan, progress);
  progress.stop();

  const report = buildReport(opts, { argv, started, host, plan, runs, errors });
  printSummary(report);
  saveResults(opts.outDir, report);
  printErrors(errors);
  ws.cleanup();
  return errors.length ? 1 : 0;
}

/**
 * `vhost-user bench ARGS`: runs the benchmark (--user-net: the user-mode network one; --switch: the switch's;
 * --vhost-net: the kernel's vhost-net against ours) and exits with its status.
 */
export function benchMain(argv: string[]): void {
  if (argv.includes('--user-net')) {
    // Its own options and harness (a QEMU guest, not a DPDK front-end): lib/bench/usernet/.
    (require('./usernet/run') as typeof import('./usernet/run')).userNetMain(argv);
    return;
  }
  if (argv.includes('--vhost-net')) {
    // The kernel's vhost-net against our back-end, one driver, inside a QEMU guest: lib/bench/vhostnet/.
    (require('./vhostnet/run') as typeof import('./vhostnet/run')).vhostNetBenchMain(argv);
    return;
  }
  if (argv.includes('--switch')) {
    // VM to VM through our switch against testpmd's io engine between vhost ports: lib/bench/switch/.
    (require('./switch/run') as typeof import('./switch/run')).switchBenchMain(argv);
    return;
  }
  main(argv).then(
    (status) => process.exit(status),
    (err: unknown) => {
      process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
      killAllTestpmd();
      killAllBackends();
      process.exit(1);
    },
  );
}

if (require.main === module) benchMain(process.argv.slice(2));
