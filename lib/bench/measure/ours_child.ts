/** Our own front-end (VirtioNetDriver, lib/bench/ours_frontend.ts) as a pinned child process. */
import { spawn } from 'node:child_process';
import type { BackendProcess } from '../backends';
import type { Options } from '../cli';
import type { Code } from '../host';
import type { FrontendResult } from '../ours_frontend';
import { excerpt } from './peers';
import { snapshot, type Snapshot } from './snapshot';

/** The child's result, with the back-end snapshots taken when it said it started and ended measuring. */
export interface ChildRun {
  result: FrontendResult;
  s0: Snapshot | null;
  s1: Snapshot | null;
}

export async function runOursFrontend(opts: Options, code: Code, be: BackendProcess, args: string[], timeoutMs: number): Promise<ChildRun> {
  const child = spawn(
    'taskset',
    ['-c', String(opts.cpuFrontend), process.execPath, code.frontendScript, '--socket', be.socketPath, ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: code.env,
    },
  );
  let out = '';
  let err = '';
  let s0: Snapshot | null = null;
  let s1: Snapshot | null = null;
  let pending: Promise<void> = Promise.resolve();
  child.stdout.on('data', (d: Buffer) => {
    const text = d.toString('utf8');
    out += text;
    const pids = child.pid ? [child.pid] : [];
    if (text.includes('MEASURE_START')) pending = pending.then(async () => void (s0 = await snapshot(be, pids)));
    if (text.includes('MEASURE_END')) pending = pending.then(async () => void (s1 = await snapshot(be, pids)));
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exitCode = await new Promise<number | null>((resolve) => {
    child.once('error', (e) => {
      err += e.message;
      resolve(-1);
    });
    child.once('close', (c) => resolve(c));
  });
  clearTimeout(timer);
  await pending;
  const line = out.split('\n').find((l) => l.startsWith('{'));
  if (exitCode !== 0 || !line)
    throw new Error(`our front-end failed (exit ${exitCode}): ${excerpt(err || out)}\n--- back-end output ---\n${excerpt(be.output())}`);
  return { result: JSON.parse(line) as FrontendResult, s0, s1 };
}
