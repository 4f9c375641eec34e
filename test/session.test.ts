/**
 * The back-end's side of the protocol, request by request, against a real socket: what it offers,
 * how it refuses what it does not support (REPLY_ACK nack, or closing the connection with the
 * reason logged), that every fd a refused request carried is closed, that malformed streams end
 * only their own connection, and the socket file's life (mode, stale files, a live server).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { VhostUserBackend, type BackendOptions } from '../lib/backend';
import { native } from '../lib/binding';
import { VhostUserError } from '../lib/errors';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VhostUserFrontend } from '../lib/frontend/frontend';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { Channel } from '../lib/protocol/channel';
import { encodeRequest, type MemoryRegion, type MessageHeader } from '../lib/protocol/codec';
import {
  HEADER_SIZE,
  HeaderFlag,
  ProtocolFeature,
  Request,
  VRING_NOFD_MASK,
  VirtioFeature,
  VirtioNetFeature,
  bit,
  hasBit,
} from '../lib/protocol/constants';
import type { LogLevel } from '../lib/protocol/session';
import { fdKinds, macSwapped, makeFrame } from './helpers/frames';
import { rawHeader as header } from './helpers/messages';

const ALL_PROTOCOL =
  bit(ProtocolFeature.MQ) |
  bit(ProtocolFeature.REPLY_ACK) |
  bit(ProtocolFeature.MTU) |
  bit(ProtocolFeature.CONFIGURE_MEM_SLOTS) |
  bit(ProtocolFeature.STATUS) |
  bit(ProtocolFeature.RARP);

let dir: string;
let sock: string;
let backend: VhostUserBackend;
let logs: { level: LogLevel; msg: string }[];
let cleanups: (() => void)[];
let memfdSeq = 0;

function startBackend(socketPath: string, opts: Partial<BackendOptions> = {}, sink = logs): VhostUserBackend {
  const b = new VhostUserBackend({ socketPath, log: (level, msg) => sink.push({ level, msg }), ...opts });
  cleanups.push(() => b.close());
  b.start();
  return b;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-session-'));
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
  fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Rejects with a readable message if `p` does not settle within `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function warnings(): string[] {
  return logs.filter((l) => l.level === 'warn').map((l) => l.msg);
}

function connect(socketPath = sock): VhostUserFrontend {
  const fe = new VhostUserFrontend(socketPath);
  cleanups.push(() => fe.close());
  return fe;
}

function closedOf(fe: { isOpen: boolean; onClosed(l: (reason?: Error) => void): void }): Promise<Error | undefined> {
  return new Promise((resolve) => {
    if (!fe.isOpen) resolve(undefined);
    else fe.onClosed(resolve);
  });
}

/** A connected front-end that negotiated `protocol` (REPLY_ACK included by default). */
async function negotiated(protocol = ALL_PROTOCOL): Promise<VhostUserFrontend> {
  const fe = connect();
  await fe.requestU64({ request: Request.GET_FEATURES });
  await fe.requestU64({ request: Request.GET_PROTOCOL_FEATURES });
  await fe.request({ request: Request.SET_PROTOCOL_FEATURES, value: protocol });
  fe.protocolFeatures = protocol;
  // A round trip: everything above was handled when this answers.
  await fe.requestU64({ request: Request.GET_FEATURES });
  return fe;
}

/**
 * Runs `act` on a fresh front-end, expects the back-end to close the connection, and checks that
 * every fd is back to what it was before the front-end connected. Returns the disconnect reason.
 */
async function expectClosedByBackend(
  act: (fe: VhostUserFrontend) => void | Promise<void>,
  opts: { protocol?: bigint } = {},
): Promise<Error | undefined> {
  const baseline = fdKinds();
  const gone = once(backend, 'disconnect');
  const fe = opts.protocol === undefined ? connect() : await negotiated(opts.protocol);
  if (opts.protocol === undefined) await fe.requestU64({ request: Request.GET_FEATURES });
  const feClosed = closedOf(fe);
  await act(fe);
  const [reason] = (await within(gone, 2000, 'the back-end to close the connection')) as [Error | undefined];
  await within(feClosed, 2000, 'the front-end to see the close');
  expect(backend.connected).toBe(false);
  expect(fdKinds()).toEqual(baseline);
  return reason;
}

interface RawReply {
  header: MessageHeader;
  payload: Buffer;
}

/**
 * A front-end that writes bytes as it likes and reads replies without expecting any particular one
 * (VhostUserFrontend matches each reply to the request it sent, which raw writes do not register).
 */
class RawPeer {
  private readonly channel: Channel;
  private readonly replies: RawReply[] = [];
  private wake: (() => void) | null = null;
  closed = false;

