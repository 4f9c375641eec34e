/**
 * Property-based fuzzing (fast-check) of the message codec and of the session state machine:
 * random bytes, random well-formed messages and random sequences of them, with random fds, sent
 * over a real socket. Whatever arrives, the back-end neither crashes nor leaks an fd or a mapping,
 * and keeps serving the next, well-behaved front-end.
 * FUZZ_RUNS sets the number of runs (npm test uses a short run; `npm run fuzz` a long one).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { once } from 'node:events';
import { native } from '../../lib/binding';
import { VhostUserBackend } from '../../lib/backend';
import { VhostUserError } from '../../lib/errors';
import { decodeRequest, encodeRequest, parseRequestHeader, type Message } from '../../lib/protocol/codec';
import { HEADER_SIZE, Request } from '../../lib/protocol/constants';
import { GuestMemory } from '../../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../../lib/frontend/net_driver';
import { countGuestMappings, fdKinds, makeFrame } from '../helpers/frames';
import { decodeDeviceState, encodeDeviceState } from '../../lib/net/device_state';

const RUNS = Number(process.env.FUZZ_RUNS ?? 60);

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const u32 = fc.nat({ max: 0xffff_ffff });
const smallIndex = fc.oneof(fc.nat({ max: 3 }), u32);
const region = fc.record({
  guestPhysAddr: fc.oneof(fc.constant(0n), u64),
  size: fc.oneof(fc.constant(4096n), fc.constant(1n << 20n), u64),
  userAddr: u64,
  mmapOffset: fc.oneof(fc.constant(0n), fc.constant(4096n), u64),
});

/** Well-formed messages of the kinds a front-end sends most; fds are placeholders (-1) filled later. */
const message: fc.Arbitrary<Message> = fc.oneof(
  fc.constantFrom<Message>(
    { request: Request.GET_FEATURES },
    { request: Request.SET_OWNER },
    { request: Request.RESET_OWNER },
    { request: Request.GET_PROTOCOL_FEATURES },
    { request: Request.GET_QUEUE_NUM },
    { request: Request.GET_STATUS },
    { request: Request.GET_MAX_MEM_SLOTS },
    { request: Request.CHECK_DEVICE_STATE },
  ),
  fc.record({
    request: fc.constant(Request.SET_DEVICE_STATE_FD),
    direction: fc.oneof(fc.constantFrom(0, 1), u32),
    phase: fc.oneof(fc.constant(0), u32),
    fd: fc.constant(-1),
  }) as fc.Arbitrary<Message>,
  fc.record({
    request: fc.constantFrom(Request.SET_FEATURES, Request.SET_PROTOCOL_FEATURES, Request.SET_STATUS, Request.NET_SET_MTU),
    value: u64,
  }) as fc.Arbitrary<Message>,
  fc.record({
    request: fc.constantFrom(Request.SET_VRING_NUM, Request.SET_VRING_BASE, Request.GET_VRING_BASE, Request.SET_VRING_ENABLE),
    index: smallIndex,
    num: fc.oneof(fc.constantFrom(0, 1, 256, 1024, 32768), u32),
  }) as fc.Arbitrary<Message>,
  fc.record({
    request: fc.constant(Request.SET_VRING_ADDR),
    index: smallIndex,
    flags: fc.constantFrom(0, 1),
    descUserAddr: u64,
    usedUserAddr: u64,
    availUserAddr: u64,
    logGuestAddr: u64,
  }) as fc.Arbitrary<Message>,
  fc.record({
    request: fc.constantFrom(Request.SET_VRING_KICK, Request.SET_VRING_CALL, Request.SET_VRING_ERR),
    index: fc.nat({ max: 255 }),
    fd: fc.constantFrom(-1, null),
  }) as fc.Arbitrary<Message>,
  fc.record({
    request: fc.constant(Request.SET_MEM_TABLE),
    regions: fc.array(
      region.map((r) => ({ ...r, fd: -1 })),
      { minLength: 1, maxLength: 8 },
    ),
  }) as fc.Arbitrary<Message>,
  fc.record({ request: fc.constantFrom(Request.ADD_MEM_REG, Request.REM_MEM_REG), region, fd: fc.constant(-1) }) as fc.Arbitrary<Message>,
);

