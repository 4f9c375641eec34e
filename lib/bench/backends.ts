/**
 * The back-ends the benchmark compares, each run as its own process pinned to one CPU:
 *
 *  - 'ours': `node dist/cli.js net --socket SOCK --port loopback` (or the mode's port, `--queues N`), under
 *    `taskset`. Per-queue counters (packets, bytes, drops, errors, kicks, calls) are read by sending
 *    SIGUSR1, on which the CLI prints them. Not `--quiet`: its info lines (a handful per connection)
 *    include the features it acked, which say the ring layout it negotiated (layout.ts).
 *  - 'js': `node dist/bench/js_echo.js --socket SOCK [--queues N]`, the js port with a MAC-swap echo
 *    in JavaScript (lib/bench/js_echo.ts), under `taskset`; it prints the same lines as our CLI
 *    (serving, features acked, statistics on SIGUSR1), so it is driven and read like 'ours'.
 *  - 'dpdk': DPDK testpmd with the vhost PMD, `--vdev net_vhost0,iface=SOCK,queues=1`, both of its
 *    lcores on the same CPU (`--lcores 0@C,1@C`) and the whole process under `taskset` so that its
 *    control threads (vhost-events, eal-intr-thread) stay there too. Non-interactive with `-a`
 *    (auto-start) and `--disable-link-check` (it would otherwise busy-wait for a link that only comes
 *    up when the front-end connects); its stdin is a pipe we keep open and write a newline to when
 *    done ("Press enter to exit"), on which it prints its forward statistics and quits.
 *
 * Every process started here is tracked and killed on exit, and DPDK's files are removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { shellQuote } from './shell_quote';
import { cleanupPrefix, parseForwardStats, type ForwardStats } from './testpmd';
import { queueLabel } from '../net/stats';

export type BackendKind = 'ours' | 'js' | 'dpdk';
export const BACKENDS: readonly BackendKind[] = ['ours', 'js', 'dpdk'];

/** Back-ends that are our code and speak like our CLI (serving line, features acked, SIGUSR1 statistics). */
export const speaksLikeOurCli = (kind: BackendKind): boolean => kind !== 'dpdk';
export type DpdkForwardMode = 'macswap' | 'txonly' | 'rxonly';
export type MemoryMode = 'no-huge' | 'hugepages';

export interface QueueCounters {
  packets: number;
  bytes: number;
  drops: number;
  errors: number;
  kicks: number;
  calls: number;
}

/**
 * Our CLI's statistics: q(2p) is pair p's RX queue (device to guest), q(2p+1) its TX queue (guest to
 * device); rx and tx are the sums over the pairs.
 */
export interface OurStats {
  rx: QueueCounters;
  tx: QueueCounters;
  /** Per queue pair (one entry with one pair). */
  pairs: { rx: QueueCounters; tx: QueueCounters }[];
}

export interface BackendProcess {
  kind: BackendKind;
  pid: number;
  socketPath: string;
  /** The command line, for the report. */
  command: string;
  /** stdout + stderr so far. */
  output(): string;
  /** Ours and js: per-queue counters now (SIGUSR1), null if they did not arrive within 2 s. */
  stats(): Promise<OurStats | null>;
  /** Stops the process (cleanly, then by force) and removes what it left behind. */
  stop(): Promise<BackendExit>;
}

export interface BackendExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** DPDK only: testpmd's forward statistics for the whole run (RX = from the guest, TX = to the guest). */
  forward: ForwardStats | null;
  /** Ours and js: the counters the process printed on exit. */
  final: OurStats | null;
}

export interface BackendOptions {
  kind: BackendKind;
  socketPath: string;
  /** CPU the back-end runs on. */
  cpu: number;
  /** Repository root (for dist/cli.js). */
  root: string;
  /** Queue pairs (ours: --queues N with its default worker per pair; DPDK: vhost queues=N, one lcore). Default 1. */
  queuePairs?: number;
  /** Ours and js: more arguments for the CLI or the echo (e.g. --poll-us 0). */
  extraArgs?: string[];
  /** Ours only: the CLI to run (default <root>/dist/cli.js). */
  cliPath?: string;
  /** JS only: the echo program to run (default <root>/dist/bench/js_echo.js). */
  jsEchoPath?: string;
  /** Environment of the process (default: ours). */
  env?: NodeJS.ProcessEnv;
  /** DPDK only. */
  forwardMode?: DpdkForwardMode;
  /** DPDK only, txonly: frame length. */
  txPkts?: number;
  memory?: MemoryMode;
  memoryMb?: number;
  /** How long the process may take to be ready. Default 20 s. */
  startupTimeoutMs?: number;
}

