/**
 * The back-end's socket, below the protocol: a byte stream that may arrive in any pieces (fds
 * included), one front-end at a time, the socket file's life (mode, stale files, a live server),
 * and malformed streams ending only their own connection. Request by request: protocol.test.ts.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { VhostUserBackend } from '../lib/backend';
import { native } from '../lib/binding';
import { VhostUserError } from '../lib/errors';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { encodeRequest } from '../lib/protocol/codec';
import { HeaderFlag, Request } from '../lib/protocol/constants';
import type { LogLevel } from '../lib/protocol/session';
import { ALL_PROTOCOL, closedOf, useControlFixture } from './helpers/control';
import { sleep, within } from './helpers/until';
import { fdKinds, macSwapped, makeFrame } from './helpers/frames';
import { rawHeader as header } from './helpers/messages';

const t = useControlFixture('vhost-user-socket-');
const { connect, negotiated, warnings, startBackend } = t;

describe('byte stream', () => {
  it('answers a GET_FEATURES that arrives one byte at a time', async () => {
    const peer = t.rawPeer();
    const { bytes } = encodeRequest({ request: Request.GET_FEATURES }, false);
    expect(bytes.length).toBe(12);
    for (let i = 0; i < bytes.length; i++) {
      peer.send(bytes.subarray(i, i + 1));
      await sleep(3);
    }
    const r = await peer.reply();
    expect(r.header).toEqual({ request: Request.GET_FEATURES, flags: HeaderFlag.VERSION | HeaderFlag.REPLY, size: 8 });
    expect(r.payload.readBigUInt64LE(0)).toBe(t.backend.device.features);
    expect(t.backend.connected).toBe(true);
  });

  it('keeps an fd with its message when the message arrives one byte at a time', async () => {
    const peer = t.rawPeer();
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
    const gone = once(t.backend, 'disconnect');
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
    expect(await fe2.requestU64({ request: Request.GET_FEATURES })).toBe(t.backend.device.features);
    expect(t.backend.connected).toBe(true);
  });
});

describe('a message left unfinished', () => {
  const held = (name: string, messageTimeoutMs?: number) => {
    const socketPath = path.join(t.dir, name);
    return { socketPath, backend: t.startBackend(socketPath, messageTimeoutMs === undefined ? {} : { messageTimeoutMs }) };
  };

  it('closes a front-end that sends half a header and nothing more, says why, and serves the next', async () => {
    const { socketPath, backend } = held('half.sock', 300);
    const baseline = fdKinds();
    const peer = t.rawPeer(socketPath);
    const gone = once(backend, 'disconnect');
    const efd = native.eventfd();
    peer.send(encodeRequest({ request: Request.GET_FEATURES }, false).bytes.subarray(0, 6), [efd]);
    native.close(efd);
    const t0 = Date.now();
    const [reason] = (await within(gone, 3000, 'disconnect')) as [VhostUserError | undefined];
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(reason?.code).toBe('ETIMEDOUT');
    expect(reason?.message).toBe(
      'the peer left a message unfinished for 0.3 s: closing the connection (allow longer with --message-timeout S, or messageTimeoutMs in a program)',
    );
    expect(warnings().some((w) => w.includes('front-end disconnected: the peer left a message unfinished'))).toBe(true);
    peer.close();
    expect(fdKinds()).toEqual(baseline); // the fd it sent with the half message is closed too
    const fe = t.connect(socketPath);
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(backend.device.features);
  });

  it('times the message from its first byte: a front-end trickling it out is closed all the same', async () => {
    const { socketPath, backend } = held('trickle.sock', 300);
    const accepted = once(backend, 'connect');
    const peer = t.rawPeer(socketPath);
    await accepted;
    const gone = once(backend, 'disconnect');
    const bytes = encodeRequest({ request: Request.SET_FEATURES, value: 1n << 32n }, false).bytes;
    const t0 = Date.now();
    for (let i = 0; i < bytes.length - 1 && backend.connected; i++) {
      peer.send(bytes.subarray(i, i + 1));
      await sleep(50); // 19 bytes over ~1 s: each byte well within the timeout, the message not
    }
    await within(gone, 3000, 'disconnect');
    expect(Date.now() - t0).toBeLessThan(900);
  });

  it('leaves alone a front-end that is idle between whole messages, and one with the timeout off', async () => {
    const quiet = held('idle.sock', 200);
    const fe = t.rawPeer(quiet.socketPath);
    const { bytes } = encodeRequest({ request: Request.GET_FEATURES }, false);
    fe.send(bytes);
    expect((await fe.reply()).payload.readBigUInt64LE(0)).toBe(quiet.backend.device.features);
    // A message in two halves within the timeout, then idle for longer than it: served, kept.
    fe.send(bytes.subarray(0, 6));
    await sleep(100);
    fe.send(bytes.subarray(6));
    expect((await fe.reply()).payload.readBigUInt64LE(0)).toBe(quiet.backend.device.features);
    await sleep(500);
    expect(quiet.backend.connected, warnings().join('\n')).toBe(true);
    fe.send(bytes);
    expect((await fe.reply()).payload.readBigUInt64LE(0)).toBe(quiet.backend.device.features);

    const forever = held('forever.sock', 0);
    const peer = t.rawPeer(forever.socketPath);
    peer.send(bytes.subarray(0, 6));
    await sleep(400);
    expect(forever.backend.connected).toBe(true);
    expect(() => new VhostUserBackend({ socketPath: '/tmp/x.sock', messageTimeoutMs: -1 })).toThrow(
      'messageTimeoutMs must be an integer >= 0 (0: wait for ever), got -1',
    );
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
    expect(await fe1.requestU64({ request: Request.GET_FEATURES })).toBe(t.backend.device.features);
    await fe1.request({ request: Request.SET_STATUS, value: 1n }, { needReply: true });
    expect(await fe1.requestU64({ request: Request.GET_STATUS })).toBe(1n);

    // Once the first leaves, a new one gets in, with a fresh session.
    const gone = once(t.backend, 'disconnect');
    fe1.close();
    await within(gone, 2000, 'disconnect');
    const fe3 = await negotiated();
    expect(await fe3.requestU64({ request: Request.GET_STATUS })).toBe(0n);
  });
});

describe('the socket file', () => {
  it('is created with mode 0600 by default, or the socketMode asked for, and removed on close', () => {
    expect(fs.statSync(t.sock).isSocket()).toBe(true);
    expect(fs.statSync(t.sock).mode & 0o777).toBe(0o600);
    const p2 = path.join(t.dir, 'group.sock');
    const b2 = startBackend(p2, { socketMode: 0o660 });
    expect(fs.statSync(p2).mode & 0o777).toBe(0o660);
    b2.close();
    expect(fs.existsSync(p2)).toBe(false);
  });

  it('replaces a stale socket file left by a dead server', async () => {
    const stale = path.join(t.dir, 'stale.sock');
    native.close(native.listen(stale, 0o644, 1));
    expect(fs.statSync(stale).isSocket()).toBe(true);
    const b = startBackend(stale);
    expect(fs.statSync(stale).mode & 0o777).toBe(0o600);
    const fe = connect(stale);
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(b.device.features);
  });

  it('refuses a path a live back-end serves (EADDRINUSE) and leaves that back-end serving', async () => {
    const other = new VhostUserBackend({ socketPath: t.sock, device: { port: 'loopback' } });
    t.onCleanup(() => other.close());
    let err: unknown;
    try {
      other.start();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VhostUserError);
    expect((err as VhostUserError).code).toBe('EADDRINUSE');
    other.close(); // must not remove the live back-end's socket
    expect(fs.statSync(t.sock).isSocket()).toBe(true);
    await sleep(50); // let the live back-end see the liveness probe come and go
    const fe = connect();
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(t.backend.device.features);
  });

  it('serves a front-end that connects right after a refused start (the liveness probe is no front-end)', async () => {
    // removeStaleSocket() probes the path by connecting and closing. The live back-end must not
    // hold that probe as its one front-end and refuse the real one that comes right after it.
    const other = new VhostUserBackend({ socketPath: t.sock, device: { port: 'loopback' } });
    t.onCleanup(() => other.close());
    expect(() => other.start()).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
    const fe = connect();
    const features = await within(fe.requestU64({ request: Request.GET_FEATURES }), 1000, 'GET_FEATURES').catch((e: Error) => e);
    expect(features).toBe(t.backend.device.features);
    expect(warnings().filter((w) => w.includes('refused a second front-end'))).toEqual([]);
  });

  it('refuses a path that is not a socket (EEXIST) and leaves the file alone', () => {
    const file = path.join(t.dir, 'plain');
    fs.writeFileSync(file, 'keep me');
    const b = new VhostUserBackend({ socketPath: file, device: { port: 'loopback' } });
    t.onCleanup(() => b.close());
    expect(() => b.start()).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    b.close();
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
  });
});

describe('isolation', () => {
  it('keeps traffic on one back-end correct while another is fed malformed messages', async () => {
    const aLogs: { level: LogLevel; msg: string }[] = [];
    const a = startBackend(path.join(t.dir, 'a.sock'), {}, aLogs);
    const memory = new GuestMemory({ regionSizes: [8 << 20, 8 << 20] });
    t.onCleanup(() => memory.close());
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
    t.onCleanup(() => driver.close());

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
      {
        what: 'SET_MEM_TABLE size mismatch',
        bytes: Buffer.concat([header(Request.SET_MEM_TABLE, V, 8 + 16), u64(1n), Buffer.alloc(16)]),
        fds: 1,
      },
      { what: 'GET_FEATURES with 3 fds', bytes: header(Request.GET_FEATURES, V, 0), fds: 3 },
      {
        what: 'SET_VRING_ADDR unknown flags',
        bytes: Buffer.concat([header(Request.SET_VRING_ADDR, V, 40), Buffer.alloc(4), Buffer.from([2, 0, 0, 0]), Buffer.alloc(32)]),
      },
      { what: 'garbage', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n') },
      { what: 'half a header', bytes: header(Request.GET_FEATURES, V, 0).subarray(0, 6) },
    ];
    const baseline = fdKinds();
    let rounds = 0;
    // Malformed connections to B for as long as A's traffic runs (at least two rounds of them).
    while ((state.next < TOTAL || rounds < 2) && rounds < 40) {
      for (const m of malformed) {
        const gone = once(t.backend, 'disconnect');
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