/** What goes on the wire: an encoded message (maybe with extra fds), or raw bytes. */
const wireItem = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      msg: message,
      needReply: fc.boolean(),
      extraFds: fc.nat({ max: 2 }),
      fdKind: fc.constantFrom('eventfd', 'memfd'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ raw: fc.uint8Array({ minLength: 1, maxLength: 64 }), fds: fc.nat({ max: 2 }) }) },
);

function makeFd(kind: 'eventfd' | 'memfd'): number {
  return kind === 'eventfd' ? native.eventfd() : native.memfdCreate('vhost-user-fuzz', 1 << 20);
}

describe('codec properties', () => {
  it('decodes arbitrary bytes to a message or a VhostUserError, never anything else', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: HEADER_SIZE, maxLength: 400 }),
        fc.array(fc.nat({ max: 5000 }), { maxLength: 10 }),
        (bytes, fds) => {
          const buf = Buffer.from(bytes);
          try {
            const h = parseRequestHeader(buf);
            decodeRequest({ request: h.request, flags: h.flags, payload: buf.subarray(HEADER_SIZE, HEADER_SIZE + h.size), fds });
          } catch (err) {
            if (!(err instanceof VhostUserError)) throw err;
          }
        },
      ),
      { numRuns: RUNS * 50 },
    );
  });

  it('round-trips every well-formed message', () => {
    fc.assert(
      fc.property(message, fc.boolean(), (msg, needReply) => {
        const withFds = JSON.parse(
          JSON.stringify(msg, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)),
          (_, v) => (typeof v === 'string' && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v),
        ) as Message;
        // Give every fd slot a (fake) fd so that the message is well-formed.
        if ('fd' in withFds && withFds.fd === -1) (withFds as { fd: number }).fd = 100;
        if ('regions' in withFds) withFds.regions.forEach((r, i) => (r.fd = 200 + i));
        let encoded;
        try {
          encoded = encodeRequest(withFds, needReply);
        } catch (err) {
          if (err instanceof VhostUserError) return; // not encodable (e.g. a region that wraps): rejected on our side
          throw err;
        }
        const h = parseRequestHeader(encoded.bytes);
        const back = decodeRequest({ request: h.request, flags: h.flags, payload: encoded.bytes.subarray(HEADER_SIZE), fds: encoded.fds });
        expect(back).toEqual(withFds);
      }),
      { numRuns: RUNS * 50 },
    );
  });
});

/** A port's state as its native half hands it over: forwards spelled out, libslirp's bytes, unicast MACs. */
const portState = fc.record({
  forwards: fc.array(
    fc
      .tuple(fc.constantFrom('tcp', 'udp'), fc.nat({ max: 255 }), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }))
      .map(([p, h, hp, gp]) => `${p}:127.0.0.${h}:${hp}:10.0.2.15:${gp}`),
    { maxLength: 5 },
  ),
  slirpVersion: fc.integer({ min: -1, max: 10 }),
  slirp: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
  macs: fc.array(
    fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => Buffer.from([b[0] & 0xfe, 1, b[2], b[3], b[4], b[5]])),
    { maxLength: 20 },
  ),
});

