/** The results of a benchmark as one Report (what <out>/<timestamp>.json holds). */
import type { BackendKind } from '../backends';
import type { Options } from '../cli';
import { buildStamp } from '../host';
import { describeFrontend, setupNotes, type Plan } from '../plan';
import type { Report, RunResult } from '../types';
import { layoutRatios } from './layouts';
import { summarise, summariseIdle, summariseLatency } from './summary';

/** What the execution of a plan left behind. */
export interface Finished {
  argv: string[];
  started: Date;
  host: Report['host'];
  /** The latency and idle runs carry their results in the plan's own entries. */
  plan: Plan;
  runs: RunResult[];
  errors: string[];
}

export function buildReport(opts: Options, done: Finished): Report {
  const { host, plan, started } = done;
  const notes = setupNotes(opts);
  if (buildStamp() !== host.build) {
    notes.push(
      `the checkout was rebuilt while the benchmark ran (${host.build} at the start, ${buildStamp()} at the end); every run used the copy taken at the start`,
    );
  }
  if (opts.frontend === 'dpdk') notes.push(...modeNotes());
  const finished = new Date();
  const cells = summarise(done.runs, opts.backends);
  return {
    version: 1,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationSeconds: (finished.getTime() - started.getTime()) / 1000,
    command: `vhost-user bench ${done.argv.join(' ')}`.trim(),
    host,
    setup: {
      frontend: opts.frontend,
      frontendDescription: describeFrontend(opts),
      backends: opts.backends,
      backendCommands: backendCommands(opts),
      cpuBackend: opts.cpuBackend,
      cpuFrontend: opts.cpuFrontend,
      memory: opts.memory,
      mrgRxbuf: opts.mrgRxbuf,
      inOrder: opts.inOrder,
      seconds: opts.seconds,
      warmupSeconds: opts.warmup,
      rounds: opts.rounds,
      sizes: opts.sizes,
      queueSizes: opts.queueSizes,
      modes: opts.modes,
      layouts: opts.layouts,
      pairs: opts.pairs,
      notes,
    },
    runs: done.runs,
    cells,
    layoutRatios: layoutRatios(cells),
    latencyRuns: plan.latency,
    latency: summariseLatency(plan.latency, opts.backends),
    idleRuns: plan.idle,
    idle: summariseIdle(plan.idle),
    errors: done.errors,
  };
}

/** Each back-end's command, as run, with a placeholder socket. */
function backendCommands(opts: Options): Partial<Record<BackendKind, string>> {
  const commands: Partial<Record<BackendKind, string>> = {};
  commands.ours = `taskset -c ${opts.cpuBackend} node dist/cli.js net --socket SOCK${opts.oursArgs.length ? ` ${opts.oursArgs.join(' ')}` : ''} (txonly: --port sink; rxonly: --port source --frame-size SIZE; N pairs: --queues N)`;
  if (opts.backends.includes('js'))
    commands.js = `taskset -c ${opts.cpuBackend} node dist/bench/js_echo.js --socket SOCK --queues N${opts.jsArgs.length ? ` ${opts.jsArgs.join(' ')}` : ''} (io and flowgen only)`;
  if (opts.backends.includes('dpdk')) {
    commands.dpdk =
      `taskset -c ${opts.cpuBackend} dpdk-testpmd --lcores 0@${opts.cpuBackend},1@${opts.cpuBackend} --main-lcore 0 --no-pci --no-telemetry ` +
      `${opts.memory === 'no-huge' ? '--no-huge -m 256 --no-shconf' : '--huge-dir /dev/hugepages --single-file-segments --socket-mem 256'} ` +
      `--vdev net_vhost0,iface=SOCK,queues=N -- --forward-mode=macswap (txonly mode: rxonly; rxonly mode: txonly --txpkts=SIZE) -a --disable-link-check --total-num-mbufs=16384 --burst=32 (N > 1: --rxq=N --txq=N --nb-cores=1)`;
  }
  return commands;
}

/** What each mode makes the two back-ends do, with testpmd as the front-end. */
function modeNotes(): string[] {
  return [
    'txonly: guest TX into a sink (ours: --port sink, takes every frame unread; DPDK: rxonly engine, copies each frame into an mbuf and frees it).',
    'rxonly: guest RX from a source (ours: --port source --frame-size SIZE; DPDK: txonly engine --txpkts=SIZE).',
    'flowgen: guest TX through the loopback / macswap with the returned frames received and freed by the front-end.',
    'io: front-end forwards every received frame back (start tx_first: queue/2 frames circulate); Mpps = frames received per second = round trips per second; each direction carries that rate.',
  ];
}
