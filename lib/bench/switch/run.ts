/**
 * `vhost-user bench --switch`: VM to VM through our switch (A) against DPDK testpmd's io engine between
 * vhost PMD ports (B), the same testpmd virtio-user front-end for both, rounds alternating A B / B A;
 * then the fairness runs. See bench/README.md, "Switch"; the options are in options.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Workspace, checkPrerequisites, hostInfo, pinHarness } from '../host';
import { waitQuiet } from '../measure/snapshot';
import { dpdkMissing, dpdkPluginDirs, killAllTestpmd } from '../testpmd';
import { saveReportJson } from '../report/files';
import { killSwitchBackends } from './backends';
import { measureFair, measurePair, type RunContext } from './measure';
import { SWITCH_HELP, backendOrder, parseSwitchOptions, type SwitchOptions } from './options';
import { fairCells, pairCells, switchMarkdown } from './summary';
import { SWITCH_BACKENDS, type FairRun, type PairRun, type SwitchReport } from './types';

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

/** DPDK's vhost PMD, the reference back-end's ports. */
function vhostPmdPresent(): boolean {
  return dpdkPluginDirs().some((dir) => {
    try {
      return fs.readdirSync(dir).some((f) => /^librte_net_vhost\.so(\.|$)/.test(f));
    } catch {
      return false;
    }
  });
}

const load = (x: number | null) => (x === null ? '?' : x.toFixed(2));

function pairLine(r: PairRun): string {
  const head = `round ${r.round + 1} ${String(r.size).padStart(4)} B ${r.backend.padEnd(7)}`;
  if (r.error) return `${head} failed: ${r.error.split('\n')[0]}\n`;
  return (
    `${head} ${r.mpps.toFixed(2)} Mpps (${r.forward.mpps.toFixed(2)} + ${r.reverse.mpps.toFixed(2)}), ${r.gbps.toFixed(1)} Gb/s, ` +
    `back-end CPU ${load(r.backendCpu)}, other load ${r.otherLoadBefore.toFixed(2)} before, ${load(r.otherLoadDuring)} during\n`
  );
}

function fairLine(r: FairRun): string {
  const head = `round ${r.round + 1} ${String(r.size).padStart(4)} B ${r.backend.padEnd(7)} flooder ${r.flooder.padEnd(8)}`;
  if (r.error) return `${head} failed: ${r.error.split('\n')[0]}\n`;
  return `${head} pair ${r.pairMpps.toFixed(2)} Mpps, flooder sent ${r.flooderTxMpps.toFixed(2)} Mpps, other load ${load(r.otherLoadDuring)} during\n`;
}

/** Above this much CPU used by other processes during a run, the run is repeated (twice at most). */
const MAX_OTHER_LOAD = 0.3;

/** Runs `measure` until other processes stay under MAX_OTHER_LOAD while it runs (1 + retries times at most); keeps the least disturbed. */
async function leastDisturbed<T extends { otherLoadDuring: number | null; error?: string; attempts?: number }>(
  opts: Pick<SwitchOptions, 'quietWait' | 'retries'>,
  measure: (otherLoadBefore: number) => Promise<T>,
): Promise<T> {
  let best: T | null = null;
  for (let attempt = 1; attempt <= 1 + opts.retries; attempt++) {
    const run = await measure(await waitQuiet(opts.quietWait));
    run.attempts = attempt;
    if (!best || (run.otherLoadDuring ?? Infinity) < (best.otherLoadDuring ?? Infinity)) best = run;
    if (run.error || (run.otherLoadDuring ?? 0) <= MAX_OTHER_LOAD) break;
  }
  return best!;
}