  constructor(socketPath: string) {
    const fd = native.connect(socketPath);
    this.channel = new Channel(
      fd,
      (b) => ({ request: b.readUInt32LE(0), flags: b.readUInt32LE(4), size: b.readUInt32LE(8) }),
      {
        onMessage: (h, payload, fds) => {
          for (const f of fds) native.close(f);
          this.replies.push({ header: h, payload });
          this.wake?.();
        },
        onClose: () => {
          this.closed = true;
          this.wake?.();
        },
      },
    );
    cleanups.push(() => this.close());
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

/** Mappings of the memfd called `name` in this process (the back-end maps guest memory here). */
function mappingsOf(name: string): number {
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes(`/memfd:${name} `)).length;
}

function memfd(size = 1 << 20): { fd: number; name: string } {
  const name = `vhu-session-${process.pid}-${memfdSeq++}`;
  return { fd: native.memfdCreate(name, size), name };
}

async function expectNack(p: Promise<unknown>): Promise<void> {
  await expect(within(p, 2000, 'a REPLY_ACK')).rejects.toMatchObject({ code: 'EREMOTE' });
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

describe('negotiation', () => {
  it('offers the features it honours, one queue pair, 32 memory slots, and keeps the status', async () => {
    const fe = connect();
    const features = await fe.requestU64({ request: Request.GET_FEATURES });
    expect(features).toBe(backend.device.features);
    for (const n of [
      VirtioFeature.VERSION_1,
      VirtioNetFeature.MRG_RXBUF,
      VirtioFeature.RING_EVENT_IDX,
      VirtioFeature.RING_INDIRECT_DESC,
      VirtioFeature.PROTOCOL_FEATURES,
    ]) {
      expect(hasBit(features, n), `feature bit ${n}`).toBe(true);
    }
    expect(hasBit(features, VirtioFeature.RING_PACKED)).toBe(false);

    const protocol = await fe.requestU64({ request: Request.GET_PROTOCOL_FEATURES });
    expect(protocol).toBe(ALL_PROTOCOL);
    expect(hasBit(protocol, ProtocolFeature.LOG_SHMFD)).toBe(false);
    await fe.request({ request: Request.SET_PROTOCOL_FEATURES, value: protocol });
    fe.protocolFeatures = protocol;

    expect(await fe.requestU64({ request: Request.GET_QUEUE_NUM })).toBe(1n);
    expect(backend.device.queuePairs).toBe(1);
    expect(backend.device.queueCount).toBe(2);
    expect(await fe.requestU64({ request: Request.GET_MAX_MEM_SLOTS })).toBe(32n);

    expect(await fe.request({ request: Request.SET_STATUS, value: 0x0bn }, { needReply: true })).toEqual({
      kind: 'u64',
      value: 0n,
    });
    expect(await fe.requestU64({ request: Request.GET_STATUS })).toBe(0x0bn);
    await fe.request({ request: Request.SET_STATUS, value: 0x0fn }, { needReply: true });
    expect(await fe.requestU64({ request: Request.GET_STATUS })).toBe(0x0fn);
    expect(warnings()).toEqual([]);
  });

  it('refuses GET_MAX_MEM_SLOTS until CONFIGURE_MEM_SLOTS is negotiated (closing: it has a reply)', async () => {
    const reason = await expectClosedByBackend(async (fe) => {
      await expect(within(fe.requestU64({ request: Request.GET_MAX_MEM_SLOTS }), 2000, 'close')).rejects.toThrow();
    });
    expect(reason?.message).toMatch(/GET_MAX_MEM_SLOTS.*CONFIGURE_MEM_SLOTS/);
    expect(warnings().some((w) => /GET_MAX_MEM_SLOTS.*CONFIGURE_MEM_SLOTS/.test(w))).toBe(true);
  });

  it('acks a NEED_REPLY request that resets the device (RESET_OWNER) when REPLY_ACK was negotiated', async () => {
    // The front-end negotiated REPLY_ACK and set NEED_REPLY: whatever the request does to the
    // session, the ack it asked for is owed (DPDK acks on the NEED_REPLY bit alone).
    const fe = await negotiated();
    const ack = await within(fe.request({ request: Request.RESET_OWNER }, { needReply: true }), 1000, 'the RESET_OWNER ack');
    expect(ack).toEqual({ kind: 'u64', value: 0n });
    expect(fe.isOpen).toBe(true);
  });
});

describe('unsupported requests', () => {
  it('are nacked with REPLY_ACK + NEED_REPLY; the connection stays and their fds are closed', async () => {
    const fe = await negotiated();
    const before = fdKinds();

    const reqFd = native.eventfd();
    const p1 = fe.request({ request: Request.SET_BACKEND_REQ_FD, fd: reqFd }, { needReply: true });
    native.close(reqFd);
    await expectNack(p1);
    expect(fdKinds()).toEqual(before);

    const logFd = native.eventfd();
    const p2 = fe.request({ request: Request.SET_LOG_FD, fd: logFd }, { needReply: true });
    native.close(logFd);
    await expectNack(p2);
    expect(fdKinds()).toEqual(before);

    await expectNack(fe.request({ request: Request.SET_VRING_ENDIAN, index: 0, num: 1 }, { needReply: true }));

    expect(fe.isOpen).toBe(true);
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(backend.device.features);
    expect(backend.connected).toBe(true);
    expect(fdKinds()).toEqual(before);
    const w = warnings();
    expect(w.some((m) => m.includes('SET_BACKEND_REQ_FD') && m.includes('nacked'))).toBe(true);
    expect(w.some((m) => m.includes('SET_LOG_FD') && m.includes('nacked'))).toBe(true);
    expect(w.some((m) => m.includes('SET_VRING_ENDIAN') && m.includes('nacked'))).toBe(true);
  });

  it('nacks an unknown request code sent with NEED_REPLY, skipping its payload', async () => {
    const peer = new RawPeer(sock);
    peer.send(header(Request.SET_PROTOCOL_FEATURES, HeaderFlag.VERSION, 8));
    const pf = Buffer.alloc(8);
    pf.writeBigUInt64LE(ALL_PROTOCOL);
    peer.send(pf);
    peer.send(Buffer.concat([header(99, HeaderFlag.VERSION | HeaderFlag.NEED_REPLY, 5), Buffer.from('junk!')]));
    const nack = await peer.reply();
    expect(nack.header.request).toBe(99);
    expect(nack.header.flags).toBe(HeaderFlag.VERSION | HeaderFlag.REPLY);
    expect(nack.payload.readBigUInt64LE(0)).not.toBe(0n);
    peer.send(header(Request.GET_FEATURES, HeaderFlag.VERSION, 0));
    const r = await peer.reply();
    expect(r.header.request).toBe(Request.GET_FEATURES);
    expect(r.payload.readBigUInt64LE(0)).toBe(backend.device.features);
    expect(warnings().some((m) => m.includes('UNKNOWN(99)'))).toBe(true);
  });

  it('SET_LOG_BASE (a request that always has a reply, so cannot be nacked) closes the connection and its fd', async () => {
    const reason = await expectClosedByBackend(
      async (fe) => {
        const m = memfd(4096);
        const p = fe.request({ request: Request.SET_LOG_BASE, mmapSize: 4096n, mmapOffset: 0n, fd: m.fd }, { needReply: true });
        native.close(m.fd);
        await expect(within(p, 2000, 'close')).rejects.toThrow();
      },
      { protocol: ALL_PROTOCOL },
    );
    expect(reason?.message).toContain('SET_LOG_BASE');
  });

  it('without REPLY_ACK close the connection, with a warning naming the request, and close their fds', async () => {
    const cases: { name: string; act: (fe: VhostUserFrontend) => void }[] = [
      {
        name: 'SET_BACKEND_REQ_FD',
        act: (fe) => {
          const fd = native.eventfd();
          void fe.request({ request: Request.SET_BACKEND_REQ_FD, fd }, { needReply: true });
          native.close(fd);
        },
      },
      {
        name: 'SET_LOG_FD',
        act: (fe) => {
          const fd = native.eventfd();
          void fe.request({ request: Request.SET_LOG_FD, fd });
          native.close(fd);
        },
      },
      {
        name: 'SET_VRING_ENDIAN',
        act: (fe) => void fe.request({ request: Request.SET_VRING_ENDIAN, index: 0, num: 0 }),
      },
      {
        name: 'SET_LOG_BASE',
        act: (fe) => {
          const m = memfd(4096);
          fe.request({ request: Request.SET_LOG_BASE, mmapSize: 4096n, mmapOffset: 0n, fd: m.fd }).catch(() => {});
          native.close(m.fd);
        },
      },
    ];
    for (const c of cases) {
      const warned = warnings().length;
      const reason = await expectClosedByBackend(c.act);
      expect(reason?.message, c.name).toContain(c.name);
      const newWarnings = warnings().slice(warned);
      expect(newWarnings.some((w) => w.includes(c.name)), `${c.name}: ${newWarnings.join(' | ')}`).toBe(true);
    }
  });

  it('with REPLY_ACK negotiated but NEED_REPLY clear also close the connection', async () => {
    const reason = await expectClosedByBackend(
      (fe) => void fe.request({ request: Request.SET_VRING_ENDIAN, index: 0, num: 0 }),
      { protocol: ALL_PROTOCOL },
    );
    expect(reason?.message).toContain('SET_VRING_ENDIAN');
  });
});

describe('wrong fd counts', () => {
  it('GET_FEATURES with an fd attached: closed, the fd closed in the back-end', async () => {
    const reason = await expectClosedByBackend((fe) => {
      const { bytes } = encodeRequest({ request: Request.GET_FEATURES }, false);
      const efd = native.eventfd();
      fe.sendRaw(bytes, [efd]);
      native.close(efd);
    });
    expect(reason?.message).toMatch(/GET_FEATURES.*fd/);
  });

  it('SET_VRING_KICK with the NOFD bit clear and no fd: closed', async () => {
    const reason = await expectClosedByBackend((fe) => {
      // An fd number makes the encoder leave NOFD clear; the fd itself is not sent.
      const { bytes } = encodeRequest({ request: Request.SET_VRING_KICK, index: 0, fd: 1000 }, false);
      expect(bytes.readBigUInt64LE(HEADER_SIZE) & BigInt(VRING_NOFD_MASK)).toBe(0n);
      fe.sendRaw(bytes, []);
    });
    expect(reason?.message).toMatch(/SET_VRING_KICK.*NOFD/);
  });

  it('SET_VRING_CALL with the NOFD bit set and an fd anyway: closed, fd closed', async () => {
    await expectClosedByBackend((fe) => {
      const { bytes } = encodeRequest({ request: Request.SET_VRING_CALL, index: 0, fd: null }, false);
      const efd = native.eventfd();
      fe.sendRaw(bytes, [efd]);
      native.close(efd);
    });
  });

  it('SET_MEM_TABLE with fewer fds than regions: closed, the fd that came closed, nothing mapped', async () => {
    const m = memfd(2 << 20);
    await expectClosedByBackend((fe) => {
      const regions = [0, 1].map((i) => ({
        guestPhysAddr: BigInt(i) << 32n,
        size: 1n << 20n,
        userAddr: 0x7f00_0000_0000n + (BigInt(i) << 32n),
        mmapOffset: BigInt(i) << 20n,
        fd: m.fd,
      }));
      const { bytes } = encodeRequest({ request: Request.SET_MEM_TABLE, regions }, false);
      fe.sendRaw(bytes, [m.fd]);
    });
    expect(mappingsOf(m.name)).toBe(0);
    native.close(m.fd);
  });

  it('more fds with one message than any message carries (9): closed, all of them closed', async () => {
    await expectClosedByBackend((fe) => {
      const fds = Array.from({ length: 9 }, () => native.eventfd());
      const { bytes } = encodeRequest({ request: Request.GET_FEATURES }, false);
      fe.sendRaw(bytes, fds);
      for (const fd of fds) native.close(fd);
    });
  });

  it('with REPLY_ACK + NEED_REPLY a wrong fd count is nacked instead, and the stray fd closed', async () => {
    const peer = new RawPeer(sock);
    peer.send(encodeRequest({ request: Request.SET_PROTOCOL_FEATURES, value: ALL_PROTOCOL }, false).bytes);
    peer.send(encodeRequest({ request: Request.GET_FEATURES }, false).bytes);
    await peer.reply();
    const before = fdKinds();
    const efd = native.eventfd();
    peer.send(encodeRequest({ request: Request.SET_VRING_ENABLE, index: 0, num: 1 }, true).bytes, [efd]);
    native.close(efd);
    const nack = await peer.reply();
    expect(nack.header.request).toBe(Request.SET_VRING_ENABLE);
    expect(nack.payload.readBigUInt64LE(0)).not.toBe(0n);
    expect(fdKinds()).toEqual(before);
    peer.send(encodeRequest({ request: Request.GET_FEATURES }, false).bytes);
    expect((await peer.reply()).payload.readBigUInt64LE(0)).toBe(backend.device.features);
  });
});

describe('ring indices out of range', () => {
  it('are nacked (index 2 of a 1-pair device, 0x10000, 255) and nothing breaks', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const ack = { needReply: true };
    await expectNack(fe.request({ request: Request.SET_VRING_NUM, index: 2, num: 256 }, ack));
    await expectNack(fe.request({ request: Request.SET_VRING_NUM, index: 0x10000, num: 256 }, ack));
    await expectNack(fe.request({ request: Request.SET_VRING_NUM, index: 0xffffffff, num: 256 }, ack));
    await expectNack(fe.request({ request: Request.SET_VRING_BASE, index: 2, num: 0 }, ack));
    await expectNack(fe.request({ request: Request.SET_VRING_ENABLE, index: 2, num: 1 }, ack));
    await expectNack(
      fe.request(
        {
          request: Request.SET_VRING_ADDR,
          index: 2,
          flags: 0,
          descUserAddr: 0x1000n,
          usedUserAddr: 0x3000n,
          availUserAddr: 0x2000n,
          logGuestAddr: 0n,
        },
        ack,
      ),
    );
    for (const [request, index] of [
      [Request.SET_VRING_KICK, 2],
      [Request.SET_VRING_CALL, 255],
      [Request.SET_VRING_ERR, 3],
    ] as const) {
      const efd = native.eventfd();
      const p = fe.request({ request, index, fd: efd }, ack);
      native.close(efd);
      await expectNack(p);
    }
    expect(fdKinds()).toEqual(before);
    expect(warnings().filter((w) => /ring index \d+ out of range/.test(w)).length).toBe(9);
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(backend.device.features);
    // The valid indices still work.
    await fe.request({ request: Request.SET_VRING_NUM, index: 1, num: 256 }, ack);
  });

  it('GET_VRING_BASE of ring 2 (it has a reply) closes the connection; the back-end serves the next one', async () => {
    const reason = await expectClosedByBackend(
      async (fe) => {
        const p = fe.request({ request: Request.GET_VRING_BASE, index: 2, num: 0 });
        await expect(within(p, 2000, 'close')).rejects.toThrow();
      },
      { protocol: ALL_PROTOCOL },
    );
    expect(reason?.message).toMatch(/GET_VRING_BASE.*out of range/);
    const fe = connect();
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(backend.device.features);
  });
});

describe('features the device did not offer', () => {
  it('are nacked with REPLY_ACK (RING_PACKED, LOG_SHMFD) and the previous negotiation stands', async () => {
    const fe = await negotiated();
    const offered = backend.device.features;
    await expectNack(
      fe.request({ request: Request.SET_FEATURES, value: offered | bit(VirtioFeature.RING_PACKED) }, { needReply: true }),
    );
    await expectNack(
      fe.request(
        { request: Request.SET_PROTOCOL_FEATURES, value: ALL_PROTOCOL | bit(ProtocolFeature.LOG_SHMFD) },
        { needReply: true },
      ),
    );
    // Still negotiated: CONFIGURE_MEM_SLOTS and STATUS answer.
    expect(await fe.requestU64({ request: Request.GET_MAX_MEM_SLOTS })).toBe(32n);
    expect(await fe.requestU64({ request: Request.GET_STATUS })).toBe(0n);
    await fe.request({ request: Request.SET_FEATURES, value: offered }, { needReply: true });
    expect(warnings().some((w) => w.includes('SET_FEATURES') && w.includes('did not offer'))).toBe(true);
    expect(warnings().some((w) => w.includes('SET_PROTOCOL_FEATURES') && w.includes('did not offer'))).toBe(true);
  });

  it('close the connection without REPLY_ACK', async () => {
    const r1 = await expectClosedByBackend(
      (fe) => void fe.request({ request: Request.SET_FEATURES, value: bit(VirtioFeature.VERSION_1) | bit(VirtioFeature.RING_PACKED) }),
    );
    expect(r1?.message).toMatch(/SET_FEATURES.*did not offer/);
    const r2 = await expectClosedByBackend(
      (fe) => void fe.request({ request: Request.SET_PROTOCOL_FEATURES, value: bit(ProtocolFeature.LOG_SHMFD) }),
    );
    expect(r2?.message).toMatch(/SET_PROTOCOL_FEATURES.*did not offer/);
  });
});

describe('ring set-up order and sizes', () => {
  it('nacks SET_VRING_ADDR before SET_MEM_TABLE, saying so', async () => {
    const fe = await negotiated();
    await fe.request({ request: Request.SET_VRING_NUM, index: 0, num: 256 }, { needReply: true });
    await expectNack(
      fe.request(
        {
          request: Request.SET_VRING_ADDR,
          index: 0,
          flags: 0,
          descUserAddr: 0x7f00_0000_0000n,
          usedUserAddr: 0x7f00_0000_2000n,
          availUserAddr: 0x7f00_0000_1000n,
          logGuestAddr: 0n,
        },
        { needReply: true },
      ),
    );
    expect(warnings().some((w) => w.includes('SET_VRING_ADDR') && w.includes('before SET_MEM_TABLE'))).toBe(true);
    expect(fe.isOpen).toBe(true);
  });

  it('nacks SET_VRING_NUM 0, 3, 65536 (and 0x10000 + 1) and accepts 1 and 32768', async () => {
    const fe = await negotiated();
    for (const num of [0, 3, 65536, 65537, 0xffffffff]) {
      await expectNack(fe.request({ request: Request.SET_VRING_NUM, index: 0, num }, { needReply: true }));
    }
    for (const num of [1, 32768, 256]) {
      await fe.request({ request: Request.SET_VRING_NUM, index: 0, num }, { needReply: true });
    }
    expect(fe.isOpen).toBe(true);
  });

  it('nacks SET_VRING_BASE above 16 bits and SET_VRING_ADDR with the log flag', async () => {
    const fe = await negotiated();
    await expectNack(fe.request({ request: Request.SET_VRING_BASE, index: 0, num: 0x10000 }, { needReply: true }));
    await expectNack(
      fe.request(
        {
          request: Request.SET_VRING_ADDR,
          index: 0,
          flags: 1,
          descUserAddr: 0n,
          usedUserAddr: 0n,
          availUserAddr: 0n,
          logGuestAddr: 0n,
        },
        { needReply: true },
      ),
    );
  });

  it('nacks SET_VRING_KICK with an fd that is not an eventfd, and closes it', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const m = memfd(4096);
    const p = fe.request({ request: Request.SET_VRING_KICK, index: 0, fd: m.fd }, { needReply: true });
    native.close(m.fd);
    await expectNack(p);
    expect(fdKinds()).toEqual(before);
    expect(warnings().some((w) => w.includes('not an eventfd'))).toBe(true);
  });
});

