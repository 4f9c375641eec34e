/**
 * The two switches under test, each one process alone on the back-end's CPU:
 *
 *  - 'switch' (A): `node dist/cli.js switch --socket S0 --socket S1 ...` under `taskset`: every port
 *    a device of one switch thread. Per-port counters on SIGUSR1 (its "statistics for S (vlan N):"
 *    blocks). `--socket S,vlan=2` keeps the fairness runs' two pairs apart.
 *  - 'testpmd' (B): DPDK testpmd, one `net_vhostN` per socket, io forwarding over paired ports (0 <-> 1,
 *    2 <-> 3): what a DPDK user builds to join two VMs. Both lcores on the CPU (`--lcores 0@C,1@C`) and
 *    the process under `taskset`; auto-started (`-a --disable-link-check`); a newline on its stdin makes
 *    it print its forward statistics and quit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { shellQuote } from '../shell_quote';
import { cleanupPrefix, parseForwardStats, type ForwardStats } from '../testpmd';
import { queueLabel } from '../../net/stats';
import type { SwitchBackend } from './types';

export interface SwitchPort {
  socket: string;
  /** Access VLAN on our switch (testpmd pairs ports by number instead). */
  vlan: number;
}

/** One port's counters from our switch: its device's queue 0 (to the guest) and queue 1 (from it). */
export interface PortCounters {
  toGuest: number;
  drops: number;
  fromGuest: number;
}

export interface RunningBackend {
  kind: SwitchBackend;
  pid: number;
  command: string;
  output(): string;
  /** Ours: every port's counters now (SIGUSR1), in the order of the ports; null for testpmd or no answer. */
  counters(): Promise<PortCounters[] | null>;
  /** Stops it; testpmd: its forward statistics per port. */
  stop(): Promise<(ForwardStats | null)[]>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function args(kind: SwitchBackend, ports: SwitchPort[], cpu: number, cli: string, prefix: string): string[] {
  if (kind === 'switch') {
    const sockets = ports.flatMap((p) => ['--socket', p.vlan === 1 ? p.socket : `${p.socket},vlan=${p.vlan}`]);
    return ['-c', String(cpu), process.execPath, cli, 'switch', ...sockets];
  }
  const vdevs = ports.flatMap((p, i) => ['--vdev', `net_vhost${i},iface=${p.socket},queues=1`]);
  return [
    '-c',
    String(cpu),
    'stdbuf',
    '-oL',
    '-eL',
    'dpdk-testpmd',
    '--lcores',
    `0@${cpu},1@${cpu}`,
    '--main-lcore',
    '0',
    '--no-pci',
    '--no-telemetry',
    `--file-prefix=${prefix}`,
    '--no-huge',
    '-m',
    '512',
    '--no-shconf',
    ...vdevs,
    '--',
    '--forward-mode=io',
    '-a',
    '--disable-link-check',
    '--total-num-mbufs=16384',
    '--burst=32',
    '--nb-cores=1',
  ];
}

/** The counters of port `socket` in the last complete statistics block our switch printed for it. */
export function parsePortCounters(text: string, socket: string): PortCounters | null {
  const header = `statistics for ${socket} (vlan `;
  const at = text.lastIndexOf(header);
  if (at < 0) return null;
  const body = text.slice(at);
  const counter = (q: number, name: string) => {
    const line = new RegExp(`${queueLabel(q).replace(/[()]/g, '\\$&')}:[^\\n]*\\b${name}=(\\d+)`).exec(body);
    return line ? Number(line[1]) : NaN;
  };
  const c = { toGuest: counter(0, 'packets'), drops: counter(0, 'drops'), fromGuest: counter(1, 'packets') };
  return Object.values(c).some(Number.isNaN) ? null : c;
}

let sequence = 0;

/** Starts a back-end on `ports` and resolves once every socket is served; throws with its output if not. */
export async function startSwitchBackend(
  kind: SwitchBackend,
  ports: SwitchPort[],
  cpu: number,
  cli: string,
  env: NodeJS.ProcessEnv,
): Promise<RunningBackend> {
  for (const p of ports) fs.rmSync(p.socket, { force: true });
  const prefix = `vhusw${process.pid}_${++sequence}`;
  const argv = args(kind, ports, cpu, cli, prefix);
  const command = `taskset ${shellQuote(argv)}`.replace(process.execPath, 'node');
  const child = spawn('taskset', argv, { stdio: ['pipe', 'pipe', 'pipe'], env });
  live.add(child);
  let out = '';
  let exited = false;
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stdin!.on('error', () => {});
  const exit = new Promise<void>((resolve) => {
    const done = () => {
      exited = true;
      live.delete(child);
      resolve();
    };
    child.once('error', (err) => {
      out += `\n[spawn error: ${err.message}]\n`;
      done();
    });
    child.once('close', done);
  });
  const waitFor = async (cond: () => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    while (!cond() && !exited && Date.now() < deadline) await sleep(10);
    return cond();
  };
  const stop = async () => {
    if (!exited) {
      if (kind === 'testpmd') child.stdin!.write('\n');
      else child.kill('SIGINT');
      if (!(await waitFor(() => exited, 10_000))) child.kill('SIGKILL');
    }
    await exit;
    if (kind === 'testpmd') cleanupPrefix(prefix);
    for (const p of ports) fs.rmSync(p.socket, { force: true });
    return kind === 'testpmd' ? ports.map((_, i) => parseForwardStats(out, i)) : [];
  };
  const banner = kind === 'switch' ? 'vhost-user: switching' : 'Press enter to exit';
  if (!(await waitFor(() => out.includes(banner) && ports.every((p) => fs.existsSync(p.socket)), 20_000))) {
    await stop();
    throw new Error(
      `${kind} did not get ready (${exited ? 'exited' : 'timeout'})\ncommand: ${command}\n--- output ---\n${out.slice(-3000)}`,
    );
  }
  const counters = async (): Promise<PortCounters[] | null> => {
    if (kind !== 'switch' || exited) return null;
    const mark = out.length;
    child.kill('SIGUSR1');
    // The switch's own line comes after every port's block: once it is there, all are complete.
    if (!(await waitFor(() => /\nswitch: \d+ MACs learnt/.test(out.slice(mark)), 2_000))) return null;
    const fresh = out.slice(mark);
    const all = ports.map((p) => parsePortCounters(fresh, p.socket));
    return all.every((c) => c !== null) ? (all as PortCounters[]) : null;
  };
  return { kind, pid: child.pid!, command, output: () => out, counters, stop };
}

/** Kills every back-end still running (for exit paths). */
export function killSwitchBackends(): void {
  for (const c of live) c.kill('SIGKILL');
}
