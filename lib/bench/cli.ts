/**
 * The benchmark's command line: the options, their defaults and checks, and the help text.
 *
 *   vhost-user bench [--quick] [--seconds N] [--sizes 64,512,1518] [--queue-sizes 1024,256]
 *        [--modes io,flowgen,txonly,rxonly] [--layouts split,packed] [--pairs 1,2] [--rounds N] [--warmup S]
 *        [--frontend auto|dpdk|ours]
 *        [--backends ours,js,dpdk] [--memory no-huge|hugepages] [--mrg-rxbuf 0|1] [--in-order 0|1]
 *        [--latency-count N] [--no-latency] [--cpu-backend C] [--cpu-frontend C] [--out DIR]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { BACKENDS, type BackendKind, type MemoryMode } from './backends';
import { parseLayouts, type RingLayout } from './layout';
import { parsePairs } from './pairs';
import { dpdkMissing, dpdkPluginDirs } from './testpmd';
import { MODES, type FrontendKind, type Mode } from './types';

const HELP = `Usage: vhost-user bench [options]

Our vhost-user back-end (vhost-user net: loopback, sink or source port by mode) against DPDK's vhost PMD (testpmd),
driven by DPDK testpmd's virtio-user front-end (or, without DPDK, by our VirtioNetDriver). With --backends
ours,js,... also the js port with a MAC-swap echo in JavaScript, as a ratio to the native loopback.
With --user-net: guest <-> host TCP through our user port, QEMU's -netdev user and passt instead
(vhost-user bench --user-net --help). With --switch: VM to VM through our switch against testpmd's io engine
between two vhost ports (vhost-user bench --switch --help). With --vhost-net: the kernel's vhost-net against
our back-end, the same driver and tap, inside a QEMU guest (vhost-user bench --vhost-net --help).

  --quick               smoke run: one size (64), one queue size (256), io and rxonly, split rings, 1 pair,
                        1 round
  --seconds N           measured seconds per run (default 5)
  --warmup S            seconds of traffic before each measurement (default 1; 0.5 with --quick)
  --sizes LIST          frame sizes in bytes (default 64,512,1518)
  --queue-sizes LIST    virtio ring sizes (default 1024,256)
  --modes LIST          io,flowgen,txonly,rxonly (default: all four)
  --layouts LIST        ring layouts, split,packed (default both; split with --quick): the front-end asks
                        with packed_vq=0|1, both back-ends run the same layout in a cell, and a run whose
                        back-end negotiated another layout fails (never reported under the asked one)
  --pairs LIST          queue pairs, e.g. 1,2 (default 1): virtio-user and vhost PMD queues=N, testpmd
                        --rxq=N --txq=N with one forwarding lcore for all pairs (front-end and DPDK alike),
                        ours --queues N with its default worker thread per pair on the back-end's CPU;
                        per-pair counts and fairness (Jain's index, slowest/fastest pair) for N > 1
  --rounds N            A/B alternations per cell (default 2; 1 with --quick)
  --frontend KIND       auto (DPDK if installed, else ours), dpdk or ours
  --backends LIST       ours,js,dpdk (default: ours,dpdk when DPDK's vhost PMD is installed, else ours).
                        js: the js port with a MAC-swap echo in JavaScript (io and flowgen only; no
                        latency or idle runs), reported as js / ours (loopback) and js / DPDK
  --memory MODE         front-end and DPDK memory: no-huge (default, memfd) or hugepages (2 MiB, needs root)
  --mrg-rxbuf 0|1       virtio-user mrg_rxbuf (default 1)
  --in-order 0|1        virtio-user in_order (default 1)
  --latency-count N     ping-pongs per latency run (default 20000; 3000 with --quick)
  --no-latency          skip the latency runs
  --no-idle             skip the idle runs (back-end CPU with a connected front-end sending nothing)
  --cpu-backend C       CPU for the back-end under test (default 0)
  --cpu-frontend C      CPU for the front-end (default 1)
  --quiet-wait S        before each run wait up to S seconds for other load to drop (default 20; 0 with --quick)
  --retries N           repeat a run up to N times when other processes used more than
                        --max-other-load CPUs while it ran (default 2, 0 with --quick; 0.3 CPU)
  --max-other-load X    see --retries
  --ours-args=ARGS      extra arguments for our back-end's command line (e.g. --ours-args='--poll-us 0')
  --js-args=ARGS        extra arguments for the js back-end (dist/bench/js_echo.js: --poll-us N)
  --out DIR             results directory (default ./vhost-user-bench; npm run bench in the
                        repository writes bench/results)
  -h, --help            this text
`;

export interface Options {
  quick: boolean;
  seconds: number;
  warmup: number;
  sizes: number[];
  queueSizes: number[];
  modes: Mode[];
  layouts: RingLayout[];
  pairs: number[];
  rounds: number;
  frontend: FrontendKind;
  backends: BackendKind[];
  memory: MemoryMode;
  mrgRxbuf: boolean;
  inOrder: boolean;
  latency: boolean;
  latencyCount: number;
  idle: boolean;
  cpuBackend: number;
  cpuFrontend: number;
  quietWait: number;
  outDir: string;
  oursArgs: string[];
  jsArgs: string[];
  retries: number;
  maxOtherLoad: number;
}

export function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function list(value: string | undefined, name: string): number[] | undefined {
  if (value === undefined) return undefined;
  const out = value.split(',').map((s) => Number(s.trim()));
  if (out.length === 0 || out.some((n) => !Number.isInteger(n) || n <= 0))
    fail(`--${name} takes a comma-separated list of positive integers`);
  return out;
}

function num(value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) fail(`--${name} must be a number >= ${min}`);
  return n;
}

function vhostPluginPresent(): boolean {
  return dpdkPluginDirs().some((dir) => {
    try {
      return fs.readdirSync(dir).some((f) => /^librte_net_vhost\.so(\.|$)/.test(f));
    } catch {
      return false;
    }
  });
}

/** Reads the command line; prints the help and exits on --help, fails with one line on a bad option. */
export function parseOptions(argv: string[]): Options {
  const v = readArgs(argv);
  if (v.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const quick = !!v.quick;
  const modes = (v.modes?.split(',').map((s) => s.trim()) ?? (quick ? ['io', 'rxonly'] : [...MODES])) as Mode[];
  for (const m of modes) if (!MODES.includes(m)) fail(`unknown mode '${m}' (available: ${MODES.join(', ')})`);
  const { frontend, backends } = peersOf(v.frontend, v.backends);
  const memory = (v.memory ?? 'no-huge') as MemoryMode;
  if (memory !== 'no-huge' && memory !== 'hugepages') fail('--memory must be no-huge or hugepages');
  const ncpu = os.cpus().length;
  const cpuBackend = num(v['cpu-backend'], 'cpu-backend', 0) ?? 0;
  const cpuFrontend = num(v['cpu-frontend'], 'cpu-frontend', 0) ?? Math.min(1, ncpu - 1);
  if (cpuBackend >= ncpu || cpuFrontend >= ncpu) fail(`this machine has CPUs 0..${ncpu - 1}`);
  return {
    quick,
    seconds: num(v.seconds, 'seconds', 0.5) ?? 5,
    warmup: num(v.warmup, 'warmup', 0) ?? (quick ? 0.5 : 1),
    sizes: list(v.sizes, 'sizes') ?? (quick ? [64] : [64, 512, 1518]),
    queueSizes: list(v['queue-sizes'], 'queue-sizes') ?? (quick ? [256] : [1024, 256]),
    modes,
    layouts: checked(v.layouts, parseLayouts) ?? (quick ? ['split'] : ['split', 'packed']),
    pairs: checked(v.pairs, parsePairs) ?? [1],
    rounds: num(v.rounds, 'rounds', 1) ?? (quick ? 1 : 2),
    frontend,
    backends,
    memory,
    mrgRxbuf: bool01(v['mrg-rxbuf'], 'mrg-rxbuf', true),
    inOrder: bool01(v['in-order'], 'in-order', true),
    latency: !v['no-latency'],
    idle: !v['no-idle'],
    latencyCount: num(v['latency-count'], 'latency-count', 10) ?? (quick ? 3000 : 20000),
    cpuBackend,
    cpuFrontend,
    // A smoke run (--quick) checks that everything works: it does not wait for a quiet machine.
    quietWait: num(v['quiet-wait'], 'quiet-wait', 0) ?? (quick ? 0 : 20),
    outDir: path.resolve(v.out ?? 'vhost-user-bench'),
    oursArgs: v['ours-args']?.split(/\s+/).filter(Boolean) ?? [],
    jsArgs: v['js-args']?.split(/\s+/).filter(Boolean) ?? [],
    retries: num(v.retries, 'retries', 0) ?? (quick ? 0 : 2),
    maxOtherLoad: num(v['max-other-load'], 'max-other-load', 0) ?? 0.3,
  };
}

function readArgs(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean' },
        seconds: { type: 'string' },
        warmup: { type: 'string' },
        sizes: { type: 'string' },
        'queue-sizes': { type: 'string' },
        modes: { type: 'string' },
        layouts: { type: 'string' },
        pairs: { type: 'string' },
        rounds: { type: 'string' },
        frontend: { type: 'string' },
        backends: { type: 'string' },
        memory: { type: 'string' },
        'mrg-rxbuf': { type: 'string' },
        'in-order': { type: 'string' },
        'latency-count': { type: 'string' },
        'no-latency': { type: 'boolean' },
        'no-idle': { type: 'boolean' },
        'cpu-backend': { type: 'string' },
        'cpu-frontend': { type: 'string' },
        'quiet-wait': { type: 'string' },
        out: { type: 'string' },
        'ours-args': { type: 'string' },
        'js-args': { type: 'string' },
        retries: { type: 'string' },
        'max-other-load': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    fail((err as Error).message);
  }
}

