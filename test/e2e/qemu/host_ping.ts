/**
 * A ping from the host side (iputils `ping -D` in a network namespace) whose replies carry the host's
 * own timestamps: the guest's clock is no judge of a pause, least of all one across a live migration,
 * and under TCG its time drifts. Gaps between replies say how long the guest was unreachable.
 */
import type { ChildProcess } from 'node:child_process';
import { argvInNetns, spawnTracked } from '../../../lib/guest/processes';
import { requireTool } from './tools';

export interface PingReply {
  seq: number;
  /** When the reply arrived, in ms since the epoch (ping -D's timestamp, the host's clock). */
  at: number;
}

export interface HostPing {
  readonly process: ChildProcess;
  /** Replies so far, in arrival order. */
  readonly replies: PingReply[];
  /** The longest time (ms) within [from, to] without a reply: from `from` to the first reply, between replies, and to `to`. */
  longestSilence(from: number, to: number): number;
  stop(): void;
}

// "[1732873462.123456] 64 bytes from 10.0.2.15: icmp_seq=5 ttl=64 time=0.512 ms"
const REPLY = /^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+) /;

/** Pings `target` every `intervalSec` from inside `netns` until stop(). */
export function startHostPing(netns: string, target: string, intervalSec = 0.1): HostPing {
  const ping = requireTool('ping') ?? 'ping';
  const child = spawnTracked(argvInNetns(netns, [ping, '-D', '-n', '-i', String(intervalSec), target]), {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const replies: PingReply[] = [];
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const m = REPLY.exec(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (m) replies.push({ seq: Number(m[2]), at: Math.round(Number(m[1]) * 1000) });
    }
  });
  return {
    process: child,
    replies,
    longestSilence(from, to) {
      const times = [from, ...replies.map((r) => r.at).filter((at) => at > from && at < to), to];
      return Math.max(...times.slice(1).map((t, k) => t - times[k]));
    },
    stop: () => void child.kill('SIGTERM'),
  };
}
