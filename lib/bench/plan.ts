/** The plan of a benchmark: every run in the order it happens, and what the set-up is, in words. */
import type { Options } from './cli';
import { dpdkMissing } from './testpmd';
import type { IdleRun, LatencyRun, OursWorker, RunResult } from './types';

/** Latency and idle runs measure our back-end in both worker modes. */
export const OURS_WORKERS: readonly OursWorker[] = ['adaptive', 'event-driven'];

export interface Plan {
  throughput: RunResult[];
  latency: LatencyRun[];
  idle: IdleRun[];
}

/** Cells in order, each run A B A B (rounds) before the next cell; then the latency and the idle runs. */
export function buildPlan(opts: Options): Plan {
  const throughput: RunResult[] = [];
  for (const queueSize of opts.queueSizes) {
    for (const size of opts.sizes) {
      for (const mode of opts.modes) {
        const cell = `q${queueSize}-${size}B-${mode}`;
        for (let round = 1; round <= opts.rounds; round++) {
          for (const backend of opts.backends) throughput.push({ cell, mode, size, queueSize, backend, round });
        }
      }
    }
  }
  const latency: LatencyRun[] = [];
  if (opts.latency) {
    for (const size of [...new Set(opts.sizes.map((s) => Math.min(1514, s)))]) {
      for (let round = 1; round <= opts.rounds; round++) {
        for (const backend of opts.backends) {
          if (backend === 'ours') for (const worker of OURS_WORKERS) latency.push({ size, backend, worker, round });
          else latency.push({ size, backend, round });
        }
      }
    }
  }
  const idle: IdleRun[] = [];
  if (opts.idle) {
    for (let round = 1; round <= opts.rounds; round++) {
      for (const backend of opts.backends) {
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
    ? `DPDK testpmd, virtio-user PMD (net_virtio_user0,queues=1,packed_vq=0,mrg_rxbuf=${+opts.mrgRxbuf},in_order=${+opts.inOrder}), both lcores on CPU ${opts.cpuFrontend}, burst 32, ${opts.memory}`
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
  return notes;
}
