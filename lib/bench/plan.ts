/** The plan of a benchmark: every run in the order it happens, and what the set-up is, in words. */
import type { BackendKind } from './backends';
import type { Options } from './cli';
import { dpdkMissing } from './testpmd';
import type { RingLayout } from './layout';
import type { IdleRun, LatencyRun, Mode, OursWorker, RunResult } from './types';

/** Latency and idle runs measure our back-end in both worker modes. */
export const OURS_WORKERS: readonly OursWorker[] = ['adaptive', 'event-driven'];

export interface Plan {
  throughput: RunResult[];
  latency: LatencyRun[];
  idle: IdleRun[];
}

/** The name of a throughput cell (queue size × frame size × mode × layout × pairs). */
export function cellName(c: { queueSize: number; size: number; mode: Mode; layout: RingLayout; pairs: number }): string {
  return `q${c.queueSize}-${c.size}B-${c.mode}-${c.layout}-${c.pairs}p`;
}

/** Why our own front-end cannot make a cell's runs (it drives one pair of split rings), or undefined. */
function oursFrontendCannot(opts: Options, layout: RingLayout, pairs: number): string | undefined {
  if (opts.frontend !== 'ours') return undefined;
  if (layout !== 'split') return 'the front-end (our VirtioNetDriver) drives split rings only';
  if (pairs > 1) return 'the front-end (our VirtioNetDriver, as the benchmark runs it) drives one queue pair';
  return undefined;
}

/** Why a back-end has no part in a mode, or undefined: the js back-end is an echo (what io and flowgen need). */
export function backendCannot(backend: BackendKind, mode: Mode): string | undefined {
  if (backend === 'js' && mode !== 'io' && mode !== 'flowgen') return 'the js back-end is a MAC-swap echo: io and flowgen only';
  return undefined;
}

/** The back-ends of the latency and idle runs: the js back-end is measured for throughput only. */
function latencyBackends(opts: Options): BackendKind[] {
  return opts.backends.filter((b) => b !== 'js');
}

/**
 * The throughput runs: each cell's runs A B A B (rounds) before the next cell. The layouts and pair
 * counts of one (mode, size) follow each other, so that the runs the faster-layout ratio compares are
 * close in time.
 */
function throughputPlan(opts: Options): RunResult[] {
  const throughput: RunResult[] = [];
  for (const queueSize of opts.queueSizes) {
    for (const size of opts.sizes) {
      for (const mode of opts.modes) {
        for (const pairs of opts.pairs) {
          for (const layout of opts.layouts) {
            const cell = cellName({ queueSize, size, mode, layout, pairs });
            for (let round = 1; round <= opts.rounds; round++) {
              for (const backend of opts.backends) {
                const skipped = oursFrontendCannot(opts, layout, pairs) ?? backendCannot(backend, mode);
                throughput.push({ cell, mode, size, queueSize, layout, pairs, backend, round, ...(skipped ? { skipped } : {}) });
              }
            }
          }
        }
      }
    }
  }
  return throughput;
}

/** Cells in order (see throughputPlan); then the latency and the idle runs (split rings, one pair). */
export function buildPlan(opts: Options): Plan {
  const throughput = throughputPlan(opts);
  const latency: LatencyRun[] = [];
  if (opts.latency) {
    for (const size of [...new Set(opts.sizes.map((s) => Math.min(1514, s)))]) {
      for (let round = 1; round <= opts.rounds; round++) {
        for (const backend of latencyBackends(opts)) {
          if (backend === 'ours') for (const worker of OURS_WORKERS) latency.push({ size, backend, worker, round });
          else latency.push({ size, backend, round });
        }
      }
    }
  }
  const idle: IdleRun[] = [];
  if (opts.idle) {
    for (let round = 1; round <= opts.rounds; round++) {
      for (const backend of latencyBackends(opts)) {
        if (backend === 'ours') for (const worker of OURS_WORKERS) idle.push({ backend, worker, round });
        else idle.push({ backend, round });
      }
    }
  }
  return { throughput, latency, idle };
}

/** How many runs the plan starts (the progress line counts them). */
export function plannedRuns(plan: Plan): number {
  return plan.throughput.filter((p) => !p.skipped).length + plan.latency.length + plan.idle.length;
}

export function describeFrontend(opts: Options): string {
  return opts.frontend === 'dpdk'
    ? `DPDK testpmd, virtio-user PMD (net_virtio_user0,queues=${opts.pairs.join('|')},packed_vq=${opts.layouts.map((l) => +(l === 'packed')).join('|')},mrg_rxbuf=${+opts.mrgRxbuf},in_order=${+opts.inOrder}), both lcores on CPU ${opts.cpuFrontend}${opts.pairs.some((p) => p > 1) ? ' (one forwarding lcore for all pairs)' : ''}, burst 32, ${opts.memory}`
    : `our VirtioNetDriver (lib/frontend/net_driver.ts), event-driven, in a node process on CPU ${opts.cpuFrontend}`;
}

/** What the reader of the results must know about the set-up before any figure. */
export function setupNotes(opts: Options): string[] {
  const notes: string[] = [];
  if (opts.frontend === 'ours') {
    notes.push(
      'Front-end is our own driver: DPDK testpmd is ' +
        (dpdkMissing().length ? `not installed (${dpdkMissing().join(', ')})` : 'installed but --frontend ours was given') +
        '. It runs JavaScript per frame, so its rates bound the figures; txonly and flowgen both map to its tx mode (RX drained, against the sink and the loopback respectively), rxonly to its rx mode.',
    );
  }
  if (!opts.backends.includes('dpdk'))
    notes.push('DPDK vhost PMD back-end not measured (not installed, or --backends without dpdk): no ratios.');
  if (opts.backends.includes('js'))
    notes.push(
      'js: the js port with a MAC-swap echo in JavaScript (dist/bench/js_echo.js: frames() / send() of the batch itself), ' +
        `its main thread and native worker on CPU ${opts.cpuBackend} like ours; io and flowgen only, no latency or idle runs. ` +
        'js / ours compares it with the native loopback on the same front-end, js / DPDK with the vhost PMD.',
    );
  if (opts.layouts.includes('packed'))
    notes.push(
      'packed: the front-end asks with packed_vq=1; a run counts only when its back-end negotiated VIRTIO_F_RING_PACKED ' +
        "(ours: its 'features acked' line; DPDK: 'negotiated Virtio features'), otherwise it fails with the reason and no figure.",
    );
  if (opts.pairs.some((p) => p > 1))
    notes.push(
      `pairs > 1: each side keeps its one CPU. The front-end testpmd serves all pairs from one forwarding lcore (CPU ${opts.cpuFrontend}), ` +
        `DPDK's vhost PMD from one forwarding lcore (CPU ${opts.cpuBackend}); ours runs its default worker thread per pair, ` +
        `all on CPU ${opts.cpuBackend} (the kernel time-shares them). The figure is the total over the pairs; perPair and fairness ` +
        "(Jain's index, slowest / fastest pair) are per run in the JSON. --ours-args='--workers 1' serves all pairs from one worker.",
    );
  return notes;
}
