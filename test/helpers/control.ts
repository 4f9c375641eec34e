/**
 * The control-protocol suites' set-up: one back-end per test on a fresh socket, its log, front-ends
 * that are closed after the test, a raw peer for bytes the codec would not write, and the checks
 * those suites share (a nack, a close by the back-end with every fd back where it was).
 */
import { afterEach, beforeEach, expect } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { VhostUserBackend, type BackendOptions } from '../../lib/backend';
import { native } from '../../lib/binding';
import { VhostUserFrontend } from '../../lib/frontend/frontend';
import { Channel } from '../../lib/protocol/channel';
import type { MessageHeader } from '../../lib/protocol/codec';
import { ProtocolFeature, Request, bit } from '../../lib/protocol/constants';
import type { LogLevel } from '../../lib/protocol/session';
import { fdKinds } from './frames';
import { within } from './until';

/** Every protocol feature the back-end offers. */
export const ALL_PROTOCOL =
  bit(ProtocolFeature.MQ) |
  bit(ProtocolFeature.LOG_SHMFD) |
  bit(ProtocolFeature.REPLY_ACK) |
  bit(ProtocolFeature.MTU) |
  bit(ProtocolFeature.CONFIGURE_MEM_SLOTS) |
  bit(ProtocolFeature.STATUS) |
  bit(ProtocolFeature.RARP) |
  bit(ProtocolFeature.DEVICE_STATE);

export type LogLine = { level: LogLevel; msg: string };

export function closedOf(fe: { isOpen: boolean; onClosed(l: (reason?: Error) => void): void }): Promise<Error | undefined> {
  return new Promise((resolve) => {
    if (!fe.isOpen) resolve(undefined);
    else fe.onClosed(resolve);
  });
}

export async function expectNack(p: Promise<unknown>): Promise<void> {
  await expect(within(p, 2000, 'a REPLY_ACK')).rejects.toMatchObject({ code: 'EREMOTE' });
}

/** Mappings of the memfd called `name` in this process (the back-end maps guest memory here). */
export function mappingsOf(name: string): number {
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes(`/memfd:${name} `)).length;
}

let memfdSeq = 0;

export function memfd(size = 1 << 20): { fd: number; name: string } {
  const name = `vhu-session-${process.pid}-${memfdSeq++}`;
  return { fd: native.memfdCreate(name, size), name };
}

export interface RawReply {
  header: MessageHeader;
  payload: Buffer;
}

/**
 * A front-end that writes bytes as it likes and reads replies without expecting any particular one
 * (VhostUserFrontend matches each reply to the request it sent, which raw writes do not register).
 */
export class RawPeer {
  private readonly channel: Channel;
  private readonly replies: RawReply[] = [];
  private wake: (() => void) | null = null;
  closed = false;

  constructor(socketPath: string) {
    const fd = native.connect(socketPath);
    this.channel = new Channel(fd, (b) => ({ request: b.readUInt32LE(0), flags: b.readUInt32LE(4), size: b.readUInt32LE(8) }), {
      onMessage: (h, payload, fds) => {
        for (const f of fds) native.close(f);
        this.replies.push({ header: h, payload });
        this.wake?.();
      },
      onClose: () => {
        this.closed = true;
        this.wake?.();
      },
    });
  }

  send(bytes: Buffer, fds: number[] = []): void {
    this.channel.send(bytes, fds);
  }

  async reply(ms = 1000): Promise<RawReply> {
    const deadline = Date.now() + ms;
    while (this.replies.length === 0 && !this.closed && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, Math.max(1, deadline - Date.now()));
      });
      this.wake = null;
    }
    const r = this.replies.shift();
    if (!r) throw new Error(this.closed ? 'the back-end closed the connection instead of replying' : 'no reply');
    return r;
  }

  close(): void {
    this.channel.close();
  }
}

