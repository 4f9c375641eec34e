/**
 * VhostUserBackend: one device served on one unix socket, as a server (the front-end connects:
 * QEMU's default) or as a client (QEMU `server=on`; we reconnect until it is there). One front-end
 * at a time: a second connection is refused while the first lasts, as DPDK and QEMU back-ends do.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { native, type NativePoller } from './binding';
import { VhostUserError } from './errors';
import { NetDevice, type NetDeviceOptions } from './net/device';
import { Channel } from './protocol/channel';
import { parseRequestHeader } from './protocol/codec';
import { dispatch, type SessionIo } from './protocol/dispatch';
import { Session, type Logger } from './protocol/session';

export interface BackendOptions {
  socketPath: string;
  /** Connect to the front-end's socket instead of listening. */
  client?: boolean;
  /** Permissions of the socket we create (server mode). Default 0o600: only our user may connect. */
  socketMode?: number;
  /** Client mode: delay between connection attempts. Default 1000 ms. */
  reconnectDelayMs?: number;
  /**
   * A front-end that starts a message and does not finish it within this many ms is disconnected (with
   * the reason logged), so that the next one can connect. Default 5000; 0: wait for ever.
   */
  messageTimeoutMs?: number;
  device?: NetDeviceOptions;
  log?: Logger;
}

const EVENT_POLL_MS = 1000;
export const DEFAULT_MESSAGE_TIMEOUT_MS = 5000;

export class VhostUserBackend extends EventEmitter {
  readonly device: NetDevice;
  readonly socketPath: string;
  private readonly opts: BackendOptions;
  private readonly log: Logger;
  private listenFd = -1;
  private listenPoller: NativePoller | null = null;
  private channel: Channel | null = null;
  private session: Session | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private eventTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private waitingLogged = false;

  constructor(opts: BackendOptions) {
    super();
    this.opts = opts;
    this.socketPath = opts.socketPath;
    this.log = opts.log ?? (() => {});
    const timeout = opts.messageTimeoutMs;
    if (timeout !== undefined && !(Number.isInteger(timeout) && timeout >= 0))
      throw new VhostUserError('EINVAL', `messageTimeoutMs must be an integer >= 0 (0: wait for ever), got ${timeout}`);
    this.device = new NetDevice(opts.device);
  }

  get connected(): boolean {
    return this.channel !== null;
  }

  /** Server: listening when this returns. Client: the first attempt was made (it keeps retrying). */
  start(): void {
    if (this.opts.client) this.tryConnect();
    else this.listen();
    this.eventTimer = setInterval(() => this.drainDeviceEvents(), EVENT_POLL_MS);
    this.eventTimer.unref();
  }

  /** Ends the connection, stops listening and removes the socket we created. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.eventTimer) clearInterval(this.eventTimer);
    this.channel?.close();
    if (this.listenFd >= 0) {
      this.listenPoller?.stop();
      native.close(this.listenFd);
      this.listenFd = -1;
      fs.rmSync(this.socketPath, { force: true });
    }
    this.drainDeviceEvents();
    this.device.close();
  }

  private listen(): void {
    removeStaleSocket(this.socketPath);
    this.listenFd = native.listen(this.socketPath, this.opts.socketMode ?? 0o600, 16);
    this.listenPoller = new native.Poller(this.listenFd, () => this.acceptPending());
    this.log('info', `listening on ${this.socketPath}`);
  }

  private acceptPending(): void {
    for (;;) {
      const fd = native.accept(this.listenFd);
      if (fd < 0) return;
      if (this.channel) {
        this.log('warn', `refused a second front-end on ${this.socketPath}: one is already connected`);
        native.close(fd);
        continue;
      }
      this.attach(fd);
    }
  }

  private tryConnect(): void {
    this.reconnectTimer = null;
    if (this.closed || this.channel) return;
    try {
      this.attach(native.connect(this.socketPath));
      this.waitingLogged = false;
    } catch (err) {
      if (!this.waitingLogged) {
        this.log('info', `waiting for the front-end at ${this.socketPath} (${(err as Error).message})`);
        this.waitingLogged = true;
      }
      this.reconnectTimer = setTimeout(() => this.tryConnect(), this.opts.reconnectDelayMs ?? 1000);
    }
  }

  private attach(fd: number): void {
    const session = new Session(this.device, this.log);
    const io: SessionIo = { send: (bytes, fds) => channel.send(bytes, fds), close: (reason) => channel.close(reason) };
    const channel: Channel = new Channel(
      fd,
      parseRequestHeader,
      {
        onMessage: (header, payload, fds) => dispatch(session, io, header, payload, fds),
        onClose: (reason) => this.detach(reason),
      },
      {
        partialMessageMs: this.opts.messageTimeoutMs ?? DEFAULT_MESSAGE_TIMEOUT_MS,
        partialMessageHint: 'allow longer with --message-timeout S, or messageTimeoutMs in a program',
      },
    );
    this.channel = channel;
    this.session = session;
    this.log('info', `front-end connected on ${this.socketPath}`);
    this.emit('connect');
  }

  private detach(reason?: Error): void {
    this.session?.reset();
    this.session = null;
    this.channel = null;
    this.drainDeviceEvents();
    if (reason) this.log('warn', `front-end disconnected: ${reason.message}`);
    else this.log('info', 'front-end disconnected');
    this.emit('disconnect', reason);
    if (this.opts.client && !this.closed) {
      this.reconnectTimer = setTimeout(() => this.tryConnect(), this.opts.reconnectDelayMs ?? 1000);
    }
  }

  private drainDeviceEvents(): void {
    for (const e of this.device.takeEvents()) this.log('warn', `data path: ${e}`);
    for (const n of this.device.takeNotices()) this.log('info', n);
  }
}

/**
 * A socket file left by a dead process is replaced; one that a live process listens on is not
 * (two back-ends on one path would steal each other's front-ends). Liveness is read from
 * /proc/net/unix rather than probed with a connection, which the live back-end would take for a
 * front-end.
 */
function removeStaleSocket(path: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new VhostUserError('EEXIST', `${path} exists and is not a socket: choose another --socket path`);
  }
  if (isListening(path)) {
    throw new VhostUserError('EADDRINUSE', `another process is serving ${path}: stop it or choose another --socket path`);
  }
  fs.rmSync(path, { force: true });
}

/** __SO_ACCEPTCON in /proc/net/unix's Flags column: the socket listens. */
const SO_ACCEPTCON = 0x10000;

function isListening(path: string): boolean {
  const lines = fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1);
  const abs = nodePath.resolve(path);
  return lines.some((line) => {
    const cols = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path
    return cols.length >= 8 && (cols[7] === path || cols[7] === abs) && (parseInt(cols[3], 16) & SO_ACCEPTCON) !== 0;
  });
}
