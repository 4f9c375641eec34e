/**
 * One run of each kind: a fresh back-end, a fresh front-end (and flooder), figures from the front-end's
 * port counters between the end of the warm-up and the end of the measured phase; the back-end's CPU,
 * its per-port counters (ours) and the other load of the machine over the same interval.
 */
import type { Code } from '../host';
import { pidsWithArg, processCpuSeconds, systemCpu, cpuOf } from '../measure/procstat';
import type { PortStats, TestpmdResult } from '../testpmd';
import { startSwitchBackend, type PortCounters, type RunningBackend, type SwitchPort } from './backends';
import { runPair, startFlooder, type FrontendSetup } from './frontend';
import type { FairRun, Flow, PairRun, PortShare, SwitchBackend } from './types';

export interface RunContext {
  code: Code;
  dir: string;
  cpuBackend: number;
  setup: FrontendSetup;
  warmup: number;
  seconds: number;
}

/** What is read at the end of each phase of the pair. */
interface Mark {
  t: number;
  backendCpu: number | null;
  busy: number;
  ownCpu: number;
  counters: PortCounters[] | null;
}

const flow = (packets: number, bytes: number, seconds: number): Flow => ({
  packets,
  bytes,
  mpps: packets / seconds / 1e6,
  gbps: (bytes * 8) / seconds / 1e9,
});

async function mark(be: RunningBackend, ownPids: () => number[]): Promise<Mark> {
  const counters = await be.counters();
  return {
    t: performance.now(),
    backendCpu: processCpuSeconds(be.pid),
    busy: systemCpu().busy,
    ownCpu: cpuOf([process.pid, be.pid, ...ownPids()]),
    counters,
  };
}