/** The front-end and the back-ends to compare: what was asked for, checked against what is installed. */
function peersOf(frontendArg: string | undefined, backendsOpt: string | undefined): { frontend: FrontendKind; backends: BackendKind[] } {
  const frontendOpt = frontendArg ?? 'auto';
  const haveDpdk = dpdkMissing().length === 0;
  if (!['auto', 'dpdk', 'ours'].includes(frontendOpt)) fail('--frontend must be auto, dpdk or ours');
  if (frontendOpt === 'dpdk' && !haveDpdk) fail(`--frontend dpdk: DPDK is missing ${dpdkMissing().join(', ')}`);
  const frontend: FrontendKind = frontendOpt === 'auto' ? (haveDpdk ? 'dpdk' : 'ours') : (frontendOpt as FrontendKind);
  const dpdkBackendOk = haveDpdk && vhostPluginPresent();
  const backends = (backendsOpt?.split(',').map((s) => s.trim()) ?? (dpdkBackendOk ? ['ours', 'dpdk'] : ['ours'])) as BackendKind[];
  for (const b of backends) if (!BACKENDS.includes(b)) fail(`unknown back-end '${b}' (${BACKENDS.join(', ')})`);
  if (new Set(backends).size !== backends.length) fail('--backends lists a back-end twice');
  if (backends.includes('dpdk') && !dpdkBackendOk)
    fail('the DPDK back-end needs dpdk-testpmd and the vhost PMD (Debian: dpdk-dev librte-net-vhost23)');
  return { frontend, backends };
}

/** A list option read by its parser, which returns the values or a one-line complaint. */
function checked<T>(value: string | undefined, parse: (s: string) => T[] | string): T[] | undefined {
  if (value === undefined) return undefined;
  const r = parse(value);
  if (typeof r === 'string') fail(r);
  return r;
}

function bool01(s: string | undefined, name: string, dflt: boolean): boolean {
  if (s === undefined) return dflt;
  if (s !== '0' && s !== '1') fail(`--${name} takes 0 or 1`);
  return s === '1';
}
