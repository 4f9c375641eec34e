/**
 * A small QMP client (QEMU's JSON control protocol on a unix socket, `-qmp unix:PATH,server=on,wait=off`):
 * the greeting, capability negotiation, commands matched to their answers by id, and the events QEMU
 * sends meanwhile, kept in arrival order. Enough for the harness to migrate a guest and quit QEMU.
 */
import * as net from 'node:net';

/** What QEMU sent unasked: `{"event": NAME, "data": {...}, "timestamp": {...}}`. */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  /** When it arrived here (Date.now()). */
  at: number;
}

/** A command QEMU answered with `{"error": {"class", "desc"}}`: the message is QEMU's own text. */
export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(desc);
    this.name = 'QmpError';
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (e: Error) => void;
}

type QmpMessage = {
  QMP?: unknown;
  return?: unknown;
  error?: { class?: string; desc?: string };
  event?: string;
  data?: Record<string, unknown>;
  id?: unknown;
};

export class QmpClient {
  /** Every event so far, oldest first. */
  readonly events: QmpEvent[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly eventWaiters = new Set<() => void>();
  private nextId = 1;
  private buffered = '';
  private closedWith: Error | null = null;
  /** Settles with QEMU's greeting, its first message; rejects if the connection fails first. */
  private readonly greeting: Promise<void>;
  private greeted: () => void = () => {};
  private greetingFailed: (e: Error) => void = () => {};

  private constructor(private readonly socket: net.Socket) {
    this.greeting = new Promise<void>((resolve, reject) => {
      this.greeted = resolve;
      this.greetingFailed = reject;
    });
    this.greeting.catch(() => {}); // a failure is reported by handshake()
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.receive(d));
    socket.on('error', (e) => this.fail(new Error(`QMP: ${e.message}`)));
    socket.on('close', () => this.fail(new Error('QMP: QEMU closed the connection')));
  }

  /**
   * Connects to the QMP socket at `path`, retrying while QEMU has not made it yet (up to `timeoutMs`,
   * default 30 s), reads the greeting and leaves capability negotiation: commands can be executed then.
   */
  static async connect(path: string, timeoutMs = 30_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const socket = await connectOnce(path).catch((e: NodeJS.ErrnoException) => {
        if ((e.code !== 'ENOENT' && e.code !== 'ECONNREFUSED') || Date.now() > deadline) {
          throw new Error(`QMP: cannot connect to ${path}: ${e.message}`);
        }
        return null;
      });
      if (socket) {
        const client = new QmpClient(socket);
        await client.handshake(Math.max(1000, deadline - Date.now()));
        return client;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Runs `command` with `args`; resolves with its `return`, rejects with a QmpError carrying QEMU's
   * text, or when the connection ends first.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    const message = JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id });
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${message}\n`);
    });
  }

  /**
   * The first event named `name` that arrived at or after `since` (an index into `events`, default 0);
   * waits up to `timeoutMs` (default 30 s) for it.
   */
  waitEvent(name: string, timeoutMs = 30_000, since = 0): Promise<QmpEvent> {
    const find = () => this.events.slice(since).find((e) => e.event === name);
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = find();
        if (!found && !this.closedWith) return;
        clearTimeout(timer);
        this.eventWaiters.delete(check);
        if (found) resolve(found);
        else reject(new Error(`no QMP event ${name}: ${this.closedWith?.message}`));
      };
      const timer = setTimeout(() => {
        this.eventWaiters.delete(check);
        reject(new Error(`no QMP event ${name} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.eventWaiters.add(check);
      check();
    });
  }

  /** `quit`: QEMU exits at once. Resolves when it answered or closed the connection (it may do either first). */
  async quit(): Promise<void> {
    await this.execute('quit').catch((e: Error) => {
      if (!this.closedWith) throw e;
    });
  }

  /** Closes the connection; commands still waiting are rejected. */
  close(): void {
    this.socket.destroy();
    this.fail(new Error('QMP: connection closed'));
  }

  private async handshake(timeoutMs: number): Promise<void> {
    const timer = setTimeout(() => this.fail(new Error(`QMP: no greeting within ${timeoutMs} ms`)), timeoutMs);
    try {
      await this.greeting;
      await this.execute('qmp_capabilities');
    } catch (e) {
      this.socket.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** QEMU ends each message with a newline (\r\n). */
  private receive(d: string): void {
    this.buffered += d;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl).trim();
      this.buffered = this.buffered.slice(nl + 1);
      if (line) this.handle(line);
    }
  }

  private handle(line: string): void {
    let msg: QmpMessage;
    try {
      msg = JSON.parse(line) as QmpMessage;
    } catch {
      return this.fail(new Error(`QMP: not JSON from QEMU: ${line.slice(0, 200)}`));
    }
    if (msg.QMP !== undefined) return this.greeted();
    if (typeof msg.event === 'string') {
      this.events.push({ event: msg.event, data: msg.data, at: Date.now() });
      for (const w of [...this.eventWaiters]) w();
      return;
    }
    const pending = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
    if (!pending) return; // an answer to nobody (QEMU answers unparseable input without our id)
    this.pending.delete(msg.id as number);
    if (msg.error) pending.reject(new QmpError(pending.command, msg.error.class ?? 'GenericError', msg.error.desc ?? '(no text)'));
    else pending.resolve(msg.return);
  }

  private fail(e: Error): void {
    if (this.closedWith) return;
    this.closedWith = e;
    this.greetingFailed(e);
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    for (const w of [...this.eventWaiters]) w();
    this.socket.destroy();
  }
}

function connectOnce(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(path);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