function shares(ports: SwitchPort[], a: PortCounters[] | null, b: PortCounters[] | null): PortShare[] | undefined {
  if (!a || !b) return undefined;
  const d = ports.map((p, i) => ({
    port: p.socket.replace(/^.*\//, ''),
    fromGuest: b[i].fromGuest - a[i].fromGuest,
    toGuest: b[i].toGuest - a[i].toGuest,
    drops: b[i].drops - a[i].drops,
    share: 0,
  }));
  const total = d.reduce((s, x) => s + x.fromGuest, 0);
  for (const x of d) x.share = total > 0 ? x.fromGuest / total : 0;
  return d;
}

function portsOf(ctx: RunContext, count: number): SwitchPort[] {
  return Array.from({ length: count }, (_, i) => ({ socket: `${ctx.dir}/s${i}.sock`, vlan: i < 2 ? 1 : 2 }));
}

interface PairFigures {
  seconds: number;
  forward: Flow;
  reverse: Flow;
  timeline: number[];
}

/** The measured phase's rates of the pair, or a one-line complaint with testpmd's story. */
function pairFigures(r: TestpmdResult): PairFigures | string {
  const [p0, p1] = r.phases;
  const a = p0?.ports;
  const b = p1?.ports;
  if (!r.started || !a || !b || a.length < 2 || b.length < 2)
    return `the front-end did not complete both phases (phases=${r.phases.length}, exit=${r.exitCode ?? r.signal}): ${r.output.slice(-1500)}`;
  const seconds = p1.forwardingMs / 1000;
  const d = (x: PortStats, y: PortStats) => ({ packets: y.rxPackets - x.rxPackets, bytes: y.rxBytes - x.rxBytes });
  const fwd = d(a[1], b[1]);
  const rev = d(a[0], b[0]);
  if (fwd.packets <= 0 || rev.packets <= 0)
    return `no frame crossed the back-end in one direction (S0 -> S1 ${fwd.packets}, S1 -> S0 ${rev.packets})`;
  const timeline: number[] = [];
  let prev = { t: 0, n: a[0].rxPackets };
  for (const s of p1.samples) {
    if (s.t > prev.t) timeline.push(Number(((s.stats.rxPackets - prev.n) / ((s.t - prev.t) * 1000)).toFixed(3)));
    prev = { t: s.t, n: s.stats.rxPackets };
  }
  return { seconds, forward: flow(fwd.packets, fwd.bytes, seconds), reverse: flow(rev.packets, rev.bytes, seconds), timeline };
}

/** Runs the pair with marks at the end of its warm-up and of its measured phase. */
async function drivePair(ctx: RunContext, be: RunningBackend, sockets: [string, string], ownPids: () => number[]) {
  const marks: Mark[] = [];
  const r = await runPair(ctx.setup, sockets, ctx.warmup, ctx.seconds, async () => {
    marks.push(await mark(be, ownPids));
  });
  const figures = pairFigures(r);
  const [m0, m1] = marks;
  const wall = m0 && m1 ? (m1.t - m0.t) / 1000 : 0;
  const backendCpu = m0?.backendCpu != null && m1?.backendCpu != null && wall > 0 ? (m1.backendCpu - m0.backendCpu) / wall : null;
  const otherLoadDuring = m0 && m1 && wall > 0 ? Math.max(0, (m1.busy - m0.busy - (m1.ownCpu - m0.ownCpu)) / wall) : null;
  return { r, figures, backendCpu, otherLoadDuring, counters: [m0?.counters ?? null, m1?.counters ?? null] as const };
}

export async function measurePair(ctx: RunContext, backend: SwitchBackend, round: number, otherLoadBefore: number): Promise<PairRun> {
  const ports = portsOf(ctx, 2);
  const sockets: [string, string] = [ports[0].socket, ports[1].socket];
  const base = { kind: 'pair' as const, backend, size: ctx.setup.size, round, otherLoadBefore };
  const empty = { seconds: 0, forward: flow(0, 0, 1), reverse: flow(0, 0, 1), mpps: 0, gbps: 0, backendCpu: null, timeline: [] };
  let be: RunningBackend;
  try {
    be = await startSwitchBackend(backend, ports, ctx.cpuBackend, ctx.code.cli, ctx.code.env);
  } catch (err) {
    return { ...base, ...empty, otherLoadDuring: null, command: '', frontend: '', error: (err as Error).message };
  }
  try {
    const frontendPids = () => pidsWithArg(`path=${sockets[0]}`);
    const d = await drivePair(ctx, be, sockets, frontendPids);
    const common = { command: be.command, frontend: d.r.command, otherLoadDuring: d.otherLoadDuring };
    if (typeof d.figures === 'string') return { ...base, ...empty, ...common, error: d.figures };
    const f = d.figures;
    return {
      ...base,
      ...common,
      seconds: f.seconds,
      forward: f.forward,
      reverse: f.reverse,
      mpps: f.forward.mpps + f.reverse.mpps,
      gbps: f.forward.gbps + f.reverse.gbps,
      backendCpu: d.backendCpu,
      timeline: f.timeline,
      ports: shares(ports, d.counters[0], d.counters[1]),
    };
  } finally {
    await be.stop();
  }
}

/** Frames per second (Mpps) the flooder's ports sent and received over its forwarding phase. */
function flooderRates(r: TestpmdResult): { tx: number; rx: number } {
  const p = r.phases[0];
  if (!p || p.ports.length < 2 || p.forwardingMs <= 0) return { tx: 0, rx: 0 };
  const s = p.forwardingMs * 1000;
  return { tx: (p.ports[0].txPackets + p.ports[1].txPackets) / s, rx: (p.ports[0].rxPackets + p.ports[1].rxPackets) / s };
}

export async function measureFair(
  ctx: RunContext,
  backend: SwitchBackend,
  flooding: boolean,
  round: number,
  otherLoadBefore: number,
): Promise<FairRun> {
  const ports = portsOf(ctx, 4);
  const pair: [string, string] = [ports[0].socket, ports[1].socket];
  const base = {
    kind: 'fair' as const,
    backend,
    size: ctx.setup.size,
    round,
    flooder: flooding ? ('flooding' as const) : ('idle' as const),
    otherLoadBefore,
  };
  const empty = { seconds: 0, pairMpps: 0, flooderTxMpps: 0, flooderRxMpps: 0, otherLoadDuring: null, command: '' };
  let be: RunningBackend;
  try {
    be = await startSwitchBackend(backend, ports, ctx.cpuBackend, ctx.code.cli, ctx.code.env);
  } catch (err) {
    return { ...base, ...empty, error: (err as Error).message };
  }
  try {
    const flooder = startFlooder(ctx.setup, [ports[2].socket, ports[3].socket], flooding);
    let d: Awaited<ReturnType<typeof drivePair>> | null = null;
    let error: string | undefined;
    try {
      if (!(await flooder.forwarding)) error = 'the flooder front-end did not start forwarding';
      else d = await drivePair(ctx, be, pair, () => [...pidsWithArg(`path=${pair[0]}`), ...pidsWithArg(`path=${ports[2].socket}`)]);
    } catch (err) {
      error = (err as Error).message;
    }
    const rates = flooderRates(await flooder.stop());
    const forwardStats = await be.stop();
    const f = d?.figures;
    if (typeof f === 'string') error = f;
    const out: FairRun = {
      ...base,
      seconds: f && typeof f !== 'string' ? f.seconds : 0,
      pairMpps: f && typeof f !== 'string' ? f.forward.mpps + f.reverse.mpps : 0,
      flooderTxMpps: rates.tx,
      flooderRxMpps: rates.rx,
      ports: d ? shares(ports, d.counters[0], d.counters[1]) : undefined,
      otherLoadDuring: d?.otherLoadDuring ?? null,
      command: be.command,
    };
    if (backend === 'testpmd') out.backendTxDropped = forwardStats.map((x) => x?.txDropped ?? NaN);
    if (error) out.error = error;
    return out;
  } finally {
    await be.stop(); // again after a throw: harmless once it has exited
  }
}
