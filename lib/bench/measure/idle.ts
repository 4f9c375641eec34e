/** Idle: the back-end's CPU with a connected front-end (ours, receive only) that sends nothing. */
import type { Options } from '../cli';
import type { Code } from '../host';
import type { IdleRun } from '../types';
import { runOursFrontend } from './ours_child';
import { startBackendUnderTest, workerArgs } from './peers';

export const IDLE_SECONDS = 3;

export async function runIdle(opts: Options, code: Code, idle: IdleRun, socketPath: string): Promise<void> {
  const be = await startBackendUnderTest(opts, code, {
    kind: idle.backend,
    socketPath,
    extraArgs: workerArgs(opts, idle.worker),
    forwardMode: 'macswap',
  });
  try {
    const { s0, s1 } = await runOursFrontend(
      opts,
      code,
      be,
      ['--mode', 'rx', '--seconds', String(IDLE_SECONDS), '--warmup', '0.5'],
      30_000,
    );
    if (!s0 || !s1) throw new Error('no CPU snapshots of the back-end');
    const wall = Number(s1.t - s0.t) / 1e9;
    idle.seconds = wall;
    idle.cpuUtilisation = (s1.cpu - s0.cpu) / wall;
  } finally {
    await be.stop();
  }
}
