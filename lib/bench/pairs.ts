/**
 * Queue pairs as a benchmark dimension: the `--pairs` list, each pair's share of a run's frames, and
 * how evenly the pairs were served (fairness).
 *
 * Per-pair counts come from the front-end: testpmd prints, at `stop`, one "Forward Stats for RX
 * Port= 0/Queue= q -> TX Port= 0/Queue= q" block per stream when it forwards more than one stream
 * (one stream per queue pair here), with the counters of that phase alone. (No imports: testpmd.ts
 * uses this file.)
 */

/** The most pairs the benchmark runs (testpmd and our CLI take more; two CPUs gain nothing from it). */
export const MAX_BENCH_PAIRS = 8;

/** One stream's counters from testpmd's `stop` output. */
export interface StreamStats {
  rxQueue: number;
  txQueue: number;
  rxPackets: number;
  txPackets: number;
  txDropped: number;
}

/** One queue pair's share of a run: frames of the mode's figure, and their rate. */
export interface PairFigure {
  pair: number;
  packets: number;
  mpps: number;
}

/** How evenly the pairs were served: Jain's index (1 = equal, 1/n = one pair had all) and slowest / fastest. */
export interface Fairness {
  jain: number;
  minMax: number;
}

const STREAM_BLOCK =
  /Forward Stats for RX Port=\s*(\d+)\/Queue=\s*(\d+) -> TX Port=\s*(\d+)\/Queue=\s*(\d+)\s*-+\s*RX-packets:\s*(\d+)\s+TX-packets:\s*(\d+)\s+TX-dropped:\s*(\d+)/g;

/** Every per-stream block in a piece of testpmd's output (streams that moved nothing are not printed). */
export function parseStreamStats(output: string): StreamStats[] {
  return [...output.matchAll(STREAM_BLOCK)].map((m) => ({
    rxQueue: Number(m[2]),
    txQueue: Number(m[4]),
    rxPackets: Number(m[5]),
    txPackets: Number(m[6]),
    txDropped: Number(m[7]),
  }));
}

/** Parses `--pairs 1,2`; returns a one-line complaint for anything else. */
export function parsePairs(value: string): number[] | string {
  const out = value.split(',').map((s) => s.trim());
  const bad = out.find((s) => !/^[0-9]+$/.test(s) || Number(s) < 1 || Number(s) > MAX_BENCH_PAIRS);
  if (bad !== undefined) return `--pairs takes queue pair counts 1..${MAX_BENCH_PAIRS}, got '${bad}'`;
  const pairs = out.map(Number);
  if (new Set(pairs).size !== pairs.length) return '--pairs lists a count twice';
  return pairs;
}

/**
 * Each pair's frames of the run's figure ('rx': received, for io and rxonly; 'tx': sent, for txonly
 * and flowgen) over `seconds`; a pair without a block moved nothing.
 */
export function pairFigures(counted: 'rx' | 'tx', pairs: number, streams: StreamStats[], seconds: number): PairFigure[] {
  const received = counted === 'rx';
  return Array.from({ length: pairs }, (_, pair) => {
    const s = streams.find((x) => (received ? x.rxQueue : x.txQueue) === pair);
    const packets = s ? (received ? s.rxPackets : s.txPackets) : 0;
    return { pair, packets, mpps: seconds > 0 ? packets / seconds / 1e6 : 0 };
  });
}

/** Jain's fairness index and slowest / fastest of the pairs' rates; null for fewer than two pairs or no traffic. */
export function fairness(rates: number[]): Fairness | null {
  if (rates.length < 2) return null;
  const sum = rates.reduce((a, b) => a + b, 0);
  const squares = rates.reduce((a, b) => a + b * b, 0);
  const max = Math.max(...rates);
  if (!(sum > 0) || !(max > 0)) return null;
  return { jain: (sum * sum) / (rates.length * squares), minMax: Math.min(...rates) / max };
}
