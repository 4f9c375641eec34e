/** Latency: a single-frame ping-pong with our driver against each back-end (returning it through its loopback or macswap). */
import { ourStatsDelta } from '../backends';
import type { Options } from '../cli';
import type { Code } from '../host';
import type { LatencyResult } from '../ours_frontend';
import type { LatencyRun } from '../types';
import { runOursFrontend } from './ours_child';
import { startBackendUnderTest, workerArgs } from './peers';

export async function runLatency(opts: Options, code: Code, lat: LatencyRun, socketPath: string): Promise<void> {
  const be = await startBackendUnderTest(opts, code, {
    kind: lat.backend,
    socketPath,
    extraArgs: workerArgs(opts, lat.worker),
    forwardMode: 'macswap',
  });
  try {
    const { result, s0, s1 } = await runOursFrontend(
      opts,
      code,
      be,
      ['--mode', 'latency', '--size', String(lat.size), '--queue-size', '256', '--count', String(opts.latencyCount)],
      60_000,
    );
    const r = result as LatencyResult;
    Object.assign(lat, {
      count: r.count,
      lost: r.lost,
      minUs: r.minUs,
      p50Us: r.p50Us,
      p90Us: r.p90Us,
      p99Us: r.p99Us,
      p999Us: r.p999Us,
      maxUs: r.maxUs,
      meanUs: r.meanUs,
      features: r.features,
    });
    if (s0 && s1) {
      const wall = Number(s1.t - s0.t) / 1e9;
      lat.backendCpuUtilisation = (s1.cpu - s0.cpu) / wall;
      lat.foreignLoadDuring = Math.max(0, (s1.systemBusy - s0.systemBusy - (s1.cpu - s0.cpu) - (s1.ownOther - s0.ownOther)) / wall);
      if (s0.ours && s1.ours) {
        const d = ourStatsDelta(s0.ours, s1.ours);
        const pings = Math.max(1, d.tx.packets);
        lat.oursPerPing = { txKicks: d.tx.kicks / pings, rxKicks: d.rx.kicks / pings, calls: (d.tx.calls + d.rx.calls) / pings };
      }
    }
  } finally {
    await be.stop();
  }
}
