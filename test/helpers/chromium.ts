/**
 * Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages
 * separated by NUL bytes, Chromium reads fd 3 and writes fd 4), so a test can load a page, wait for
 * what it shows and take a screenshot, with no WebSocket client and no npm package. Debian: `chromium`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { findProgram } from './peers';

const COMMAND_TIMEOUT_MS = 15_000;

interface Reply {
  id?: number;
  result?: Record<string, unknown>;
  error?: { message: string };
}

export class HeadlessChromium {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private sessionId = '';
  private stderr = '';

  private constructor(
    private readonly child: ChildProcess,
    private readonly profile: string,
  ) {
    const input = child.stdio[4] as Readable;
    let buffered = '';
    input.setEncoding('utf8');
    // A pipe Chromium closed shows up as its exit, handled below, not as an error event.
    input.on('error', () => {});
    (child.stdio[3] as Writable).on('error', () => {});
    input.on('data', (chunk: string) => {
      const parts = (buffered + chunk).split('\0');
      buffered = parts.pop() ?? '';
      for (const part of parts) this.onMessage(JSON.parse(part) as Reply);
    });
    child.stderr?.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-2000)));
    child.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`chromium exited (${code}): ${this.stderr.trim()}`));
      this.pending.clear();
    });
  }

  /** The chromium binary, or null. */
  static find(): string | null {
    return findProgram('chromium');
  }

  /** Starts Chromium with an empty profile and opens one tab of `width` x `height`. */
  static async launch(width = 1280, height = 1000): Promise<HeadlessChromium> {
    const binary = HeadlessChromium.find();
    if (!binary) throw new Error('chromium not found (Debian: apt-get install chromium)');
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-chromium-'));
    const args = ['--headless', '--remote-debugging-pipe', `--user-data-dir=${profile}`, '--disable-gpu', '--disable-dev-shm-usage'];
    args.push('--no-first-run', '--no-default-browser-check', '--disable-extensions', '--hide-scrollbars', '--mute-audio');
    if (process.getuid?.() === 0) args.push('--no-sandbox'); // Chromium refuses to run as root with its sandbox
    // Not the sanitizer the ASan run preloads into node: Chromium has its own allocator and would not start.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !['LD_PRELOAD', 'ASAN_OPTIONS', 'UBSAN_OPTIONS'].includes(k)),
    );
    const child = spawn(binary, [...args, 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], env });
    const browser = new HeadlessChromium(child, profile);
    try {
      const { targetId } = await browser.command('Target.createTarget', { url: 'about:blank' });
      const { sessionId } = await browser.command('Target.attachToTarget', { targetId, flatten: true });
      browser.sessionId = sessionId as string;
      await browser.command('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
    } catch (err) {
      await browser.close();
      throw err;
    }
    return browser;
  }

  /** Sends a DevTools command (to the tab once attached) and resolves with its result. */
  command(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    const message = { id, method, params, ...(this.sessionId ? { sessionId: this.sessionId } : {}) };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`chromium did not answer ${method} within ${COMMAND_TIMEOUT_MS} ms: ${this.stderr.trim()}`));
      }, COMMAND_TIMEOUT_MS);
      const settle =
        <T>(f: (v: T) => void) =>
        (v: T) => (clearTimeout(timer), f(v));
      this.pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      (this.child.stdio[3] as Writable).write(JSON.stringify(message) + '\0');
    });
  }

  async navigate(url: string): Promise<void> {
    const r = await this.command('Page.navigate', { url });
    if (r.errorText) throw new Error(`chromium could not load ${url}: ${String(r.errorText)}`);
  }

  /** Evaluates `expression` in the page; its value must be JSON-serialisable. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.command('Runtime.evaluate', { expression, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`the page threw: ${JSON.stringify(r.exceptionDetails)}`);
    return (r.result as { value: T }).value;
  }

  /** A PNG of what the tab shows. */
  async screenshot(): Promise<Buffer> {
    const r = await this.command('Page.captureScreenshot', { format: 'png' });
    return Buffer.from(r.data as string, 'base64');
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.sessionId = '';
      this.command('Browser.close').catch(() => this.child.kill('SIGKILL'));
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.profile, { recursive: true, force: true });
  }

  private onMessage(reply: Reply): void {
    if (reply.id === undefined) return; // an event: not needed here
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if (reply.error) p.reject(new Error(reply.error.message));
    else p.resolve(reply.result ?? {});
  }
}
