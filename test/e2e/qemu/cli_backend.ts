/**
 * Our back-end as a separate process, the way a user runs it: `vhost-user net ARGS...` (dist/cli.js),
 * optionally inside a network namespace, with its log kept and searchable, so that a test can SIGKILL it
 * under a running guest and start another.
 */
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { argvInNetns, spawnTracked } from '../../../lib/guest/processes';

const CLI = path.resolve(__dirname, '../../../dist/cli.js');

export interface CliBackend {
  readonly process: ChildProcess;
  /** Date.now() when it was spawned. */
  readonly startedAt: number;
  /** Its stdout and stderr so far. */
  output(): string;
  /** Resolves with Date.now() when `re` first matches its output; rejects if it exits first or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs: number): Promise<number>;
  /** Sends `signal` (default SIGTERM); resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Spawns `node dist/cli.js net ARGS...`, in `netns` if given. */
export function startCliBackend(args: readonly string[], netns?: string): CliBackend {
  const child = spawnTracked(argvInNetns(netns, [process.execPath, CLI, 'net', ...args]), { stdio: ['ignore', 'pipe', 'pipe'] });
  const startedAt = Date.now();
  let out = '';
  const watchers = new Set<() => void>();
  const add = (d: Buffer) => {
    out += d.toString();
    for (const w of [...watchers]) w();
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let gone = false;
  void exited.then(() => {
    gone = true;
    for (const w of [...watchers]) w();
  });
  return {
    process: child,
    startedAt,
    output: () => out,
    waitFor: (re, timeoutMs) =>
      new Promise<number>((resolve, reject) => {
        const check = () => {
          if (!re.test(out) && !gone) return;
          watchers.delete(check);
          clearTimeout(timer);
          if (re.test(out)) resolve(Date.now());
          else reject(new Error(`the back-end exited (${child.exitCode ?? child.signalCode}) before ${re} appeared:\n${out}`));
        };
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`no ${re} from the back-end within ${timeoutMs} ms:\n${out}`));
        }, timeoutMs);
        watchers.add(check);
        check();
      }),
    kill: (signal = 'SIGTERM') => {
      if (!gone) child.kill(signal);
      return exited;
    },
  };
}
