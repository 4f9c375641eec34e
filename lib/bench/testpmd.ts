/**
 * DPDK testpmd as a virtio-user front-end of our vhost-user back-end, for the benchmark and the
 * end-to-end tests.
 *
 * testpmd's virtio-user PMD (net_virtio_user) plays the guest: it connects to our socket, shares its
 * memory with us in SET_MEM_TABLE and drives split (or packed) rings by polling.
 *
 * Memory: the default is `--no-huge -m 512` (plus `--no-shconf`), which needs no system setup and
 * no root: EAL backs its memory with a memfd, and virtio-user passes that fd in SET_MEM_TABLE.
 * (`--in-memory` cannot be combined with `--no-huge`: "--legacy-mem is not compatible".) The
 * alternatives, which also work here, are kept for manual runs and comparison:
 *  - 'hugepages': 2 MiB hugepages on hugetlbfs (/dev/hugepages) with `--single-file-segments`
 *    (without it every page is its own file and virtio-user sends more than 8 regions: "Too many
 *    memory regions"). Needs `ensureHugepages()` (root) first.
 *  - 'in-memory': `--in-memory --single-file-segments`, hugepages without files in /dev/hugepages;
 *    also needs hugepages reserved (`ensureHugepages()`), but not the mount.
 *
 * testpmd runs interactively (`-i`) with its stdin a pipe, under `stdbuf -oL` so that its stdout is
 * line-buffered (a pipe would otherwise hold `show port stats` output until the buffer fills). We
 * send `start [tx_first]`, poll `show port stats 0` until the stop condition, then `stop`,
 * `show port stats 0`, `quit`: the last "NIC statistics" block is the final counters.
 *
 * CPUs: both testpmd lcores (main and the one forwarding lcore) are pinned to one CPU (the last),
 * leaving the others to the back-end under test (`--lcores 0@C,1@C`).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findProgram } from './find_program';
import { parseStreamStats, type StreamStats } from './pairs';
import { shellQuote } from './shell_quote';

export const TESTPMD = 'dpdk-testpmd';

/** Debian 12 packages that provide testpmd and the drivers the tests need. */
export const DEBIAN_PACKAGES = ['dpdk', 'dpdk-dev', 'librte-net-virtio23', 'librte-mempool-ring23'];

export type MemoryMode = 'no-huge' | 'hugepages' | 'in-memory';
export type ForwardMode = 'io' | 'mac' | 'macswap' | 'txonly' | 'rxonly' | 'flowgen';

/** Counters of testpmd's `show port stats` ("NIC statistics for port N"). */
export interface PortStats {
  rxPackets: number;
  rxMissed: number;
  rxBytes: number;
  rxErrors: number;
  rxNombuf: number;
  txPackets: number;
  txErrors: number;
  txBytes: number;
}

/** testpmd's per-port "Forward statistics" printed by `stop` (software counters of the forwarding engine). */
export interface ForwardStats {
  rxPackets: number;
  rxDropped: number;
  txPackets: number;
  txDropped: number;
}

/** One stretch of forwarding: `start`, poll until a stop condition, `stop`. */
export interface TestpmdPhase {
  forwardMode: ForwardMode;
  /** `start tx_first N`: first send N bursts of `burst` frames (io/mac modes). 0 (default) = plain `start`. */
  txFirstBursts?: number;
  /** Stop once testpmd's TX-packets reach this many. */
  untilTxPackets?: number;
  /** Stop once testpmd's RX-packets reach this many. */
  untilRxPackets?: number;
  /** Stop once this returns true; called with each polled sample of testpmd's counters. */
  until?: (stats: PortStats) => boolean;
  /** Forward this long. Default: 2 s without a count/until condition, else no limit but `timeoutMs`. */
  durationMs?: number;
  /** Stop forwarding after this long whatever happened. Default 20 s. */
  timeoutMs?: number;
}

