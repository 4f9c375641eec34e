/** The progress line on stderr while a benchmark runs, and the one-line results printed above it. */

export class Progress {
  private readonly t0 = Date.now();
  private label = '';
  private cellStart = Date.now();
  private done = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly total: number) {
    if (this.tty) {
      this.timer = setInterval(() => this.draw(), 250);
      this.timer.unref();
    }
  }

  start(label: string): void {
    this.label = label;
    this.cellStart = Date.now();
    if (this.tty) this.draw();
    else process.stderr.write(`[${this.done + 1}/${this.total}] ${label} (${fmtElapsed(Date.now() - this.t0)} elapsed)\n`);
  }

  finish(): void {
    this.done++;
  }

  /** Prints a line above the progress line. */
  log(line: string): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
    process.stdout.write(`${line}\n`);
    if (this.tty) this.draw();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty) process.stderr.write('\r\x1b[K');
  }

  private draw(): void {
    const line = `[${this.done + 1}/${this.total}] ${this.label} · ${((Date.now() - this.cellStart) / 1000).toFixed(1)} s in run · ${fmtElapsed(Date.now() - this.t0)} elapsed`;
    process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
  }
}

function fmtElapsed(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