const live = new Map<number, ChildProcess>();
const prefixes = new Set<string>();
let sequence = 0;

/** Kills every back-end still running and removes DPDK files (for exit paths). */
export function killAllBackends(): void {
  for (const child of live.values()) child.kill('SIGKILL');
  live.clear();
  for (const p of prefixes) cleanupPrefix(p);
}

process.once('exit', killAllBackends);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const COUNTER_NAMES = ['packets', 'bytes', 'drops', 'errors', 'kicks', 'calls'] as const;

function parseCounters(s: string): QueueCounters {
  const v = (name: string) => Number(new RegExp(`\\b${name}=(\\d+)`).exec(s)?.[1] ?? NaN);
  return { packets: v('packets'), bytes: v('bytes'), drops: v('drops'), errors: v('errors'), kicks: v('kicks'), calls: v('calls') };
}

function sumCounters(list: QueueCounters[]): QueueCounters {
  const out = { packets: 0, bytes: 0, drops: 0, errors: 0, kicks: 0, calls: 0 };
  for (const c of list) for (const n of COUNTER_NAMES) out[n] += c[n];
  return out;
}

/** Every complete statistics block our CLI printed for the socket (all `pairs` pairs present). */
export function parseOurStatsBlocks(text: string, socketPath: string, pairs: number): OurStats[] {
  const out: OurStats[] = [];
  const header = `statistics for ${socketPath}:`;
  let at = text.indexOf(header);
  while (at >= 0) {
    const next = text.indexOf(header, at + header.length);
    const body = text.slice(at + header.length, next >= 0 ? next : at + header.length + 600 * pairs + 1000);
    const perPair: OurStats['pairs'] = [];
    // formatStats's counter line of a queue: after its label, up to the end of the line.
    const line = (q: number) => new RegExp(`${queueLabel(q).replace(/[()]/g, '\\$&')}:([^\\n]*)\\n`).exec(body);
    for (let p = 0; p < pairs; p++) {
      const rx = line(2 * p);
      const tx = line(2 * p + 1);
      if (!rx || !tx) break;
      perPair.push({ rx: parseCounters(rx[1]), tx: parseCounters(tx[1]) });
    }
    if (perPair.length < pairs) break; // block not complete yet
    out.push({ rx: sumCounters(perPair.map((q) => q.rx)), tx: sumCounters(perPair.map((q) => q.tx)), pairs: perPair });
    at = next;
  }
  return out;
}

export function ourStatsDelta(a: OurStats, b: OurStats): OurStats {
  const d = (x: QueueCounters, y: QueueCounters): QueueCounters => ({
    packets: y.packets - x.packets,
    bytes: y.bytes - x.bytes,
    drops: y.drops - x.drops,
    errors: y.errors - x.errors,
    kicks: y.kicks - x.kicks,
    calls: y.calls - x.calls,
  });
  return {
    rx: d(a.rx, b.rx),
    tx: d(a.tx, b.tx),
    pairs: b.pairs.map((q, i) => ({ rx: d(a.pairs[i].rx, q.rx), tx: d(a.pairs[i].tx, q.tx) })),
  };
}

/** The back-end's command line, as taskset's arguments. */
function backendArgs(opts: BackendOptions, prefix: string | null): string[] {
  const pairs = opts.queuePairs ?? 1;
  if (opts.kind === 'ours') {
    return [
      '-c',
      String(opts.cpu),
      process.execPath,
      opts.cliPath ?? path.join(opts.root, 'dist', 'cli.js'),
      'net',
      '--socket',
      opts.socketPath,
      // The loopback unless the mode's arguments name another port (a later --port wins).
      '--port',
      'loopback',
      ...(pairs > 1 ? ['--queues', String(pairs)] : []),
      ...(opts.extraArgs ?? []),
    ];
  }
  if (opts.kind === 'js') {
    const script = opts.jsEchoPath ?? path.join(opts.root, 'dist', 'bench', 'js_echo.js');
    return [
      '-c',
      String(opts.cpu),
      process.execPath,
      script,
      '--socket',
      opts.socketPath,
      '--queues',
      String(pairs),
      ...(opts.extraArgs ?? []),
    ];
  }
  const mem =
    (opts.memory ?? 'no-huge') === 'no-huge'
      ? ['--no-huge', '-m', String(opts.memoryMb ?? 512), '--no-shconf']
      : ['--huge-dir', '/dev/hugepages', '--single-file-segments', '--socket-mem', String(opts.memoryMb ?? 512)];
  const app = [`--forward-mode=${opts.forwardMode ?? 'macswap'}`, '-a', '--disable-link-check', '--total-num-mbufs=16384', '--burst=32'];
  if (opts.forwardMode === 'txonly' && opts.txPkts !== undefined) app.push(`--txpkts=${opts.txPkts}`);
  if (pairs > 1) app.push(`--rxq=${pairs}`, `--txq=${pairs}`, '--nb-cores=1');
  return [
    '-c',
    String(opts.cpu),
    'stdbuf',
    '-oL',
    '-eL',
    'dpdk-testpmd',
    '--lcores',
    `0@${opts.cpu},1@${opts.cpu}`,
    '--main-lcore',
    '0',
    '--no-pci',
    '--no-telemetry',
    `--file-prefix=${prefix}`,
    ...mem,
    '--vdev',
    `net_vhost0,iface=${opts.socketPath},queues=${pairs}`,
    '--',
    ...app,
  ];
}

