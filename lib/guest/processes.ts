/**
 * The programs the QEMU harness runs: to completion (run, runOk) or in the background (spawnTracked),
 * inside a network namespace when asked (argvInNetns), and a last resort that no QEMU or TCP helper
 * outlives the test or benchmark process.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { findProgram } from '../bench/find_program';

export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export type RunOptions = SpawnOptions & { input?: Buffer };

/** Runs `cmd args...` to completion, feeding it `input`; never rejects on a non-zero exit. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const { input, ...spawnOpts } = opts;
    const child = spawn(cmd, args, { ...spawnOpts, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    child.stdin?.on('error', () => {}); // EPIPE if the program exits before reading all of it
    child.stdin?.end(input);
  });
}

/** Like run, but returns only stdout and throws with stderr when the program fails. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<Buffer> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Last resort if a test forgot its teardown: no QEMU (or netns helper) outlives the test process.
    process.once('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
}

/** Spawns argv[0] with the rest as its arguments; the caller owns the process, killAll() reaches it too. */
export function spawnTracked(argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(argv[0], argv.slice(1), opts);
  track(child);
  return child;
}

/** Kills every QEMU and TCP helper this process started that is still running. */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...liveChildren].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
          setTimeout(() => c.kill('SIGKILL'), 3000).unref();
        }),
    ),
  );
}

/** `argv` as run inside network namespace `netns` (`ip netns exec`); unchanged when `netns` is undefined. */
export function argvInNetns(netns: string | undefined, argv: readonly string[]): string[] {
  return netns === undefined ? [...argv] : [findProgram('ip') ?? 'ip', 'netns', 'exec', netns, ...argv];
}
