/**
 * The guest's serial console as QEMU prints it on stdout, and QEMU's stderr: kept whole for the tests
 * and for error messages, optionally echoed to our stderr, and searched by waitFor as lines complete.
 */
import { GUEST_FAILURE } from './scenarios';

/** Gets a console's text as it comes (e.g. to join the consoles of the QEMUs a guest migrates through). */
export interface ConsoleFollower {
  /** A piece of the serial console (\r removed). */
  output(d: string): void;
  /** A piece of QEMU's stderr, or a line of ours about QEMU. */
  stderr(d: string): void;
}

interface Waiter {
  /** True when the wait is over (resolved or rejected): the waiter is then dropped. */
  check(): boolean;
}

export class GuestConsole {
  private out = '';
  private err = '';
  /** out[0..complete) ends with a newline. */
  private complete = 0;
  private echoed = 0;
  private closed = false;
  private readonly waiters = new Set<Waiter>();
  private readonly followers = new Set<ConsoleFollower>();

  /** `exitStatus` describes how QEMU ended, for the error of a wait QEMU's exit cut short. */
  constructor(
    private readonly startedAt: number,
    private readonly echo: boolean,
    private readonly exitStatus: () => string,
  ) {}

  /** The serial console so far (\r removed). */
  output(): string {
    return this.out;
  }

  /** QEMU's stderr so far. */
  stderr(): string {
    return this.err;
  }

  /** True once QEMU has exited and its output is all in. */
  get ended(): boolean {
    return this.closed;
  }

  /** Hands the console and stderr so far to `f`, then every later piece as it comes. */
  follow(f: ConsoleFollower): void {
    if (this.out) f.output(this.out);
    if (this.err) f.stderr(this.err);
    this.followers.add(f);
  }

  /** A piece of QEMU's stdout, decoded. */
  addOutput(d: string): void {
    const piece = d.replace(/\r/g, '');
    this.out += piece;
    for (const f of this.followers) f.output(piece);
    const nl = this.out.lastIndexOf('\n');
    if (nl >= 0) this.complete = nl + 1;
    if (this.echo) {
      process.stderr.write(
        this.out
          .slice(this.echoed, this.complete)
          .split('\n')
          .filter((l, i, a) => i < a.length - 1 || l)
          .map((l) => `[guest +${((Date.now() - this.startedAt) / 1000).toFixed(1)}s] ${l}\n`)
          .join(''),
      );
      this.echoed = this.complete;
    }
    this.poke();
  }

  /** A piece of QEMU's stderr. */
  addStderr(d: string): void {
    this.err += d;
    for (const f of this.followers) f.stderr(d);
    if (this.echo) process.stderr.write(`[qemu stderr] ${d}`);
  }

  /** A line of our own about QEMU (e.g. why it could not be spawned), kept with its stderr. */
  note(line: string): void {
    this.err += `${line}\n`;
    for (const f of this.followers) f.stderr(`${line}\n`);
  }

  /** QEMU has exited: a last line without its newline counts now, and every pending wait ends. */
  close(): void {
    this.closed = true;
    this.complete = this.out.length;
    this.poke();
  }

  /** The end of the console and all of stderr, for error messages. */
  tail(): string {
    const lines = this.out.trimEnd().split('\n').slice(-25).join('\n');
    return `\n--- console (last lines) ---\n${lines}\n--- qemu stderr ---\n${this.err.trim()}`;
  }

  /** See Guest.waitFor. */
  waitFor(re: RegExp, timeoutMs = 30_000, since = 0): Promise<RegExpMatchArray> {
    const plain = new RegExp(re.source, re.flags.replace(/[gy]/g, ''));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`guest: no ${plain} within ${timeoutMs} ms${this.tail()}`));
      }, timeoutMs);
      const w: Waiter = {
        check: () => {
          const text = this.out.slice(since, this.complete);
          const m = plain.exec(text);
          if (m) {
            clearTimeout(timer);
            m.index = (m.index ?? 0) + since; // an offset into output(), usable as the next `since`
            resolve(m);
            return true;
          }
          const fail = GUEST_FAILURE.exec(text);
          if (fail || this.closed) {
            clearTimeout(timer);
            const why = fail ? `guest failed: ${fail[1]}` : `QEMU exited (${this.exitStatus()})`;
            reject(new Error(`${why} before ${plain} appeared${this.tail()}`));
            return true;
          }
          return false;
        },
      };
      if (!w.check()) this.waiters.add(w);
    });
  }

  private poke(): void {
    for (const w of [...this.waiters]) if (w.check()) this.waiters.delete(w);
  }
}