export interface TestpmdOptions extends TestpmdPhase {
  /** Our back-end's socket (virtio-user connects to it): port 0. */
  socketPath: string;
  /**
   * Sockets of further virtio-user ports (1, 2, ...), each with the same ring options as port 0. With
   * two ports, `io` forwards what port 0 receives out of port 1 and back.
   */
  moreSocketPaths?: string[];
  /** Each port's MAC (virtio-user `mac=`), port 0 first; default: what virtio-user picks. */
  macs?: string[];
  /** Phases after the first, in the same testpmd process and connection (`set fwd MODE`, `start`). */
  thenPhases?: TestpmdPhase[];
  /** Frames per burst (`--burst`). Default 32. */
  burst?: number;
  /** Ring size of virtio-user (queue_size). Default 256. */
  queueSize?: number;
  mrgRxbuf?: boolean;
  inOrder?: boolean;
  packedVq?: boolean;
  /** Queue pairs of the virtio-user port (`queues=N`, `--rxq=N --txq=N`, one forwarding lcore for all). Default 1. */
  queues?: number;
  /** txonly frame length (`--txpkts`); testpmd's default is 64 bytes. */
  txPkts?: number;
  /** How often to poll `show port stats`. Default 200 ms. */
  pollMs?: number;
  /** CPU both testpmd lcores run on. Default: the last CPU. */
  cpu?: number;
  memory?: MemoryMode;
  /** EAL memory in MiB (`-m` / `--socket-mem`). Default 512. */
  memoryMb?: number;
  /** Size of testpmd's mbuf pool. Default 16384 (its default of ~155k mbufs does not fit in 512 MiB). */
  totalMbufs?: number;
  extraEalArgs?: string[];
  extraAppArgs?: string[];
  /** How long testpmd may take to reach its prompt. Default 20 s. */
  startupTimeoutMs?: number;
  /**
   * Called after each phase's `stop` and final `show port stats`, before the next phase starts or
   * testpmd quits (so the connection is still up): e.g. to wait for the back-end to settle and
   * snapshot its counters at that point.
   */
  afterPhase?: (phase: PhaseResult, index: number) => void | Promise<void>;
}

export interface TestpmdSample {
  /** ms since the phase's `start`. */
  t: number;
  stats: PortStats;
}

export type StopReason = 'count' | 'until' | 'duration' | 'timeout' | 'exited';

export interface PhaseResult {
  forwardMode: ForwardMode;
  stopReason: StopReason;
  /** Samples taken while forwarding. */
  samples: TestpmdSample[];
  /** From the `start` command to the `stop` command. */
  forwardingMs: number;
  /** Port 0's counters (cumulative over the run) after this phase's `stop`, or null. */
  stats: PortStats | null;
  /** Every port's counters at that point (port 0 first), or [] when not printed. */
  ports: PortStats[];
  /** Forward-engine counters of this phase (testpmd resets them at `start`), or null. */
  forward: ForwardStats | null;
  /** Per-stream counters of this phase (printed only with more than one stream, i.e. queue pairs > 1). */
  streams: StreamStats[];
}

export interface TestpmdResult {
  /** The command line, for reports and error messages. */
  command: string;
  /** testpmd reached its prompt and forwarding was started. */
  started: boolean;
  /** Every phase that ran, in order. */
  phases: PhaseResult[];
  /** Final port counters (the last `show port stats` after `stop`), or null if never printed. */
  stats: PortStats | null;
  /** Every port's final counters (port 0 first); [] when never printed. */
  ports: PortStats[];
  /** Forward-engine counters of the last phase, or null. */
  forward: ForwardStats | null;
  /** Every port's forward-engine counters of the last phase (port 0 first). */
  forwardPorts: (ForwardStats | null)[];
  /** Shortcuts to the first phase ('not-started', [] and 0 when testpmd never got to forwarding). */
  stopReason: StopReason | 'not-started';
  samples: TestpmdSample[];
  forwardingMs: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr, interleaved as they arrived. */
  output: string;
}

// ---------------------------------------------------------------------------------------------
// Availability

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Directories DPDK's EAL loads driver plugins from (…/dpdk/pmds-<abi>), as distributions install them. */
export function dpdkPluginDirs(): string[] {
  const roots = ['/usr/lib', '/usr/lib64', '/usr/local/lib', '/usr/local/lib64'];
  const libDirs: string[] = [];
  for (const root of roots) {
    libDirs.push(root);
    for (const sub of listDir(root)) if (/-linux-gnu/.test(sub)) libDirs.push(path.join(root, sub));
  }
  const out: string[] = [];
  for (const lib of libDirs) {
    const dpdk = path.join(lib, 'dpdk');
    for (const sub of listDir(dpdk)) if (sub.startsWith('pmds-')) out.push(path.join(dpdk, sub));
  }
  return out;
}

