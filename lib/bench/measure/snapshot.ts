/**
 * What a run measures of the back-end: two snapshots of its process (CPU, threads, context switches,
 * memory, our counters) and of the machine around it, and the run's figures from the pair.
 */
import { ourStatsDelta, speaksLikeOurCli, type BackendProcess, type OurStats } from '../backends';
import type { Direction, RunResult } from '../types';
import {
  contextSwitches,
  cpuOf,
  foreignLoad,
  memoryUse,
  processCpuSeconds,
  processSystemSeconds,
  systemCpu,
  threadCpu,
  type ThreadCpu,
} from './procstat';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Snapshot {
  t: bigint;
  cpu: number;
  sys: number;
  threads: ThreadCpu[];
  ctx: { voluntary: number; involuntary: number };
  ours: OurStats | null;
  memory: ReturnType<typeof memoryUse>;
  /** Busy CPU seconds of the whole machine, and of the processes of this benchmark (harness, front-end). */
  systemBusy: number;
  steal: number;
  ownOther: number;
}

export async function snapshot(be: BackendProcess, frontendPids: number[]): Promise<Snapshot> {
  const t = process.hrtime.bigint();
  const cpu = processCpuSeconds(be.pid) ?? NaN;
  const kernel = processSystemSeconds(be.pid) ?? NaN;
  const sys = systemCpu();
  const systemBusy = sys.busy;
  const steal = sys.steal;
  const ownOther = cpuOf([process.pid, ...frontendPids]);
  const threads = threadCpu(be.pid);
  const ctx = contextSwitches(be.pid);
  const memory = memoryUse(be.pid);
  const ours = speaksLikeOurCli(be.kind) ? await be.stats() : null;
  return { t, cpu, sys: kernel, threads, ctx, ours, memory, systemBusy, steal, ownOther };
}

export function direction(packets: number, bytes: number, seconds: number): Direction {
  return { packets, bytes, mpps: packets / seconds / 1e6, gbps: (bytes * 8) / seconds / 1e9 };
}

/** Fills the CPU, memory and our-counter fields of a run from two snapshots. */
export function fillBackendFigures(run: RunResult, be: BackendProcess, s0: Snapshot, s1: Snapshot, seconds: number, frames: number): void {
  const wall = Number(s1.t - s0.t) / 1e9;
  const cpuSeconds = s1.cpu - s0.cpu;
  const utilisation = cpuSeconds / wall;
  const mpkt = frames / 1e6;
  const before = new Map(s0.threads.map((t) => [t.tid, t.seconds]));
  const threads = s1.threads
    .map((t) => ({ name: t.tid === be.pid ? `main(${t.comm})` : t.comm, seconds: t.seconds - (before.get(t.tid) ?? 0) }))
    .filter((t) => t.seconds > 0)
    .sort((a, b) => b.seconds - a.seconds)
    .slice(0, 6);
  run.cpu = {
    seconds: cpuSeconds,
    systemShare: cpuSeconds > 0 ? (s1.sys - s0.sys) / cpuSeconds : NaN,
    utilisation,
    // CPU per frame over the forwarding interval: the utilisation measured between the snapshots
    // times the forwarding time, over the frames moved in it.
    perMpkt: mpkt > 0 ? (utilisation * seconds) / mpkt : NaN,
    threads,
    voluntaryPerMpkt: mpkt > 0 ? (s1.ctx.voluntary - s0.ctx.voluntary) / mpkt : NaN,
    involuntaryPerMpkt: mpkt > 0 ? (s1.ctx.involuntary - s0.ctx.involuntary) / mpkt : NaN,
  };
  const mem = s1.memory;
  if (mem) run.memory = { rssMiB: mem.rssKiB / 1024, anonMiB: mem.anonKiB / 1024, sharedMiB: mem.sharedKiB / 1024 };
  // Everything else that ran on the machine meanwhile, in CPUs (0 = nothing but this benchmark).
  run.foreignLoadDuring = Math.max(0, (s1.systemBusy - s0.systemBusy - cpuSeconds - (s1.ownOther - s0.ownOther)) / wall);
  // Time the hypervisor took our vCPUs away (this machine is a VM), in CPUs.
  run.stealDuring = (s1.steal - s0.steal) / wall;
  if (s0.ours && s1.ours) {
    const d = ourStatsDelta(s0.ours, s1.ours);
    run.ours = {
      delta: d,
      txKicksPerPkt: d.tx.packets > 0 ? d.tx.kicks / d.tx.packets : NaN,
      rxKicksPerPkt: d.rx.packets > 0 ? d.rx.kicks / d.rx.packets : NaN,
      callsPerPkt: Math.max(d.tx.packets, d.rx.packets) > 0 ? (d.tx.calls + d.rx.calls) / Math.max(d.tx.packets, d.rx.packets) : NaN,
    };
  }
}

/** Waits (up to `maxS`) for other processes to leave the machine mostly idle; returns the last load seen. */
export async function waitQuiet(maxS: number): Promise<number> {
  const deadline = Date.now() + maxS * 1000;
  let load = await foreignLoad([], 300);
  while (load > 0.2 && Date.now() < deadline) {
    await sleep(700);
    load = await foreignLoad([], 300);
  }
  return load;
}