describe('byte stream', () => {
  it('answers a GET_FEATURES that arrives one byte at a time', async () => {
    const peer = new RawPeer(sock);
    const { bytes } = encodeRequest({ request: Request.GET_FEATURES }, false);
    expect(bytes.length).toBe(12);
    for (let i = 0; i < bytes.length; i++) {
      peer.send(bytes.subarray(i, i + 1));
      await sleep(3);
    }
    const r = await peer.reply();
    expect(r.header).toEqual({ request: Request.GET_FEATURES, flags: HeaderFlag.VERSION | HeaderFlag.REPLY, size: 8 });
    expect(r.payload.readBigUInt64LE(0)).toBe(backend.device.features);
    expect(backend.connected).toBe(true);
  });

  it('keeps an fd with its message when the message arrives one byte at a time', async () => {
    const peer = new RawPeer(sock);
    const pf = encodeRequest({ request: Request.SET_PROTOCOL_FEATURES, value: ALL_PROTOCOL }, false).bytes;
    const efd = native.eventfd();
    const { bytes, fds } = encodeRequest({ request: Request.SET_VRING_CALL, index: 1, fd: efd }, true);
    const all = Buffer.concat([pf, bytes]);
    for (let i = 0; i < all.length; i++) {
      peer.send(all.subarray(i, i + 1), i === pf.length ? fds : []);
      if (i % 4 === 0) await sleep(1);
    }
    native.close(efd);
    const r = await peer.reply();
    expect(r.header.request).toBe(Request.SET_VRING_CALL);
    expect(r.payload.readBigUInt64LE(0)).toBe(0n);
    expect(warnings()).toEqual([]);
  });

  it('logs a peer that closes mid-message, closes the fd it sent, and serves the next front-end', async () => {
    const baseline = fdKinds();
    const fe = connect();
    await fe.requestU64({ request: Request.GET_FEATURES });
    const gone = once(backend, 'disconnect');
    const { bytes } = encodeRequest({ request: Request.GET_FEATURES }, false);
    const efd = native.eventfd();
    fe.sendRaw(bytes.subarray(0, 6), [efd]);
    native.close(efd);
    await sleep(20);
    fe.close();
    const [reason] = (await within(gone, 2000, 'disconnect')) as [Error | undefined];
    expect(reason?.message).toContain('mid-message');
    expect(warnings().some((w) => w.includes('disconnected') && w.includes('mid-message'))).toBe(true);
    expect(fdKinds()).toEqual(baseline);

    const fe2 = connect();
    expect(await fe2.requestU64({ request: Request.GET_FEATURES })).toBe(backend.device.features);
    expect(backend.connected).toBe(true);
  });
});

