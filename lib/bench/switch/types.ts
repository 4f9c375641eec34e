/** Shapes of `vhost-user bench --switch` results (bench/results/switch/*.json). */

/** A: our `vhost-user switch`; B: DPDK testpmd's io engine between vhost PMD ports. */
export type SwitchBackend = 'switch' | 'testpmd';
export const SWITCH_BACKENDS: readonly SwitchBackend[] = ['switch', 'testpmd'];

/** One direction of the measured interval, as the front-end counted it. */
export interface Flow {
  packets: number;
  bytes: number;
  mpps: number;
  gbps: number;
}

/** One back-end port's counters over the measured interval (ours: its device's queues; testpmd: none). */
export interface PortShare {
  port: string;
  /** Frames the switch took from the guest (its TX queue). */
  fromGuest: number;
  /** Frames the switch delivered to the guest (its RX queue). */
  toGuest: number;
  /** Copies to the guest lost for want of room (its RX drops). */
  drops: number;
  /** fromGuest over every port's fromGuest: the port's share of the switch's work. */
  share: number;
}

/** Pair runs: one front-end, two ports, io forwarding with a population injected by tx_first. */
export interface PairRun {
  kind: 'pair';
  backend: SwitchBackend;
  size: number;
  round: number;
  seconds: number;
  /** S0 -> S1 (port 1's RX) and S1 -> S0 (port 0's RX). */
  forward: Flow;
  reverse: Flow;
  /** Both directions together: the figure. */
  mpps: number;
  gbps: number;
  /** The back-end's CPU (1 = one core) over the measured interval. */
  backendCpu: number | null;
  otherLoadBefore: number;
  otherLoadDuring: number | null;
  /** Runs made for this one: more than 1 when other processes used more than 0.3 CPU meanwhile (the least disturbed is kept). */
  attempts?: number;
  /** Port 0's RX (S1 -> S0) Mpps at each poll of the measured phase. */
  timeline: number[];
  ports?: PortShare[];
  command: string;
  frontend: string;
  error?: string;
}

/** Fairness runs: the well-behaved pair (S0, S1) beside a second front-end on S2, S3, idle or flooding. */
export interface FairRun {
  kind: 'fair';
  backend: SwitchBackend;
  size: number;
  round: number;
  /** The second front-end's mode: rxonly (spins, sends nothing) or flowgen (floods broadcast). */
  flooder: 'idle' | 'flooding';
  seconds: number;
  /** The well-behaved pair, both directions. */
  pairMpps: number;
  /** What the flooder's ports sent and received over its whole run (it brackets the measured phase). */
  flooderTxMpps: number;
  flooderRxMpps: number;
  /** testpmd's software drops on the back-end side (forward statistics of the DPDK back-end), per port. */
  backendTxDropped?: number[];
  ports?: PortShare[];
  otherLoadBefore: number;
  otherLoadDuring: number | null;
  attempts?: number;
  command: string;
  error?: string;
}

export interface PairCell {
  size: number;
  switchMpps: number | null;
  testpmdMpps: number | null;
  switchGbps: number | null;
  testpmdGbps: number | null;
  /** Medians of each direction. */
  switchForward: number | null;
  switchReverse: number | null;
  testpmdForward: number | null;
  testpmdReverse: number | null;
  /** switch / testpmd of the medians; of the best rounds; within each round. */
  ratio: number | null;
  bestRatio: number | null;
  roundRatios: (number | null)[];
  switchRounds: number[];
  testpmdRounds: number[];
}

export interface FairCell {
  backend: SwitchBackend;
  size: number;
  idleMpps: number | null;
  floodingMpps: number | null;
  /** flooding / idle: what the well-behaved pair kept. */
  kept: number | null;
  flooderTxMpps: number | null;
}

export interface SwitchReport {
  kind: 'switch';
  startedAt: string;
  finishedAt: string;
  argv: string[];
  host: Record<string, unknown>;
  setup: Record<string, unknown>;
  pairRuns: PairRun[];
  fairRuns: FairRun[];
  pairCells: PairCell[];
  fairCells: FairCell[];
  errors: string[];
}
