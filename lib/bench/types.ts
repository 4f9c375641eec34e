/** The shapes of the benchmark's results (what bench/results/*.json holds). */
import type { BackendKind, OurStats } from './backends';
import type { RingLayout } from './layout';
import type { Fairness, PairFigure } from './pairs';

/**
 * Front-end forwarding modes (testpmd's names):
 *  - txonly: guest TX only; the front-end never reads its RX ring.
 *  - flowgen: guest TX, with every frame coming back received and freed (testpmd's flowgen engine
 *    receives and drops a burst before each burst it sends): guest TX against a back-end that
 *    returns frames without stalling the sender.
 *  - rxonly: guest RX only; the DPDK back-end generates frames (its txonly engine).
 *  - io: loopback round trip: `start tx_first` injects a population of frames, then every frame the
 *    front-end receives it sends again.
 */
export type Mode = 'txonly' | 'flowgen' | 'rxonly' | 'io';
export const MODES: readonly Mode[] = ['io', 'flowgen', 'txonly', 'rxonly'];

export type FrontendKind = 'dpdk' | 'ours';

export interface Direction {
  packets: number;
  bytes: number;
  mpps: number;
  /** L2 frame bits per second (no FCS, preamble or inter-frame gap), in Gbit/s. */
  gbps: number;
}

/** One back-end measured once in one cell (one round). */
export interface RunResult {
  cell: string;
  mode: Mode;
  size: number;
  queueSize: number;
  /** The ring layout the cell asks for (front-end packed_vq=0|1). */
  layout: RingLayout;
  /** Queue pairs (front-end queues=N, back-end queues=N). */
  pairs: number;
  backend: BackendKind;
  round: number;
  /** The layout the back-end negotiated (from its log of SET_FEATURES); null when it did not say. */
  negotiatedLayout?: RingLayout | null;
  /** The virtio features the back-end negotiated, hexadecimal. */
  features?: string;
  /** Pairs > 1: each pair's frames of the mode's figure (testpmd's per-stream counters of the measured phase). */
  perPair?: PairFigure[];
  /** Pairs > 1: how evenly the pairs' rates were served. */
  fairness?: Fairness;
  /** When the (kept attempt of the) run started. */
  startedAt?: string;
  /** The rate changed by more than 25 % between polls within the measured interval (see timeline). */
  unsteady?: boolean;
  /** Attempts made (runs disturbed by other load are repeated; the least disturbed attempt is kept). */
  attempts?: number;
  /** Set when the run was not made (and why). */
  skipped?: string;
  /** Set when the run failed. */
  error?: string;
  /** The measured interval (front-end `start` to `stop` of the measured phase), seconds. */
  seconds?: number;
  /** Frames the front-end sent (guest TX) and received (guest RX) in the measured interval. */
  guestTx?: Direction;
  guestRx?: Direction;
  /** The figure this mode is about (see Mode), Mpps and Gbit/s. */
  mpps?: number;
  gbps?: number;
  /** Mpps of the mode's figure between successive polls of the front-end's counters (about 0.5 s apart). */
  timeline?: number[];
  /** No frame moved for a second or more: the run was stopped early. */
  stalled?: boolean;
  /** Front-end frames its engine could not enqueue (TX ring full) in the measured phase. */
  frontendTxDropped?: number;
  /** Back-end CPU over the measured interval. */
  cpu?: {
    seconds: number;
    /** Share of that CPU time spent in the kernel (stime / (utime + stime)). */
    systemShare: number;
    /** CPU seconds per wall second (1 = one CPU busy). */
    utilisation: number;
    /** CPU seconds per million frames handled (max of guest TX and guest RX frames). */
    perMpkt: number;
    /** Per thread, seconds, largest first (name as in /proc/<pid>/task/<tid>/comm; 'main' = the process's first thread). */
    threads: { name: string; seconds: number }[];
    /** Context switches per million frames (voluntary: the thread slept, e.g. in epoll_wait). */
    voluntaryPerMpkt: number;
    involuntaryPerMpkt: number;
  };
  /** Back-end memory at the end of the measured interval, MiB. */
  memory?: { rssMiB: number; anonMiB: number; sharedMiB: number };
  /** Ours: per-queue counters over the measured interval, and per frame. */
  ours?: {
    delta: OurStats;
    txKicksPerPkt: number;
    rxKicksPerPkt: number;
    callsPerPkt: number;
  };
  /** DPDK back-end: its forward statistics for the whole run (RX from the guest, TX to the guest). */
  dpdkForward?: { rxPackets: number; txPackets: number; txDropped: number };
  /** Busy CPU (in CPUs) of other processes on the machine, sampled just before the run. */
  foreignLoad?: number;
  /** The same over the measured interval (machine busy time minus back-end, front-end and harness). */
  foreignLoadDuring?: number;
  /** Cache-line round trip between the back-end's CPU and the front-end's just before the run, ns (see cpu_probe.ts). */
  crossCpuNs?: number;
  /** CPU time the hypervisor stole from this VM over the measured interval, in CPUs. */
  stealDuring?: number;
  /** Notes on how to read this run. */
  notes?: string[];
}

/** How our back-end's worker was run: adaptive busy-poll (the default) or purely event-driven (--poll-us 0). */
export type OursWorker = 'adaptive' | 'event-driven';