describe('connections', () => {
  it('refuses a second front-end while one is connected; the first keeps working', async () => {
    const fe1 = await negotiated();
    const fe2 = connect();
    const fe2Closed = closedOf(fe2);
    await within(fe2Closed, 2000, 'the second front-end to be refused');
    expect(fe2.isOpen).toBe(false);
    await expect(fe2.requestU64({ request: Request.GET_FEATURES })).rejects.toThrow();
    expect(warnings().some((w) => w.includes('refused a second front-end'))).toBe(true);

    expect(fe1.isOpen).toBe(true);
    expect(await fe1.requestU64({ request: Request.GET_FEATURES })).toBe(backend.device.features);
    await fe1.request({ request: Request.SET_STATUS, value: 1n }, { needReply: true });
    expect(await fe1.requestU64({ request: Request.GET_STATUS })).toBe(1n);

    // Once the first leaves, a new one gets in, with a fresh session.
    const gone = once(backend, 'disconnect');
    fe1.close();
    await within(gone, 2000, 'disconnect');
    const fe3 = await negotiated();
    expect(await fe3.requestU64({ request: Request.GET_STATUS })).toBe(0n);
  });
});

describe('the socket file', () => {
  it('is created with mode 0600 by default, or the socketMode asked for, and removed on close', () => {
    expect(fs.statSync(sock).isSocket()).toBe(true);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    const p2 = path.join(dir, 'group.sock');
    const b2 = startBackend(p2, { socketMode: 0o660 });
    expect(fs.statSync(p2).mode & 0o777).toBe(0o660);
    b2.close();
    expect(fs.existsSync(p2)).toBe(false);
  });

  it('replaces a stale socket file left by a dead server', async () => {
    const stale = path.join(dir, 'stale.sock');
    native.close(native.listen(stale, 0o644, 1));
    expect(fs.statSync(stale).isSocket()).toBe(true);
    const b = startBackend(stale);
    expect(fs.statSync(stale).mode & 0o777).toBe(0o600);
    const fe = connect(stale);
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(b.device.features);
  });

  it('refuses a path a live back-end serves (EADDRINUSE) and leaves that back-end serving', async () => {
    const other = new VhostUserBackend({ socketPath: sock });
    cleanups.push(() => other.close());
    let err: unknown;
    try {
      other.start();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VhostUserError);
    expect((err as VhostUserError).code).toBe('EADDRINUSE');
    other.close(); // must not remove the live back-end's socket
    expect(fs.statSync(sock).isSocket()).toBe(true);
    await sleep(50); // let the live back-end see the liveness probe come and go
    const fe = connect();
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(backend.device.features);
  });

  it('serves a front-end that connects right after a refused start (the liveness probe is no front-end)', async () => {
    // removeStaleSocket() probes the path by connecting and closing. The live back-end must not
    // hold that probe as its one front-end and refuse the real one that comes right after it.
    const other = new VhostUserBackend({ socketPath: sock });
    cleanups.push(() => other.close());
    expect(() => other.start()).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    const fe = connect();
    const features = await within(fe.requestU64({ request: Request.GET_FEATURES }), 1000, 'GET_FEATURES').catch(
      (e: Error) => e,
    );
    expect(features).toBe(backend.device.features);
    expect(warnings().filter((w) => w.includes('refused a second front-end'))).toEqual([]);
  });

  it('refuses a path that is not a socket (EEXIST) and leaves the file alone', () => {
    const file = path.join(dir, 'plain');
    fs.writeFileSync(file, 'keep me');
    const b = new VhostUserBackend({ socketPath: file });
    cleanups.push(() => b.close());
    expect(() => b.start()).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    b.close();
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
  });
});