describe('device state blob properties', () => {
  it('decodes arbitrary and mutated blobs to a state or an EBADMSG refusal, never anything else', () => {
    const valid = portState.map((st) => encodeDeviceState('switch', { ...st, forwards: [], slirpVersion: -1 }));
    const mutated = fc
      .tuple(valid, fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([b, edits]) => {
        for (const [at, v] of edits) b[at % b.length] = v;
        return b;
      });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
          mutated,
        ),
        fc.constantFrom('user', 'switch'),
        (blob, port) => {
          try {
            decodeDeviceState(blob, port);
          } catch (err) {
            if (!(err instanceof VhostUserError) || err.code !== 'EBADMSG') throw err;
          }
        },
      ),
      { numRuns: RUNS * 50 },
    );
  });

  it("round-trips a port's state: forwards as the user writes them, libslirp's bytes, MACs", () => {
    fc.assert(
      fc.property(portState, (st) => {
        const user = decodeDeviceState(encodeDeviceState('user', { ...st, macs: [] }), 'user');
        expect(user.forwards).toEqual(st.forwards.map((f) => f.replace(':10.0.2.15:', ':')));
        expect(user.slirpVersion).toBe(st.slirpVersion);
        expect(user.slirp).toEqual(st.slirpVersion >= 0 ? st.slirp : Buffer.alloc(0));
        const sw = decodeDeviceState(
          encodeDeviceState('switch', { forwards: [], slirpVersion: -1, slirp: Buffer.alloc(0), macs: st.macs }),
          'switch',
        );
        expect(sw.macs).toEqual(st.macs);
      }),
      { numRuns: RUNS * 50 },
    );
  });
});

describe('session state machine under random message sequences', () => {
  let dir: string;
  let backend: VhostUserBackend;
  let memory: GuestMemory;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-fuzz-'));
    backend = new VhostUserBackend({
      socketPath: path.join(dir, 'fuzz.sock'),
      device: { port: 'loopback' },
      log: process.env.FUZZ_LOG ? (l, m) => console.log(l, m) : undefined,
    });
    backend.start();
    memory = new GuestMemory();
  });

  afterAll(() => {
    backend.close();
    memory.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('survives any sequence with no fd or mapping leak, and serves a good front-end after', async () => {
    const baseline = fdKinds();
    const mappings = countGuestMappings();
    await fc.assert(
      fc.asyncProperty(fc.array(wireItem, { minLength: 1, maxLength: 25 }), async (items) => {
        const accepted = once(backend, 'connect');
        const sock = native.connect(backend.socketPath);
        await accepted; // the back-end holds the connection before anything is sent
        const mine: number[] = [];
        try {
          for (const item of items) {
            if ('raw' in item) {
              const fds = Array.from({ length: item.fds }, () => makeFd('eventfd'));
              mine.push(...fds);
              if (native.sendmsg(sock, Buffer.from(item.raw), fds) < 0) break;
              continue;
            }
            const msg = item.msg;
            const fds: number[] = [];
            const fd = () => {
              const f = makeFd(msg.request === Request.SET_MEM_TABLE || msg.request === Request.ADD_MEM_REG ? 'memfd' : item.fdKind);
              fds.push(f);
              mine.push(f);
              return f;
            };
            const m = { ...msg } as Message & { fd?: number | null; regions?: { fd: number }[] };
            if (m.fd === -1) m.fd = fd();
            if (m.regions) m.regions = m.regions.map((r) => ({ ...r, fd: fd() }));
            let encoded: { bytes: Buffer; fds: number[] };
            try {
              encoded = encodeRequest(m as Message, item.needReply);
            } catch {
              continue; // not encodable: our own encoder refuses it
            }
            const sendFds = [...encoded.fds];
            for (let i = 0; i < item.extraFds; i++) sendFds.push(fd());
            // Replies are never read: a back-end that cannot write them must cope too.
            if (native.sendmsg(sock, encoded.bytes, sendFds) < 0) break;
          }
        } catch {
          // the back-end closed the connection: also a valid outcome
        } finally {
          for (const f of mine) native.close(f);
          const gone = backend.connected ? once(backend, 'disconnect') : Promise.resolve();
          native.close(sock);
          await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
        }
        expect(backend.connected).toBe(false);
        expect(fdKinds()).toEqual(baseline);
        expect(countGuestMappings()).toBe(mappings);
      }),
      { numRuns: RUNS },
    );

    let received = 0;
    memory.resetAllocator();
    const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory, onFrames: (f) => (received += f.length) });
    for (let i = 0; i < 100; i++) driver.send(makeFrame(i));
    driver.flush();
    for (let t = 0; t < 500 && received < 100; t++) await new Promise((r) => setTimeout(r, 5));
    driver.close();
    expect(received).toBe(100);
  }, 120_000);
});