export interface ControlFixture {
  /** This test's temporary directory. */
  readonly dir: string;
  /** The socket of `backend`. */
  readonly sock: string;
  /** The back-end started on `sock` before each test. */
  readonly backend: VhostUserBackend;
  /** What `backend` (and any back-end started without its own sink) logged in this test. */
  readonly logs: LogLine[];
  /** A back-end on `socketPath`, closed after the test. */
  startBackend(socketPath: string, opts?: Partial<BackendOptions>, sink?: LogLine[]): VhostUserBackend;
  warnings(): string[];
  /** A front-end on `socketPath` (default `sock`), closed after the test. */
  connect(socketPath?: string): VhostUserFrontend;
  /** A raw peer on `socketPath` (default `sock`), closed after the test. */
  rawPeer(socketPath?: string): RawPeer;
  /** A connected front-end that negotiated `protocol` (REPLY_ACK included by default). */
  negotiated(protocol?: bigint): Promise<VhostUserFrontend>;
  /**
   * Runs `act` on a fresh front-end, expects the back-end to close the connection, and checks that
   * every fd is back to what it was before the front-end connected. Returns the disconnect reason.
   */
  expectClosedByBackend(act: (fe: VhostUserFrontend) => void | Promise<void>, opts?: { protocol?: bigint }): Promise<Error | undefined>;
  /** Runs `fn` after the test, before the directory goes (last registered, first run). */
  onCleanup(fn: () => void): void;
}

/** Call at the top of a suite: each test gets a fresh directory, back-end and log. */
export function useControlFixture(dirPrefix: string): ControlFixture {
  let dir = '';
  let sock = '';
  let backend: VhostUserBackend | undefined;
  let logs: LogLine[] = [];
  let cleanups: (() => void)[] = [];

  const startBackend = (socketPath: string, opts: Partial<BackendOptions> = {}, sink = logs): VhostUserBackend => {
    const b = new VhostUserBackend({ socketPath, device: { port: 'loopback' }, log: (level, msg) => sink.push({ level, msg }), ...opts });
    cleanups.push(() => b.close());
    b.start();
    return b;
  };

  const connect = (socketPath = sock): VhostUserFrontend => {
    const fe = new VhostUserFrontend(socketPath);
    cleanups.push(() => fe.close());
    return fe;
  };

  const negotiated = async (protocol = ALL_PROTOCOL): Promise<VhostUserFrontend> => {
    const fe = connect();
    await fe.requestU64({ request: Request.GET_FEATURES });
    await fe.requestU64({ request: Request.GET_PROTOCOL_FEATURES });
    await fe.request({ request: Request.SET_PROTOCOL_FEATURES, value: protocol });
    fe.protocolFeatures = protocol;
    // A round trip: everything above was handled when this answers.
    await fe.requestU64({ request: Request.GET_FEATURES });
    return fe;
  };

  const fixture: ControlFixture = {
    get dir() {
      return dir;
    },
    get sock() {
      return sock;
    },
    get backend() {
      if (!backend) throw new Error('fixture used outside a test');
      return backend;
    },
    get logs() {
      return logs;
    },
    startBackend,
    warnings: () => logs.filter((l) => l.level === 'warn').map((l) => l.msg),
    connect,
    rawPeer(socketPath = sock) {
      const peer = new RawPeer(socketPath);
      cleanups.push(() => peer.close());
      return peer;
    },
    negotiated,
    async expectClosedByBackend(act, opts = {}) {
      const b = fixture.backend;
      const baseline = fdKinds();
      const gone = once(b, 'disconnect');
      const fe = opts.protocol === undefined ? connect() : await negotiated(opts.protocol);
      if (opts.protocol === undefined) await fe.requestU64({ request: Request.GET_FEATURES });
      const feClosed = closedOf(fe);
      await act(fe);
      const [reason] = (await within(gone, 2000, 'the back-end to close the connection')) as [Error | undefined];
      await within(feClosed, 2000, 'the front-end to see the close');
      expect(b.connected).toBe(false);
      expect(fdKinds()).toEqual(baseline);
      return reason;
    },
    onCleanup(fn) {
      cleanups.push(fn);
    },
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), dirPrefix));
    sock = path.join(dir, 'net.sock');
    logs = [];
    cleanups = [];
    backend = startBackend(sock);
  });

  afterEach(() => {
    for (const c of cleanups.reverse()) {
      try {
        c();
      } catch {
        // best effort: the test already failed if this matters
      }
    }
    backend = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  return fixture;
}