describe('memory slots (CONFIGURE_MEM_SLOTS)', () => {
  const region = (i: number, size = 1n << 20n): MemoryRegion => ({
    guestPhysAddr: 0x1_0000_0000n * BigInt(i + 1),
    size,
    userAddr: 0x7e00_0000_0000n + 0x1_0000_0000n * BigInt(i),
    mmapOffset: 0n,
  });

  it('ADD_MEM_REG maps a region, REM_MEM_REG unmaps it, an unknown region is nacked', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const m = memfd(1 << 20);
    expect(mappingsOf(m.name)).toBe(0);
    await fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    native.close(m.fd);
    expect(mappingsOf(m.name)).toBe(1);
    expect(fdKinds()).toEqual(before);

    await fe.request({ request: Request.REM_MEM_REG, region: region(0), fd: null }, { needReply: true });
    expect(mappingsOf(m.name)).toBe(0);
    await expectNack(fe.request({ request: Request.REM_MEM_REG, region: region(0), fd: null }, { needReply: true }));
    await expectNack(fe.request({ request: Request.REM_MEM_REG, region: region(5), fd: null }, { needReply: true }));
    expect(warnings().some((w) => w.includes('REM_MEM_REG'))).toBe(true);
    expect(fdKinds()).toEqual(before);
    expect(fe.isOpen).toBe(true);
  });

  it('closes the fd an older front-end sends with REM_MEM_REG, and an overlapping or oversized ADD_MEM_REG', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const m = memfd(1 << 20);
    await fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });

    // Same guest range again: overlap.
    const p1 = fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    await expectNack(p1);
    // Beyond the end of the file.
    const p2 = fe.request({ request: Request.ADD_MEM_REG, region: region(1, 2n << 20n), fd: m.fd }, { needReply: true });
    await expectNack(p2);
    expect(mappingsOf(m.name)).toBe(1);

    await fe.request({ request: Request.REM_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    native.close(m.fd);
    expect(mappingsOf(m.name)).toBe(0);
    expect(fdKinds()).toEqual(before);
  });

  it('holds 32 regions and nacks the 33rd, closing its fd', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const m = memfd(1 << 16);
    for (let i = 0; i < 32; i++) {
      await fe.request({ request: Request.ADD_MEM_REG, region: region(i, 1n << 16n), fd: m.fd }, { needReply: true });
    }
    expect(mappingsOf(m.name)).toBe(32);
    await expectNack(fe.request({ request: Request.ADD_MEM_REG, region: region(32, 1n << 16n), fd: m.fd }, { needReply: true }));
    native.close(m.fd);
    expect(mappingsOf(m.name)).toBe(32);
    expect(fdKinds()).toEqual(before);
    // The connection ending unmaps them all.
    const gone = once(backend, 'disconnect');
    fe.close();
    await within(gone, 2000, 'disconnect');
    expect(mappingsOf(m.name)).toBe(0);
  });

  it('refuses ADD_MEM_REG when CONFIGURE_MEM_SLOTS was not negotiated, closing its fd', async () => {
    const fe = await negotiated(bit(ProtocolFeature.REPLY_ACK));
    const before = fdKinds();
    const m = memfd(1 << 20);
    const p = fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    native.close(m.fd);
    await expectNack(p);
    expect(mappingsOf(m.name)).toBe(0);
    expect(fdKinds()).toEqual(before);
  });
});

