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
  /**
   * The longest time without a reply (ms) around [from, to]: between consecutive replies of which the
   * later one came after `from`, and from the last reply to `to`. Infinity without any reply after `from`.
   */
  maxGap(from: number, to: number): number;
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
    maxGap(from, to) {
      const after = replies.findIndex((r) => r.at > from);
      if (after < 0) return Infinity;
      let gap = 0;
      for (let i = Math.max(after, 1); i < replies.length && replies[i - 1].at < to; i++)
        gap = Math.max(gap, replies[i].at - replies[i - 1].at);
      const last = [...replies].reverse().find((r) => r.at <= to);
      return Math.max(gap, to - (last?.at ?? from));
    },
    stop: () => void child.kill('SIGTERM'),
  };
}