function pluginPresent(name: string): boolean {
  const re = new RegExp(`^librte_${name}\\.so(\\.|$)`);
  return dpdkPluginDirs().some((dir) => listDir(dir).some((f) => re.test(f)));
}

/** What is missing for the DPDK tests, or [] when they can run. */
export function dpdkMissing(): string[] {
  const missing: string[] = [];
  if (process.platform !== 'linux') return ['Linux'];
  if (!findProgram(TESTPMD)) missing.push(`${TESTPMD} (Debian package dpdk-dev)`);
  if (!findProgram('stdbuf')) missing.push('stdbuf (coreutils)');
  if (!pluginPresent('net_virtio')) missing.push('the virtio PMD librte_net_virtio (Debian package librte-net-virtio23)');
  if (!pluginPresent('mempool_ring')) missing.push('the ring mempool driver librte_mempool_ring (Debian package librte-mempool-ring23)');
  return missing;
}

// ---------------------------------------------------------------------------------------------
// Memory

const HUGEPAGES_DIR = '/dev/hugepages';
const NR_HUGEPAGES = '/proc/sys/vm/nr_hugepages';

function hugetlbfsMounted(dir: string): boolean {
  try {
    return fs
      .readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .some((line) => {
        const [, mnt, type] = line.split(' ');
        return mnt === dir && type === 'hugetlbfs';
      });
  } catch {
    return false;
  }
}

function freeHugepages(): number {
  const m = /HugePages_Free:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
  return m ? Number(m[1]) : 0;
}

/**
 * Makes `pages` 2 MiB hugepages free and hugetlbfs mounted on /dev/hugepages. Idempotent: does
 * nothing when enough are free and the mount exists; only ever raises nr_hugepages. Needs root.
 * Only the 'hugepages' and 'in-memory' modes need it; the default 'no-huge' mode does not. Shell
 * equivalent:
 *   echo 512 > /proc/sys/vm/nr_hugepages
 *   mkdir -p /dev/hugepages; mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages
 */