describe('isolation', () => {
  it('keeps traffic on one back-end correct while another is fed malformed messages', async () => {
    const aLogs: { level: LogLevel; msg: string }[] = [];
    const a = startBackend(path.join(dir, 'a.sock'), {}, aLogs);
    const memory = new GuestMemory({ regionSizes: [8 << 20, 8 << 20] });
    cleanups.push(() => memory.close());
    const state = { next: 0, bad: 0, firstBad: '' };
    const driver = await VirtioNetDriver.start({
      socketPath: a.socketPath,
      memory,
      queueSize: 128,
      onFrames: (frames) => {
        for (const f of frames) {
          const want = macSwapped(makeFrame(state.next));
          if (!f.equals(want) && state.bad++ === 0) state.firstBad = `frame ${state.next}: ${f.length} bytes, want ${want.length}`;
          state.next++;
        }
      },
    });
    cleanups.push(() => driver.close());

    const TOTAL = 20_000;
    const pumping = (async () => {
      let i = 0;
      while (i < TOTAL && driver.isOpen) {
        while (i < TOTAL && driver.txSpace > 0) driver.send(makeFrame(i++));
        driver.flush();
        if (i < TOTAL) await driver.waitTxSpace();
      }
      const deadline = Date.now() + 10_000;
      while (state.next < TOTAL && Date.now() < deadline && driver.isOpen) await sleep(2);
    })();

    const u64 = (v: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(v);
      return b;
    };
    const V = HeaderFlag.VERSION;
    const malformed: { what: string; bytes: Buffer; fds?: number }[] = [
      { what: 'version 0', bytes: header(Request.GET_FEATURES, 0, 0) },
      { what: 'version 2', bytes: header(Request.GET_FEATURES, 2, 0) },
      { what: 'REPLY flag on a request', bytes: header(Request.GET_FEATURES, V | HeaderFlag.REPLY, 0) },
      { what: 'payload over 4096', bytes: header(Request.SET_FEATURES, V, 5000) },
      { what: 'unknown request, no NEED_REPLY', bytes: Buffer.concat([header(77, V, 4), Buffer.alloc(4)]) },
      { what: 'GET_FEATURES with a payload', bytes: Buffer.concat([header(Request.GET_FEATURES, V, 8), u64(0n)]) },
      { what: 'SET_FEATURES short', bytes: Buffer.concat([header(Request.SET_FEATURES, V, 4), Buffer.alloc(4)]) },
      { what: 'SET_VRING_KICK without fd', bytes: Buffer.concat([header(Request.SET_VRING_KICK, V, 8), u64(0n)]) },
      { what: 'SET_VRING_KICK unknown bits', bytes: Buffer.concat([header(Request.SET_VRING_KICK, V, 8), u64(1n << 40n)]), fds: 1 },
      { what: 'SET_MEM_TABLE 9 regions', bytes: Buffer.concat([header(Request.SET_MEM_TABLE, V, 8), u64(9n)]) },
      { what: 'SET_MEM_TABLE size mismatch', bytes: Buffer.concat([header(Request.SET_MEM_TABLE, V, 8 + 16), u64(1n), Buffer.alloc(16)]), fds: 1 },
      { what: 'GET_FEATURES with 3 fds', bytes: header(Request.GET_FEATURES, V, 0), fds: 3 },
      { what: 'SET_VRING_ADDR unknown flags', bytes: Buffer.concat([header(Request.SET_VRING_ADDR, V, 40), Buffer.alloc(4), Buffer.from([2, 0, 0, 0]), Buffer.alloc(32)]) },
      { what: 'garbage', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n') },
      { what: 'half a header', bytes: header(Request.GET_FEATURES, V, 0).subarray(0, 6) },
    ];
    const baseline = fdKinds();
    let rounds = 0;
    // Malformed connections to B for as long as A's traffic runs (at least two rounds of them).
    while ((state.next < TOTAL || rounds < 2) && rounds < 40) {
      for (const m of malformed) {
        const gone = once(backend, 'disconnect');
        const fe = connect();
        const fds = Array.from({ length: m.fds ?? 0 }, () => native.eventfd());
        fe.sendRaw(m.bytes, fds);
        for (const fd of fds) native.close(fd);
        if (m.what === 'half a header') {
          await sleep(1);
          fe.close();
        }
        await within(gone, 2000, `the back-end to drop the connection (${m.what})`);
        fe.close();
      }
      rounds++;
    }
    await pumping;
    expect(rounds).toBeGreaterThanOrEqual(2);
    expect(state.firstBad).toBe('');
    expect(state.next).toBe(TOTAL);
    expect(aLogs.filter((l) => l.level === 'warn')).toEqual([]);
    // B: every malformed connection was dropped with a reason, and left nothing behind.
    expect(warnings().filter((w) => w.startsWith('front-end disconnected')).length).toBe(rounds * malformed.length);
    expect(fdKinds()).toEqual(baseline);
    // And B still serves a well-behaved front-end.
    const fe = await negotiated();
    expect(await fe.requestU64({ request: Request.GET_QUEUE_NUM })).toBe(1n);
  });
});