export interface LatencyRun {
  size: number;
  backend: BackendKind;
  /** Ours only. */
  worker?: OursWorker;
  round: number;
  error?: string;
  count?: number;
  lost?: number;
  minUs?: number;
  p50Us?: number;
  p90Us?: number;
  p99Us?: number;
  p999Us?: number;
  maxUs?: number;
  meanUs?: number;
  /** Virtio features our driver agreed with the back-end. */
  features?: string;
  foreignLoad?: number;
  foreignLoadDuring?: number;
  attempts?: number;
  crossCpuNs?: number;
  /** Back-end CPU seconds per second while the ping-pong ran (a polling back-end shows 1). */
  backendCpuUtilisation?: number;
  /** Ours: kicks and calls per round trip (warm-up pings included). */
  oursPerPing?: { txKicks: number; rxKicks: number; calls: number };
}

export interface Aggregate {
  runs: number;
  /** Median over rounds of the mode's figure. */
  mpps: number | null;
  mppsMin: number | null;
  mppsMax: number | null;
  gbps: number | null;
  txMpps: number | null;
  rxMpps: number | null;
  cpuPerMpkt: number | null;
  cpuUtilisation: number | null;
  rssMiB: number | null;
  stalled: boolean;
  /** Ours only. */
  txKicksPerPkt?: number | null;
  rxKicksPerPkt?: number | null;
  callsPerPkt?: number | null;
  voluntaryPerMpkt?: number | null;
  note?: string;
}

export interface CellSummary {
  cell: string;
  mode: Mode;
  size: number;
  queueSize: number;
  layout: RingLayout;
  pairs: number;
  /** Pairs > 1: median over rounds of Jain's index and of slowest / fastest pair, per back-end. */
  fairness?: Partial<Record<BackendKind, Fairness | null>>;
  ours: Aggregate | null;
  dpdk: Aggregate | null;
  /** ours / DPDK of the median Mpps, null when either is missing. */
  ratio: number | null;
  /** ours / DPDK of the best run's Mpps (each side's fastest round). */
  bestRatio: number | null;
  /** Range of the cross-CPU cache-line round trip over the cell's runs, ns. */
  crossCpuNs: [number, number] | null;
  /** ours / DPDK of CPU seconds per million frames. */
  cpuRatio: number | null;
  /** ours / DPDK Mpps within each round (runs adjacent in time). */
  roundRatios: number[];
  /** With the js back-end (--backends ...,js): the JS echo's figures and its ratios. */
  js?: JsFigures;
}

/** The js back-end (the js port, MAC-swap echo in JavaScript) in a cell, against the native loopback and DPDK. */
export interface JsFigures {
  aggregate: Aggregate | null;
  /** js / ours (the native loopback) of the median Mpps, and of the best rounds. */
  perOurs: number | null;
  bestPerOurs: number | null;
  /** js / DPDK of the median Mpps. */
  perDpdk: number | null;
  /** js / ours Mpps within each round (runs adjacent in time). */
  roundRatios: number[];
}

/**
 * The issue's headline per (queue size, mode, size, pairs): our faster layout against DPDK's faster
 * layout (each side's best median over the layouts measured), and the ratio of the two.
 */
export interface LayoutRatio {
  queueSize: number;
  mode: Mode;
  size: number;
  pairs: number;
  ours: { layout: RingLayout; mpps: number } | null;
  dpdk: { layout: RingLayout; mpps: number } | null;
  /** ours / DPDK of the two faster layouts' medians. */
  ratio: number | null;
  /** Layouts of the group a back-end has no figure for (failed, e.g. not negotiated, or not run): "ours packed". */
  unmeasured: string[];
}

export interface LatencySummary {
  size: number;
  /** Ours with the adaptive worker (default) and purely event-driven. */
  ours: { p50Us: number; p99Us: number; runs: number } | null;
  oursEvent: { p50Us: number; p99Us: number; runs: number } | null;
  dpdk: { p50Us: number; p99Us: number; runs: number } | null;
  /** ours (adaptive) / DPDK of the median p50 and p99. */
  p50Ratio: number | null;
  p99Ratio: number | null;
}

/** A connected front-end that sends nothing: what the back-end costs while idle. */
export interface IdleRun {
  backend: BackendKind;
  worker?: OursWorker;
  round: number;
  seconds?: number;
  /** Back-end CPU seconds per second (1 = one CPU busy). */
  cpuUtilisation?: number;
  error?: string;
}

export interface IdleSummary {
  backend: BackendKind;
  worker?: OursWorker;
  runs: number;
  /** Median over rounds, in CPUs. */
  cpuUtilisation: number;
}

export interface Report {
  version: 1;
  startedAt: string;
  finishedAt: string;
  durationSeconds: number;
  command: string;
  host: {
    nproc: number;
    cpuModel: string;
    kernel: string;
    node: string;
    dpdk: string | null;
    commit: string | null;
    /** Modification times of the native addon and dist/cli.js the runs used. */
    build: string;
  };
  setup: {
    frontend: FrontendKind;
    frontendDescription: string;
    backends: BackendKind[];
    backendCommands: Partial<Record<BackendKind, string>>;
    cpuBackend: number;
    cpuFrontend: number;
    memory: string;
    mrgRxbuf: boolean;
    inOrder: boolean;
    seconds: number;
    warmupSeconds: number;
    rounds: number;
    sizes: number[];
    queueSizes: number[];
    modes: Mode[];
    layouts: RingLayout[];
    pairs: number[];
    notes: string[];
  };
  runs: RunResult[];
  cells: CellSummary[];
  /** Ours' faster layout against DPDK's faster layout (empty before layouts were a dimension). */
  layoutRatios?: LayoutRatio[];
  latencyRuns: LatencyRun[];
  latency: LatencySummary[];
  idleRuns: IdleRun[];
  idle: IdleSummary[];
  errors: string[];
}