export function ensureHugepages(pages = 512, opts: { mount?: boolean } = {}): void {
  const free = freeHugepages();
  if (free < pages) {
    const total = Number(fs.readFileSync(NR_HUGEPAGES, 'utf8').trim());
    const want = total + (pages - free);
    fs.writeFileSync(NR_HUGEPAGES, `${want}\n`);
    const got = freeHugepages();
    if (got < pages) {
      throw new Error(`asked for ${want} hugepages in ${NR_HUGEPAGES} but only ${got} are free (memory fragmented?)`);
    }
  }
  if (opts.mount !== false && !hugetlbfsMounted(HUGEPAGES_DIR)) {
    fs.mkdirSync(HUGEPAGES_DIR, { recursive: true });
    const r = spawnSync('mount', ['-t', 'hugetlbfs', 'nodev', HUGEPAGES_DIR], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount -t hugetlbfs nodev ${HUGEPAGES_DIR} failed: ${r.stderr || r.error}`);
  }
}

/** EAL's runtime directory for a file prefix (it holds the config and mp socket). */
function runtimeDir(prefix: string): string {
  const base = process.getuid?.() === 0 ? '/var/run' : (process.env.XDG_RUNTIME_DIR ?? os.tmpdir());
  return path.join(base, 'dpdk', prefix);
}

/** Removes what a testpmd with this file prefix leaves behind: hugepage files and its runtime dir. */
export function cleanupPrefix(prefix: string): void {
  for (const f of listDir(HUGEPAGES_DIR)) {
    if (f.startsWith(`${prefix}map_`)) fs.rmSync(path.join(HUGEPAGES_DIR, f), { force: true });
  }
  fs.rmSync(runtimeDir(prefix), { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Parsing

const NIC_BLOCK = /#+ NIC statistics for port (\d+)\s+#+([\s\S]*?)\n\s*#{20,}/g;
const FWD_BLOCK = /-+ Forward statistics for port (\d+)\s+-+([\s\S]*?)\n\s*-{20,}/g;

function field(text: string, name: string): number {
  const m = new RegExp(`${name}:\\s+(\\d+)`).exec(text);
  if (!m) throw new Error(`testpmd statistics without ${name}:\n${text}`);
  return Number(m[1]);
}

function parseNicBlock(body: string): PortStats {
  return {
    rxPackets: field(body, 'RX-packets'),
    rxMissed: field(body, 'RX-missed'),
    rxBytes: field(body, 'RX-bytes'),
    rxErrors: field(body, 'RX-errors'),
    rxNombuf: field(body, 'RX-nombuf'),
    txPackets: field(body, 'TX-packets'),
    txErrors: field(body, 'TX-errors'),
    txBytes: field(body, 'TX-bytes'),
  };
}

/** Every "NIC statistics for port <port>" block in testpmd's output, in order. */
export function parsePortStats(output: string, port = 0): PortStats[] {
  const out: PortStats[] = [];
  for (const m of output.matchAll(NIC_BLOCK)) if (Number(m[1]) === port) out.push(parseNicBlock(m[2]));
  return out;
}

/** The last "Forward statistics for port <port>" block (printed by `stop`), or null. */
export function parseForwardStats(output: string, port = 0): ForwardStats | null {
  let last: ForwardStats | null = null;
  for (const m of output.matchAll(FWD_BLOCK)) {
    if (Number(m[1]) !== port) continue;
    last = {
      rxPackets: field(m[2], 'RX-packets'),
      rxDropped: field(m[2], 'RX-dropped'),
      txPackets: field(m[2], 'TX-packets'),
      txDropped: field(m[2], 'TX-dropped'),
    };
  }
  return last;
}

// ---------------------------------------------------------------------------------------------
// Running

const live = new Set<ChildProcessWithoutNullStreams>();
let sequence = 0;

process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Kills every testpmd this process started that is still running (for afterEach/afterAll). */
export function killAllTestpmd(): void {
  for (const child of live) child.kill('SIGKILL');
}

export function testpmdArgs(opts: TestpmdOptions, prefix: string): string[] {
  const cpu = opts.cpu ?? Math.max(0, os.cpus().length - 1);
  const memoryMb = opts.memoryMb ?? 512;
  const eal = ['--lcores', `0@${cpu},1@${cpu}`, '--main-lcore', '0', '--no-pci', '--no-telemetry', `--file-prefix=${prefix}`];
  switch (opts.memory ?? 'no-huge') {
    case 'no-huge':
      eal.push('--no-huge', '-m', String(memoryMb), '--no-shconf');
      break;
    case 'hugepages':
      eal.push('--huge-dir', HUGEPAGES_DIR, '--single-file-segments', '--socket-mem', String(memoryMb));
      break;
    case 'in-memory':
      eal.push('--in-memory', '--single-file-segments', '--socket-mem', String(memoryMb));
      break;
  }
  const devargs = [
    `queues=${opts.queues ?? 1}`,
    `queue_size=${opts.queueSize ?? 256}`,
    `packed_vq=${opts.packedVq ? 1 : 0}`,
    `mrg_rxbuf=${opts.mrgRxbuf ? 1 : 0}`,
    `in_order=${opts.inOrder ? 1 : 0}`,
  ];
  for (const [i, socket] of [opts.socketPath, ...(opts.moreSocketPaths ?? [])].entries()) {
    const mac = opts.macs?.[i] ? `,mac=${opts.macs[i]}` : '';
    eal.push('--vdev', `net_virtio_user${i},path=${socket}${mac},${devargs.join(',')}`);
  }
  eal.push(...(opts.extraEalArgs ?? []));
  const app = ['-i', `--forward-mode=${opts.forwardMode}`, `--total-num-mbufs=${opts.totalMbufs ?? 16384}`, `--burst=${opts.burst ?? 32}`];
  if (opts.txPkts !== undefined) app.push(`--txpkts=${opts.txPkts}`);
  if ((opts.queues ?? 1) > 1) app.push(`--rxq=${opts.queues}`, `--txq=${opts.queues}`, '--nb-cores=1');
  app.push(...(opts.extraAppArgs ?? []));
  return [...eal, '--', ...app];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A running testpmd: its output, the commands sent to its prompt, and how it ended once it has. */
class TestpmdSession {
  output = '';
  // testpmd prints its prompt and statistics on stdout; stderr (warnings) can land in the middle of
  // them in the combined output, so parsing looks at stdout alone.
  stdout = '';
  exited = false;
  exitCode: number | null = null;
  signal: NodeJS.Signals | null = null;
  /** Resolves when testpmd has exited (or could not start). */
  readonly exit: Promise<void>;
  private wake: (() => void) | null = null;

  /** `ports`: testpmd's port count (its statistics are read for every one). */
  constructor(
    readonly child: ChildProcessWithoutNullStreams,
    readonly ports: number,
  ) {
    child.stdout.on('data', (d: Buffer) => {
      const text = d.toString('utf8');
      this.stdout += text;
      this.output += text;
      this.notify();
    });
    child.stderr.on('data', (d: Buffer) => {
      this.output += d.toString('utf8');
      this.notify();
    });
    child.stdin.on('error', () => {}); // EPIPE once testpmd has exited
    this.exit = new Promise<void>((resolve) => {
      const done = () => {
        this.exited = true;
        live.delete(child);
        this.notify();
        resolve();
      };
      child.once('error', (err) => {
        this.output += `\n[spawn error: ${err.message}]\n`;
        done();
      });
      child.once('close', (code, sig) => {
        this.exitCode = code;
        this.signal = sig;
        done();
      });
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Waits until `cond()` holds, testpmd exits, or `ms` pass. */
  async waitFor(cond: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (this.exited || Date.now() >= deadline) return cond();
      await Promise.race([new Promise<void>((r) => (this.wake = r)), sleep(Math.min(50, Math.max(1, deadline - Date.now())))]);
    }
    return true;
  }

  send(line: string): void {
    if (!this.exited && this.child.stdin.writable) this.child.stdin.write(`${line}\n`);
  }

  /**
   * Sends `show port stats` (after `before`, e.g. `stop`) and returns the blocks it prints, port 0
   * first (the last port's block is printed last: once it is there, all are).
   */
  async showStats(...before: string[]): Promise<PortStats[] | null> {
    const last = this.ports - 1;
    const count = parsePortStats(this.stdout, last).length;
    for (const line of before) this.send(line);
    this.send(this.ports > 1 ? 'show port stats all' : 'show port stats 0');
    if (!(await this.waitFor(() => parsePortStats(this.stdout, last).length > count, 5_000))) return null;
    return this.lastStats();
  }

  /** Each port's latest counters printed so far, port 0 first. */
  lastStats(): PortStats[] {
    return Array.from({ length: this.ports }, (_, p) => parsePortStats(this.stdout, p).at(-1)).filter((s) => s !== undefined);
  }

  /** `stop` and `quit`; SIGINT, then SIGKILL, if testpmd does not exit. */
  async quit(): Promise<void> {
    this.send('stop'); // harmless when already stopped; stops forwarding if anything above bailed out
    this.send('quit');
    this.child.stdin.end();
    if (!(await this.waitFor(() => this.exited, 10_000))) {
      this.child.kill('SIGINT');
      if (!(await this.waitFor(() => this.exited, 5_000))) this.child.kill('SIGKILL');
    }
  }
}

/** Forwards one phase: starts it, polls the port counters until a stop condition, stops it. */
async function runPhase(t: TestpmdSession, phase: TestpmdPhase, i: number, pollMs: number): Promise<PhaseResult> {
  const hasCondition = phase.untilTxPackets !== undefined || phase.untilRxPackets !== undefined || phase.until !== undefined;
  const durationMs = phase.durationMs ?? (hasCondition ? Infinity : 2_000);
  const timeoutMs = phase.timeoutMs ?? 20_000;
  if (i > 0) t.send(`set fwd ${phase.forwardMode}`);
  const bursts = phase.txFirstBursts ?? 0;
  t.send(bursts > 0 ? `start tx_first ${bursts}` : 'start');
  const t0 = Date.now();
  const samples: TestpmdSample[] = [];
  let stopReason: StopReason;
  for (;;) {
    const elapsed = Date.now() - t0;
    if (t.exited) {
      stopReason = 'exited';
      break;
    }
    if (elapsed >= timeoutMs) {
      stopReason = 'timeout';
      break;
    }
    if (elapsed >= durationMs) {
      stopReason = 'duration';
      break;
    }
    await sleep(Math.min(pollMs, Math.max(1, durationMs - elapsed)));
    const s = (await t.showStats())?.[0];
    if (!s) continue;
    samples.push({ t: Date.now() - t0, stats: s });
    if (
      (phase.untilTxPackets !== undefined && s.txPackets >= phase.untilTxPackets) ||
      (phase.untilRxPackets !== undefined && s.rxPackets >= phase.untilRxPackets)
    ) {
      stopReason = 'count';
      break;
    }
    if (phase.until?.(s)) {
      stopReason = 'until';
      break;
    }
  }
  const forwardingMs = Date.now() - t0;
  const mark = t.stdout.length;
  const ports = (await t.showStats('stop')) ?? [];
  const streams = parseStreamStats(t.stdout.slice(mark));
  const stats = ports[0] ?? null;
  return { forwardMode: phase.forwardMode, stopReason, samples, forwardingMs, stats, ports, forward: parseForwardStats(t.stdout), streams };
}

/**
 * Runs testpmd as a virtio-user front-end on `opts.socketPath` through its phases, stops it cleanly
 * (`stop`, `show port stats 0`, `quit`; SIGINT then SIGKILL if it does not exit) and returns its
 * counters. Never leaves testpmd running. Does not throw when testpmd fails to start or exits
 * early: `started`, the phases' `stopReason` and `output` say what happened.
 */
export async function runTestpmd(opts: TestpmdOptions): Promise<TestpmdResult> {
  const prefix = `vhu${process.pid}_${++sequence}_${Math.random().toString(36).slice(2, 8)}`;
  const args = testpmdArgs(opts, prefix);
  const command = `${TESTPMD} ${shellQuote(args)}`;
  const pollMs = opts.pollMs ?? 200;

  const child = spawn('stdbuf', ['-oL', '-eL', TESTPMD, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  const t = new TestpmdSession(child, 1 + (opts.moreSocketPaths?.length ?? 0));
  const phases: PhaseResult[] = [];
  let started = false;
  try {
    if (await t.waitFor(() => t.stdout.includes('testpmd> '), opts.startupTimeoutMs ?? 20_000)) {
      for (const [i, phase] of [opts as TestpmdPhase, ...(opts.thenPhases ?? [])].entries()) {
        if (t.exited) break;
        started = true;
        const result = await runPhase(t, phase, i, pollMs);
        phases.push(result);
        await opts.afterPhase?.(result, i);
      }
    }
    await t.quit();
  } finally {
    if (!t.exited) child.kill('SIGKILL');
    await t.exit;
    cleanupPrefix(prefix);
  }
  const ports = started ? t.lastStats() : [];
  const first = phases[0];
  return {
    command,
    started,
    phases,
    stats: ports[0] ?? null,
    ports,
    forward: phases.length > 0 ? phases[phases.length - 1].forward : null,
    forwardPorts: phases.length > 0 ? Array.from({ length: t.ports }, (_, p) => parseForwardStats(t.stdout, p)) : [],
    stopReason: first?.stopReason ?? 'not-started',
    samples: first?.samples ?? [],
    forwardingMs: first?.forwardingMs ?? 0,
    exitCode: t.exitCode,
    signal: t.signal,
    output: t.output,
  };
}

/** The final counters of a run, or an Error carrying the command and output. */
export function requireStats(r: TestpmdResult): PortStats {
  if (r.stats) return r.stats;
  throw new Error(`testpmd printed no final port statistics (${describeRun(r)})`);
}

/** A one-line summary plus testpmd's output, for assertion messages. */
export function describeRun(r: TestpmdResult): string {
  return (
    `started=${r.started} stop=${r.stopReason} exit=${r.exitCode ?? r.signal} ` +
    `forwarding ${r.forwardingMs} ms\ncommand: ${r.command}\n--- testpmd output ---\n${r.output}`
  );
}

/**
 * testpmd's TX frames per second in phase `index` of a run: the frames it sent between the phase's
 * `start` and `stop` over that time. (Rates between polled samples are noisy: both testpmd lcores
 * share one CPU, so the main lcore answers `show port stats` with a variable delay.)
 */
export function txRate(r: TestpmdResult, index = 0): number {
  const phase = r.phases[index];
  if (!phase?.stats || phase.forwardingMs <= 0) return 0;
  const before = index > 0 ? (r.phases[index - 1].stats?.txPackets ?? 0) : 0;
  return ((phase.stats.txPackets - before) * 1000) / phase.forwardingMs;
}
