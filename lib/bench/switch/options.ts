/**
 * The command line of `vhost-user bench --switch`: our switch against DPDK testpmd's io engine between
 * vhost PMD ports, the same testpmd virtio-user front-end for both. Parsing is pure (a bad option is an
 * Error with one line) so that tests can check it without running anything.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

export const SWITCH_HELP = `Usage: vhost-user bench --switch [options]

VM to VM through a switch: our \`vhost-user switch --socket S0 --socket S1\` (A) against DPDK testpmd
with two vhost PMD ports in io forwarding (B), each alone on one CPU. The same front-end for both: one
testpmd with two virtio-user ports on the other CPU, io forwarding, a population injected with
tx_first, frames addressed port to port (learned unicast). Mpps and Gbit/s each way, switch / testpmd.
Then fairness: a second front-end on two more ports (VLAN 2 on the switch) idle or flooding broadcast
at full rate, and what the first pair keeps.

  --sizes LIST        frame sizes in bytes (default 64,1518)
  --seconds N         measured seconds per run (default 5)
  --warmup S          seconds of traffic before each measurement (default 1)
  --rounds N          A/B rounds per size (default 3); the order alternates: A B, B A, ...
  --queue-size N      virtio-user queue_size (default 256)
  --packed            packed rings (default split)
  --no-fairness       skip the fairness runs
  --quick             smoke run: 64 B, 1 round, 1 s + 0.5 s warm-up, no quiet wait nor retries
  --quiet-wait S      before each run wait up to S seconds for other load to drop (default 20)
  --retries N         repeat a run up to N times when other processes used more than 0.3 CPU while it
                      ran, keeping the least disturbed (default 2; 0 with --quick)
  --cpu-backend C     CPU of the back-end under test (default 0)
  --cpu-frontend C    CPU of the front-ends and the harness (default 1)
  --out DIR           results directory (default ./vhost-user-bench/switch)
  -h, --help          this text
`;

export interface SwitchOptions {
  sizes: number[];
  seconds: number;
  warmup: number;
  rounds: number;
  queueSize: number;
  packed: boolean;
  fairness: boolean;
  quietWait: number;
  retries: number;
  cpuBackend: number;
  cpuFrontend: number;
  outDir: string;
}

function number(value: string | undefined, name: string, min: number, max: number, integer = true): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max)
    throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
  return n;
}

/** The options, or null after --help; throws an Error with one line for a bad option. */
export function parseSwitchOptions(argv: readonly string[]): SwitchOptions | null {
  let v;
  try {
    v = parseArgs({
      args: argv.filter((a) => a !== '--switch'),
      options: {
        sizes: { type: 'string' },
        seconds: { type: 'string' },
        warmup: { type: 'string' },
        rounds: { type: 'string' },
        'queue-size': { type: 'string' },
        packed: { type: 'boolean' },
        'no-fairness': { type: 'boolean' },
        quick: { type: 'boolean' },
        'quiet-wait': { type: 'string' },
        retries: { type: 'string' },
        'cpu-backend': { type: 'string' },
        'cpu-frontend': { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new Error(`${(err as Error).message} (vhost-user bench --switch --help lists the options)`);
  }
  if (v.help) return null;
  const quick = !!v.quick;
  const sizes = v.sizes?.split(',').map((s) => number(s.trim(), 'sizes', 60, 9000) as number) ?? (quick ? [64] : [64, 1518]);
  const ncpu = os.cpus().length;
  const cpuBackend = number(v['cpu-backend'], 'cpu-backend', 0, ncpu - 1) ?? 0;
  const cpuFrontend = number(v['cpu-frontend'], 'cpu-frontend', 0, ncpu - 1) ?? Math.min(1, ncpu - 1);
  if (cpuBackend === cpuFrontend) throw new Error('--cpu-backend and --cpu-frontend must differ (the back-end has its CPU alone)');
  const queueSize = number(v['queue-size'], 'queue-size', 64, 1024) ?? 256;
  if ((queueSize & (queueSize - 1)) !== 0) throw new Error('--queue-size must be a power of two');
  return {
    sizes,
    seconds: number(v.seconds, 'seconds', 0.5, 600, false) ?? (quick ? 1 : 5),
    warmup: number(v.warmup, 'warmup', 0, 60, false) ?? (quick ? 0.5 : 1),
    rounds: number(v.rounds, 'rounds', 1, 100) ?? (quick ? 1 : 3),
    queueSize,
    packed: !!v.packed,
    fairness: !v['no-fairness'],
    quietWait: number(v['quiet-wait'], 'quiet-wait', 0, 3600, false) ?? (quick ? 0 : 20),
    retries: number(v.retries, 'retries', 0, 10) ?? (quick ? 0 : 2),
    cpuBackend,
    cpuFrontend,
    outDir: path.resolve(v.out ?? path.join('vhost-user-bench', 'switch')),
  };
}

/** Round r's order of the back-ends (0-based): A B in even rounds, B A in odd ones. */
export function backendOrder<T>(backends: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...backends] : [...backends].reverse();
}
