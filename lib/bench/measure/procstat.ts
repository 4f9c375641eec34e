/**
 * What the benchmark reads from /proc: CPU time of a process and of each of its threads, its
 * resident memory, context switches, and the whole machine's busy time (to see other load).
 *
 * CPU time is utime + stime (fields 14 and 15 of /proc/<pid>/stat, in clock ticks of
 * sysconf(_SC_CLK_TCK), 100 per second on Linux). /proc/<pid>/stat counts every thread of the
 * process, dead ones included.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

let clkTck = 0;

/** Clock ticks per second for /proc times (getconf CLK_TCK, 100 when that fails). */
export function clockTicks(): number {
  if (clkTck === 0) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number.parseInt(r.stdout ?? '', 10);
    clkTck = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clkTck;
}

/** Fields of a /proc stat line after the `(comm)` field: index 0 is field 3 (state). */
function statFields(text: string): { comm: string; rest: string[] } {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  return {
    comm: text.slice(open + 1, close),
    rest: text
      .slice(close + 2)
      .trim()
      .split(/\s+/),
  };
}

function readStat(path: string): { comm: string; ticks: number; systemTicks: number } | null {
  try {
    const { comm, rest } = statFields(fs.readFileSync(path, 'utf8'));
    // utime is field 14, stime field 15: rest[] starts at field 3.
    return { comm, ticks: Number(rest[11]) + Number(rest[12]), systemTicks: Number(rest[12]) };
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far, or null when it is gone. */
export function processCpuSeconds(pid: number): number | null {
  const s = readStat(`/proc/${pid}/stat`);
  return s ? s.ticks / clockTicks() : null;
}

/** The kernel's share of that (stime): system calls, page faults, interrupts taken in the process. */
export function processSystemSeconds(pid: number): number | null {
  const s = readStat(`/proc/${pid}/stat`);
  return s ? s.systemTicks / clockTicks() : null;
}

export interface ThreadCpu {
  tid: number;
  comm: string;
  seconds: number;
}

/** CPU seconds of each live thread of a process. */
export function threadCpu(pid: number): ThreadCpu[] {
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: ThreadCpu[] = [];
  for (const tid of tids) {
    const s = readStat(`/proc/${pid}/task/${tid}/stat`);
    if (s) out.push({ tid: Number(tid), comm: s.comm, seconds: s.ticks / clockTicks() });
  }
  return out;
}

function statusField(pid: number, name: string): number | null {
  try {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export interface MemoryUse {
  /** VmRSS: resident set, KiB (anonymous + file + shared memory pages, so mapped guest memory the process touched counts). */
  rssKiB: number;
  /** RssAnon: the process's own private memory, KiB. */
  anonKiB: number;
  /** RssFile + RssShmem: mapped files and shared memory (hugetlbfs pages are not counted in VmRSS at all). */
  sharedKiB: number;
}

export function memoryUse(pid: number): MemoryUse | null {
  const rss = statusField(pid, 'VmRSS');
  if (rss === null) return null;
  return {
    rssKiB: rss,
    anonKiB: statusField(pid, 'RssAnon') ?? 0,
    sharedKiB: (statusField(pid, 'RssFile') ?? 0) + (statusField(pid, 'RssShmem') ?? 0),
  };
}

/** Voluntary + involuntary context switches summed over the live threads of a process. */
export function contextSwitches(pid: number): { voluntary: number; involuntary: number } {
  let voluntary = 0;
  let involuntary = 0;
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    // gone
  }
  for (const tid of tids) {
    try {
      const text = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(text)?.[1] ?? 0);
      involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    } catch {
      // thread gone
    }
  }
  return { voluntary, involuntary };
}

/**
 * Busy and total time of every CPU together since boot, in seconds (from the first line of
 * /proc/stat), and steal: time the hypervisor ran something else while this VM's vCPUs wanted to run.
 */
export function systemCpu(): { busy: number; total: number; steal: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user/nice)
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const steal = Number.isFinite(v[7]) ? v[7] : 0;
  return { busy: (total - idle - steal) / clockTicks(), total: total / clockTicks(), steal: steal / clockTicks() };
}

/** Pids of processes whose command line contains `needle` (e.g. a socket path only one process uses). */
export function pidsWithArg(needle: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.includes(needle)) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** CPU seconds used so far by the given processes together (threads included, children not). */
export function cpuOf(pids: number[]): number {
  let s = 0;
  for (const pid of pids) s += processCpuSeconds(pid) ?? 0;
  return s;
}

/**
 * Busy CPU seconds per second of everything on the machine except the given pids, sampled over
 * `ms`: how loaded the machine is by others (another engineer's tests, say).
 */
export async function foreignLoad(ownPids: number[], ms: number): Promise<number> {
  const s0 = systemCpu();
  const o0 = cpuOf([process.pid, ...ownPids]);
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, ms));
  const s1 = systemCpu();
  const o1 = cpuOf([process.pid, ...ownPids]);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return Math.max(0, (s1.busy - s0.busy - (o1 - o0)) / secs);
}