/** Every run: the pairs size by size, then the fairness runs; A B / B A alternating by round. */
async function measureAll(opts: SwitchOptions, ctxOf: (size: number) => RunContext): Promise<{ pairRuns: PairRun[]; fairRuns: FairRun[] }> {
  const pairRuns: PairRun[] = [];
  for (const size of opts.sizes) {
    for (let round = 0; round < opts.rounds; round++) {
      for (const backend of backendOrder(SWITCH_BACKENDS, round)) {
        const run = await leastDisturbed(opts, (load) => measurePair(ctxOf(size), backend, round, load));
        pairRuns.push(run);
        process.stdout.write(pairLine(run));
      }
    }
  }
  const fairRuns: FairRun[] = [];
  if (opts.fairness) {
    for (const size of opts.sizes) {
      for (let round = 0; round < opts.rounds; round++) {
        for (const backend of backendOrder(SWITCH_BACKENDS, round)) {
          for (const flooding of round % 2 === 0 ? [false, true] : [true, false]) {
            const run = await leastDisturbed(opts, (load) => measureFair(ctxOf(size), backend, flooding, round, load));
            fairRuns.push(run);
            process.stdout.write(fairLine(run));
          }
        }
      }
    }
  }
  return { pairRuns, fairRuns };
}

async function main(opts: SwitchOptions, argv: string[]): Promise<number> {
  checkPrerequisites();
  const missing = dpdkMissing();
  if (!vhostPmdPresent()) missing.push('the vhost PMD librte_net_vhost (Debian package librte-net-vhost23)');
  if (missing.length > 0) fail(`the switch benchmark needs DPDK's testpmd: missing ${missing.join(', ')} `);
  pinHarness(opts.cpuFrontend);
  const started = new Date();
  const host = hostInfo();
  const ws = new Workspace();
  process.once('SIGINT', () => {
    process.stderr.write('bench: interrupted, cleaning up\n');
    killSwitchBackends();
    ws.cleanup();
    process.exit(130);
  });
  const ctxOf = (size: number): RunContext => ({
    code: ws.code,
    dir: ws.dir,
    cpuBackend: opts.cpuBackend,
    setup: { queueSize: opts.queueSize, packed: opts.packed, cpu: opts.cpuFrontend, size },
    warmup: opts.warmup,
    seconds: opts.seconds,
  });
  process.stdout.write(
    `switch: sizes ${opts.sizes.join(', ')} B, ${opts.rounds} round(s), ${opts.warmup} s warm-up + ${opts.seconds} s per run\n`,
  );
  const { pairRuns, fairRuns } = await measureAll(opts, ctxOf);
  const errors = [...pairRuns, ...fairRuns]
    .filter((r) => r.error)
    .map((r) => `${r.kind} round ${r.round + 1} ${r.size} B ${r.backend}: ${r.error!.split('\n')[0]}`);
  const report: SwitchReport = {
    kind: 'switch',
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    argv,
    host: { ...host },
    setup: {
      ...opts,
      outDir: undefined,
      frontend:
        'DPDK testpmd, two virtio-user ports (mrg_rxbuf=1, in_order=1), io, tx_first queue/64 bursts of 32 per port, learned unicast',
      pinning: `back-end alone on CPU ${opts.cpuBackend} (taskset; testpmd --lcores 0@C,1@C); front-ends and harness on CPU ${opts.cpuFrontend}`,
      fairness: opts.fairness
        ? 'second front-end on S2,S3 (our switch: VLAN 2), rxonly (idle) or flowgen to broadcast (flooding)'
        : 'not run',
    },
    pairRuns,
    fairRuns,
    pairCells: pairCells(pairRuns, opts.sizes),
    fairCells: fairCells(fairRuns, opts.sizes),
    errors,
  };
  const file = saveReportJson(opts.outDir, report);
  process.stdout.write(`\n${switchMarkdown(report)}\nresults: ${path.relative(process.cwd(), file)} (latest.json points to it)\n`);
  for (const e of errors) process.stderr.write(`bench: ${e}\n`);
  ws.cleanup();
  return errors.length ? 1 : 0;
}

/** `vhost-user bench --switch ARGS`: runs the benchmark and exits with its status. */
export function switchBenchMain(argv: string[]): void {
  let opts: SwitchOptions | null;
  try {
    opts = parseSwitchOptions(argv);
  } catch (err) {
    fail((err as Error).message);
  }
  if (!opts) {
    process.stdout.write(SWITCH_HELP);
    process.exit(0);
  }
  main(opts, argv).then(
    (status) => process.exit(status),
    (err: unknown) => {
      process.stderr.write(`bench: ${(err as Error)?.message ?? String(err)}\n`);
      killSwitchBackends();
      killAllTestpmd();
      process.exit(1);
    },
  );
}