/** A started child: its output so far, and how it ended once it has. */
interface Watched {
  out: string;
  exited: boolean;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  /** Resolves when the child has exited (or could not start). */
  exit: Promise<void>;
}

function watch(child: ChildProcess, pid: number): Watched {
  const w = { out: '', exited: false, exitCode: null, exitSignal: null } as Omit<Watched, 'exit'>;
  child.stdout!.on('data', (d: Buffer) => (w.out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (w.out += d.toString('utf8')));
  child.stdin!.on('error', () => {});
  const exit = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      w.out += `\n[spawn error: ${err.message}]\n`;
      w.exited = true;
      live.delete(pid);
      resolve();
    });
    child.once('close', (code, sig) => {
      w.exitCode = code;
      w.exitSignal = sig;
      w.exited = true;
      live.delete(pid);
      resolve();
    });
  });
  return Object.assign(w, { exit });
}

/** Starts a back-end and resolves once it serves its socket; throws (after cleaning up) if it does not. */
export async function startBackend(opts: BackendOptions): Promise<BackendProcess> {
  fs.rmSync(opts.socketPath, { force: true });
  let prefix: string | null = null;
  if (opts.kind === 'dpdk') {
    prefix = `vhub${process.pid}_${++sequence}`;
    prefixes.add(prefix);
  }
  const args = backendArgs(opts, prefix);
  const command = `taskset ${shellQuote(args)}`.replace(process.execPath, 'node');
  const child = spawn('taskset', args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;
  live.set(pid, child);
  const w = watch(child, pid);

  const waitFor = async (cond: () => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    while (!cond() && !w.exited && Date.now() < deadline) await sleep(10);
    return cond();
  };

  const stop = async (): Promise<BackendExit> => {
    if (!w.exited) {
      if (opts.kind === 'dpdk') child.stdin!.write('\n');
      else child.kill('SIGINT');
      if (!(await waitFor(() => w.exited, 10_000))) {
        child.kill('SIGINT');
        if (!(await waitFor(() => w.exited, 3_000))) child.kill('SIGKILL');
      }
    }
    await w.exit;
    if (prefix) {
      cleanupPrefix(prefix);
      prefixes.delete(prefix);
    }
    fs.rmSync(opts.socketPath, { force: true });
    const blocks = speaksLikeOurCli(opts.kind) ? parseOurStatsBlocks(w.out, opts.socketPath, opts.queuePairs ?? 1) : [];
    return {
      code: w.exitCode,
      signal: w.exitSignal,
      forward: opts.kind === 'dpdk' ? parseForwardStats(w.out) : null,
      final: blocks.length ? blocks[blocks.length - 1] : null,
    };
  };

  const ready = speaksLikeOurCli(opts.kind)
    ? () => w.out.includes('vhost-user: serving') && fs.existsSync(opts.socketPath)
    : () => w.out.includes('Press enter to exit') && fs.existsSync(opts.socketPath);
  if (!(await waitFor(ready, opts.startupTimeoutMs ?? 20_000))) {
    await stop();
    throw new Error(
      `back-end '${opts.kind}' did not get ready (${w.exited ? `exited ${w.exitCode ?? w.exitSignal}` : 'timeout'})\ncommand: ${command}\n--- output ---\n${w.out.slice(-4000)}`,
    );
  }

  return {
    kind: opts.kind,
    pid,
    socketPath: opts.socketPath,
    command,
    output: () => w.out,
    stats: async () => {
      if (!speaksLikeOurCli(opts.kind) || w.exited) return null;
      const before = parseOurStatsBlocks(w.out, opts.socketPath, opts.queuePairs ?? 1).length;
      child.kill('SIGUSR1');
      const got = await waitFor(() => parseOurStatsBlocks(w.out, opts.socketPath, opts.queuePairs ?? 1).length > before, 2_000);
      if (!got) return null;
      const all = parseOurStatsBlocks(w.out, opts.socketPath, opts.queuePairs ?? 1);
      return all[all.length - 1];
    },
    stop,
  };
}
