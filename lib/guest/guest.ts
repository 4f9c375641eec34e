/**
 * A Linux guest under QEMU: the host's kernel plus the busybox initramfs (initramfs.ts), one virtio-net
 * NIC on a vhost-user socket (qemu_command.ts), and the scenarios its /init runs and reports on the
 * serial console (scenarios.ts, console.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { shellQuote } from '../bench/shell_quote';
import { GuestConsole, type ConsoleFollower } from './console';
import { buildInitramfs } from './initramfs';
import { argvInNetns, spawnTracked } from './processes';
import { qemuArgs, type GuestOptions } from './qemu_command';
import { waitForResult } from './scenarios';
import { toolOrThrow } from './tools';

export interface GuestExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What a test reads of a guest: its console and the results of its scenarios (guest.ts, migrating_guest.ts). */
export interface GuestView {
  /** The serial console so far (\r removed). */
  output(): string;
  /** QEMU's stderr so far. */
  stderr(): string;
  /**
   * Resolves with the first match of `re` in the console output from offset `since` (default 0) on,
   * searched in complete lines only (so `.*` never sees half a line); the match's `index` is an offset
   * into output(), e.g. the `since` of the next wait. Rejects after `timeoutMs` (default 30 s), when QEMU
   * exits first, or when the guest reports VHU-ERROR or a kernel panic.
   */
  waitFor(re: RegExp, timeoutMs?: number, since?: number): Promise<RegExpMatchArray>;
  /** Waits for `VHU-RESULT <scenario> k=v ...` and returns its fields. */
  result(scenario: string, timeoutMs?: number): Promise<Record<string, string>>;
}

export interface Guest extends GuestView {
  /** argv, QEMU first. */
  readonly args: readonly string[];
  /** The command line, shell-quoted, for logs. */
  readonly commandLine: string;
  /** Date.now() when QEMU was spawned. */
  readonly startedAt: number;
  readonly pid: number | undefined;
  /** Hands the console and QEMU's stderr so far to `f`, then every later piece as it comes. */
  follow(f: ConsoleFollower): void;
  /** Resolves when QEMU has exited and its output is collected. */
  readonly exited: Promise<GuestExit>;
  /** SIGTERM, then SIGKILL after 3 s; resolves when QEMU is gone. Safe to call more than once. */
  kill(): Promise<GuestExit>;
}

/** Feeds QEMU's output to `serial`; resolves when QEMU has exited (or could not be spawned). */
function collect(child: ChildProcess, serial: GuestConsole, program: string): Promise<GuestExit> {
  child.stdout?.setEncoding('utf8'); // a character split between chunks is decoded whole
  child.stdout?.on('data', (d: string) => serial.addOutput(d));
  child.stderr?.on('data', (d: Buffer) => serial.addStderr(d.toString()));
  return new Promise<GuestExit>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (serial.ended) return;
      serial.close();
      resolve({ code, signal });
    };
    child.on('error', (e) => {
      serial.note(`${program}: ${e.message}`);
      if (child.pid === undefined) finish(null, null); // never started: no 'close' to wait for
    });
    child.on('close', finish);
  });
}

/** SIGTERM once, SIGKILL 3 s later if QEMU is still there; every call gets the same exit. */
function killer(child: ChildProcess, serial: GuestConsole, exited: Promise<GuestExit>): () => Promise<GuestExit> {
  let killing: Promise<GuestExit> | null = null;
  return () => {
    if (!killing) {
      killing = serial.ended || child.exitCode !== null || child.signalCode !== null ? exited : (child.kill('SIGTERM'), exited);
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      void exited.then(() => clearTimeout(timer));
    }
    return killing;
  };
}

/**
 * Boots the guest. The caller must `kill()` it in teardown (or call killAll()); the guest also powers
 * itself off after its scenarios, and after `guestTimeoutSec` at the latest.
 */
export async function startGuest(opts: GuestOptions): Promise<Guest> {
  const qemu = toolOrThrow('qemu-system-x86_64');
  const boot = opts.boot ?? (await buildInitramfs());
  const args = [qemu, ...qemuArgs(boot, opts)];
  const argv = argvInNetns(opts.netns, args);
  const echo = opts.echo ?? process.env.VHOST_USER_E2E_ECHO === '1';

  const child = spawnTracked(argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const startedAt = Date.now();
  const serial = new GuestConsole(startedAt, echo, () => `${child.exitCode ?? child.signalCode}`);
  const exited = collect(child, serial, argv[0]);
  const waitFor = serial.waitFor.bind(serial);

  return {
    args,
    commandLine: shellQuote(argv),
    startedAt,
    pid: child.pid,
    output: () => serial.output(),
    stderr: () => serial.stderr(),
    waitFor,
    result: (scenario, timeoutMs) => waitForResult(waitFor, scenario, timeoutMs),
    follow: (f) => serial.follow(f),
    exited,
    kill: killer(child, serial, exited),
  };
}
