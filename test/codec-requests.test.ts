/** Front-end requests: encode/decode round trips, every way decodeRequest refuses one, and encodeRequest's input checks. */
import { describe, it, expect } from 'vitest';
import {
  CONFIG_SPACE_MAX,
  HEADER_SIZE,
  HeaderFlag,
  MAX_PAYLOAD_SIZE,
  Request,
  VRING_NOFD_MASK,
  requestName,
} from '../lib/protocol/constants';
import { Message, decodeRequest, encodeRequest, parseRequestHeader, replyKind, requestSpec } from '../lib/protocol/codec';
import { FD, U64_MAX, catchError, expectReject, extraSamples, named, raw, rawOf, region, samples, toRaw, u64 } from './helpers/codec';

describe('request round trip', () => {
  it('samples cover every request 1..43', () => {
    expect(samples.map((m) => m.request)).toEqual(Array.from({ length: 43 }, (_, i) => i + 1));
    for (let c = 1; c <= 43; c++) expect(requestSpec(c)).not.toBeNull();
  });

  it.each(named([...samples, ...extraSamples]))('%s', (_name, msg) => {
    const { bytes, fds } = encodeRequest(msg, false);
    const r = toRaw(bytes, fds);
    expect(r.flags).toBe(HeaderFlag.VERSION);
    const fdsBefore = [...r.fds];
    const decoded = decodeRequest(r);
    expect(decoded).toEqual(msg);
    expect(r.fds).toEqual(fdsBefore); // decoding copies, never mutates
    // And encoding the decoded message gives the same bytes back.
    expect(encodeRequest(decoded, false).bytes.equals(bytes)).toBe(true);
  });

  it('sets NEED_REPLY only when asked', () => {
    const msg: Message = { request: Request.SET_VRING_ENABLE, index: 0, num: 1 };
    expect(parseRequestHeader(encodeRequest(msg, true).bytes).flags).toBe(HeaderFlag.VERSION | HeaderFlag.NEED_REPLY);
    expect(parseRequestHeader(encodeRequest(msg, false).bytes).flags).toBe(HeaderFlag.VERSION);
    // NEED_REPLY is accepted on decode.
    const r = rawOf(msg);
    expect(decodeRequest({ ...r, flags: HeaderFlag.VERSION | HeaderFlag.NEED_REPLY })).toEqual(msg);
  });

  it('puts fds in order: one per region, the vring fd, none with NOFD', () => {
    const table = samples[4];
    expect(encodeRequest(table, false).fds).toEqual([FD, FD + 1]);
    expect(encodeRequest({ request: Request.SET_VRING_KICK, index: 2, fd: 5 }, false).fds).toEqual([5]);
    const nofd = encodeRequest({ request: Request.SET_VRING_KICK, index: 2, fd: null }, false);
    expect(nofd.fds).toEqual([]);
    expect(nofd.bytes.readBigUInt64LE(HEADER_SIZE)).toBe(BigInt(VRING_NOFD_MASK | 2));
    expect(encodeRequest({ request: Request.REM_MEM_REG, region: region(1), fd: null }, false).fds).toEqual([]);
  });

  it('uses the QEMU wire sizes', () => {
    const size = (m: Message) => encodeRequest(m, false).bytes.length - HEADER_SIZE;
    expect(size(samples[0])).toBe(0); // GET_FEATURES: no payload
    expect(size(samples[4])).toBe(8 + 2 * 32); // SET_MEM_TABLE
    expect(size(samples[5])).toBe(16); // SET_LOG_BASE: log description
    expect(size(samples[8])).toBe(40); // SET_VRING_ADDR
    expect(size(samples[18])).toBe(8); // SEND_RARP
    expect(size(samples[21])).toBe(32); // IOTLB_MSG: struct vhost_iotlb_msg incl. tail padding
    expect(size(samples[23])).toBe(12 + 12); // GET_CONFIG
    expect(size(samples[30])).toBe(24); // GET_INFLIGHT_FD: VhostUserInflight incl. tail padding
    expect(size(samples[36])).toBe(40); // ADD_MEM_REG
    expect(size(samples[40])).toBe(16); // GET_SHARED_OBJECT
    expect(size(samples[41])).toBe(8); // SET_DEVICE_STATE_FD
  });

  it('decodes little-endian bytes laid out by hand', () => {
    const p = Buffer.alloc(40);
    p.writeUInt32LE(2, 0);
    p.writeUInt32LE(0, 4);
    p.writeBigUInt64LE(0x1111n, 8);
    p.writeBigUInt64LE(0x2222n, 16);
    p.writeBigUInt64LE(0x3333n, 24);
    p.writeBigUInt64LE(0x4444n, 32);
    expect(decodeRequest(raw(Request.SET_VRING_ADDR, p))).toEqual({
      request: Request.SET_VRING_ADDR,
      index: 2,
      flags: 0,
      descUserAddr: 0x1111n,
      usedUserAddr: 0x2222n,
      availUserAddr: 0x3333n,
      logGuestAddr: 0x4444n,
    });
    // SEND_RARP: first 6 bytes are the MAC, the last two are ignored.
    const rarp = Buffer.from([1, 2, 3, 4, 5, 6, 0xee, 0xff]);
    const m = decodeRequest(raw(Request.SEND_RARP, rarp));
    expect(m).toEqual({ request: Request.SEND_RARP, mac: Buffer.from([1, 2, 3, 4, 5, 6]) });
  });

  it('decoded buffers do not alias the receive buffer', () => {
    const r = rawOf({ request: Request.SET_CONFIG, offset: 0, flags: 0, payload: Buffer.from([1, 2, 3]) });
    const m = decodeRequest(r);
    r.payload.fill(0);
    expect(m).toEqual({ request: Request.SET_CONFIG, offset: 0, flags: 0, payload: Buffer.from([1, 2, 3]) });
  });
});

describe('request rejections', () => {
  const sized = named(samples.filter((m) => m.request !== Request.CREATE_CRYPTO_SESSION));

  it.each(sized)('%s: payload one byte long', (_n, msg) => {
    const r = rawOf(msg);
    expectReject({ ...r, payload: Buffer.concat([r.payload, Buffer.alloc(1)]) }, 'EBADMSG_SIZE');
  });

  it.each(sized.filter(([, m]) => rawOf(m).payload.length > 0))('%s: payload one byte short', (_n, msg) => {
    const r = rawOf(msg);
    expectReject({ ...r, payload: r.payload.subarray(0, r.payload.length - 1) }, 'EBADMSG_SIZE');
  });

  it('CREATE_CRYPTO_SESSION: bounded size', () => {
    expectReject(raw(Request.CREATE_CRYPTO_SESSION, Buffer.alloc(15)), 'EBADMSG_SIZE');
    expectReject(raw(Request.CREATE_CRYPTO_SESSION, Buffer.alloc(0)), 'EBADMSG_SIZE');
    expectReject(raw(Request.CREATE_CRYPTO_SESSION, Buffer.alloc(MAX_PAYLOAD_SIZE + 1)), 'EBADMSG_SIZE');
  });

  it.each(named(samples))('%s: wrong version bits and REPLY bit', (_n, msg) => {
    const r = rawOf(msg);
    for (const v of [0, 2, 3]) {
      expectReject({ ...r, flags: (r.flags & ~HeaderFlag.VERSION_MASK) | v }, 'EBADMSG_VERSION');
    }
    expectReject({ ...r, flags: r.flags | HeaderFlag.REPLY }, 'EBADMSG_REPLY_FLAG');
  });

  // REM_MEM_REG takes 0 or 1 fd: covered below.
  const withFds = [...samples, ...extraSamples].filter((m) => m.request !== Request.REM_MEM_REG && encodeRequest(m, false).fds.length > 0);

  it.each(named(withFds))('%s: missing fd', (_n, msg) => {
    const r = rawOf(msg);
    const err = expectReject({ ...r, fds: r.fds.slice(0, -1) }, 'EBADMSG_FDS');
    expect(err.message).toContain(requestName(msg.request));
    expect(err.op).toBe(requestName(msg.request));
  });

  it.each(named(samples))('%s: extra fd', (_n, msg) => {
    const r = rawOf(msg);
    expectReject({ ...r, fds: [...r.fds, 1999] }, 'EBADMSG_FDS');
  });

  it('REM_MEM_REG accepts 0 or 1 fd, not 2', () => {
    const r = rawOf({ request: Request.REM_MEM_REG, region: region(1), fd: null });
    expect(decodeRequest({ ...r, fds: [] })).toMatchObject({ fd: null });
    expect(decodeRequest({ ...r, fds: [7] })).toMatchObject({ fd: 7 });
    expectReject({ ...r, fds: [7, 8] }, 'EBADMSG_FDS');
  });

  it.each([0, 44, 1000, 0xffffffff])('unknown request code %i', (code) => {
    // The header parser lets it through so that the payload can be read and discarded ...
    const hdr = Buffer.alloc(HEADER_SIZE);
    hdr.writeUInt32LE(code, 0);
    hdr.writeUInt32LE(HeaderFlag.VERSION | HeaderFlag.NEED_REPLY, 4);
    hdr.writeUInt32LE(8, 8);
    expect(parseRequestHeader(hdr)).toEqual({ request: code, flags: 9, size: 8 });
    // ... decodeRequest rejects it.
    const err = expectReject(raw(code, Buffer.alloc(8), [FD]), 'ENOTSUP_REQUEST');
    expect(err.message).toContain(String(code));
    expect(replyKind(code)).toBeNull();
    expect(requestSpec(code)).toBeNull();
  });

  describe('SET_MEM_TABLE', () => {
    function table(n: number, announced = n): Buffer {
      const p = Buffer.alloc(8 + 32 * n);
      p.writeUInt32LE(announced, 0);
      for (let i = 0; i < n; i++) {
        const r = region(i);
        p.writeBigUInt64LE(r.guestPhysAddr, 8 + 32 * i);
        p.writeBigUInt64LE(r.size, 16 + 32 * i);
        p.writeBigUInt64LE(r.userAddr, 24 + 32 * i);
        p.writeBigUInt64LE(r.mmapOffset, 32 + 32 * i);
      }
      return p;
    }
    const fds = (n: number) => Array.from({ length: n }, (_, i) => FD + i);

    it('accepts 1..8 regions', () => {
      for (const n of [1, 8]) {
        const m = decodeRequest(raw(Request.SET_MEM_TABLE, table(n), fds(n)));
        expect(m).toMatchObject({ regions: expect.any(Array) });
        if (m.request === Request.SET_MEM_TABLE) {
          expect(m.regions.map((r) => r.fd)).toEqual(fds(n));
        }
      }
    });

    it('rejects 0 regions', () => {
      expectReject(raw(Request.SET_MEM_TABLE, table(0)), 'EBADMSG_REGIONS');
    });

    it('rejects more than 8 regions', () => {
      expectReject(raw(Request.SET_MEM_TABLE, table(9), fds(9)), 'EBADMSG_REGIONS');
      expectReject(raw(Request.SET_MEM_TABLE, table(1, 0xffffffff), fds(1)), 'EBADMSG_REGIONS');
    });

    it('rejects a region count that disagrees with the payload size', () => {
      expectReject(raw(Request.SET_MEM_TABLE, table(2, 3), fds(3)), 'EBADMSG_SIZE');
      expectReject(raw(Request.SET_MEM_TABLE, table(2, 1), fds(1)), 'EBADMSG_SIZE');
      expectReject(raw(Request.SET_MEM_TABLE, Buffer.alloc(7)), 'EBADMSG_SIZE');
    });

    it('rejects fewer or more fds than regions', () => {
      expectReject(raw(Request.SET_MEM_TABLE, table(3), fds(2)), 'EBADMSG_FDS');
      expectReject(raw(Request.SET_MEM_TABLE, table(3), fds(4)), 'EBADMSG_FDS');
    });

    it('rejects empty or wrapping regions', () => {
      const empty = table(1);
      empty.writeBigUInt64LE(0n, 16);
      expectReject(raw(Request.SET_MEM_TABLE, empty, fds(1)), 'EBADMSG_FIELD');
      const wraps = table(1);
      wraps.writeBigUInt64LE(U64_MAX - 0xfffn, 8); // guest address
      wraps.writeBigUInt64LE(0x2000n, 16); // size
      expectReject(raw(Request.SET_MEM_TABLE, wraps, fds(1)), 'EBADMSG_FIELD');
      const wrapsUser = table(1);
      wrapsUser.writeBigUInt64LE(U64_MAX, 24);
      expectReject(raw(Request.SET_MEM_TABLE, wrapsUser, fds(1)), 'EBADMSG_FIELD');
    });
  });

  describe('SET_VRING_KICK/CALL/ERR', () => {
    const reqs = [Request.SET_VRING_KICK, Request.SET_VRING_CALL, Request.SET_VRING_ERR];

    it.each(reqs.map((r) => [requestName(r), r] as const))('%s: NOFD bit with an fd', (_n, req) => {
      expectReject(raw(req, u64(BigInt(VRING_NOFD_MASK | 1)), [FD]), 'EBADMSG_FDS');
    });

    it.each(reqs.map((r) => [requestName(r), r] as const))('%s: no NOFD bit and no fd', (_n, req) => {
      expectReject(raw(req, u64(1n), []), 'EBADMSG_FDS');
    });

    it.each(reqs.map((r) => [requestName(r), r] as const))('%s: unknown bits in the u64', (_n, req) => {
      for (const v of [0x200n, 0x1_0000n, 1n << 32n, 1n << 63n, U64_MAX]) {
        expectReject(raw(req, u64(v | 1n), [FD]), 'EBADMSG_FIELD');
        expectReject(raw(req, u64(v | BigInt(VRING_NOFD_MASK)), []), 'EBADMSG_FIELD');
      }
    });

    it('decodes index and NOFD', () => {
      expect(decodeRequest(raw(Request.SET_VRING_CALL, u64(0x1ffn), []))).toEqual({
        request: Request.SET_VRING_CALL,
        index: 255,
        fd: null,
      });
      expect(decodeRequest(raw(Request.SET_VRING_KICK, u64(3n), [42]))).toEqual({
        request: Request.SET_VRING_KICK,
        index: 3,
        fd: 42,
      });
    });
  });

  describe('GET_CONFIG/SET_CONFIG', () => {
    function config(offset: number, sizeField: number, dataLen: number, flags = 0): Buffer {
      const p = Buffer.alloc(12 + dataLen);
      p.writeUInt32LE(offset, 0);
      p.writeUInt32LE(sizeField, 4);
      p.writeUInt32LE(flags, 8);
      return p;
    }

    it.each([Request.GET_CONFIG, Request.SET_CONFIG])('request %i: size field disagreeing with the payload', (req) => {
      expectReject(raw(req, config(0, 4, 3)), 'EBADMSG_SIZE');
      expectReject(raw(req, config(0, 4, 5)), 'EBADMSG_SIZE');
      expectReject(raw(req, config(0, 0xffffffff, 8)), 'EBADMSG_SIZE');
      expectReject(raw(req, Buffer.alloc(11)), 'EBADMSG_SIZE');
    });

    it.each([Request.GET_CONFIG, Request.SET_CONFIG])('request %i: access past the config space', (req) => {
      expectReject(raw(req, config(0, CONFIG_SPACE_MAX + 1, CONFIG_SPACE_MAX + 1)), 'EBADMSG_FIELD');
      expectReject(raw(req, config(250, 10, 10)), 'EBADMSG_FIELD');
      expectReject(raw(req, config(0xffffffff, 1, 1)), 'EBADMSG_FIELD');
      expect(decodeRequest(raw(req, config(246, 10, 10, 1)))).toMatchObject({ offset: 246, flags: 1 });
    });
  });

  it('SET_VRING_ADDR: unknown flag bits', () => {
    const r = rawOf(samples[8]);
    const p = Buffer.from(r.payload);
    p.writeUInt32LE(0x2, 4);
    expectReject({ ...r, payload: p }, 'EBADMSG_FIELD');
  });

  it('IOTLB_MSG: permissions and type out of range', () => {
    const r = rawOf(samples[21]);
    for (const [off, v] of [
      [24, 4],
      [25, 0],
      [25, 5],
    ] as const) {
      const p = Buffer.from(r.payload);
      p.writeUInt8(v, off);
      expectReject({ ...r, payload: p }, 'EBADMSG_FIELD');
    }
  });

  it('SET_LOG_BASE / SET_INFLIGHT_FD: offset + size wrapping 64 bits', () => {
    const log = Buffer.alloc(16);
    log.writeBigUInt64LE(0x2000n, 0);
    log.writeBigUInt64LE(U64_MAX - 0xfffn, 8);
    expectReject(raw(Request.SET_LOG_BASE, log, [FD]), 'EBADMSG_FIELD');
    const inflight = Buffer.alloc(24);
    inflight.writeBigUInt64LE(U64_MAX, 0);
    inflight.writeBigUInt64LE(2n, 8);
    expectReject(raw(Request.SET_INFLIGHT_FD, inflight, [FD]), 'EBADMSG_FIELD');
    // Ending exactly at 2^64 is fine.
    inflight.writeBigUInt64LE(1n, 8);
    expect(decodeRequest(raw(Request.SET_INFLIGHT_FD, inflight, [FD]))).toMatchObject({ mmapSize: U64_MAX, fd: FD });
  });

  it('ADD_MEM_REG / REM_MEM_REG: empty region', () => {
    const p = Buffer.alloc(40);
    p.writeBigUInt64LE(0x1000n, 8);
    expectReject(raw(Request.ADD_MEM_REG, p, [FD]), 'EBADMSG_FIELD');
    expectReject(raw(Request.REM_MEM_REG, p, [FD]), 'EBADMSG_FIELD');
  });

  it('rejects payloads over MAX_PAYLOAD_SIZE', () => {
    expectReject(raw(Request.SET_CONFIG, Buffer.alloc(MAX_PAYLOAD_SIZE + 1)), 'EBADMSG_SIZE');
  });

  it('error messages name the request and say expected vs received', () => {
    const err = expectReject(raw(Request.SET_VRING_ADDR, Buffer.alloc(39)), 'EBADMSG_SIZE');
    expect(err.message).toContain('SET_VRING_ADDR');
    expect(err.message).toContain('39');
    expect(err.message).toContain('40');
    expect(err.op).toBe('SET_VRING_ADDR');
    const fds = expectReject(raw(Request.SET_LOG_FD, Buffer.alloc(0), []), 'EBADMSG_FDS');
    expect(fds.message).toMatch(/SET_LOG_FD.*got 0 fds, expected exactly 1/);
  });
});

describe('encodeRequest input checks', () => {
  const bad: [string, Message][] = [
    ['vring fd index > 255', { request: Request.SET_VRING_KICK, index: 256, fd: FD }],
    ['negative fd', { request: Request.SET_LOG_FD, fd: -1 }],
    ['u64 below 0', { request: Request.SET_FEATURES, value: -1n }],
    ['u64 above 2^64-1', { request: Request.SET_FEATURES, value: 1n << 64n }],
    ['u32 not an integer', { request: Request.SET_VRING_NUM, index: 0.5, num: 1 }],
    ['u32 above 2^32-1', { request: Request.SET_VRING_NUM, index: 0, num: 2 ** 32 }],
    ['short MAC', { request: Request.SEND_RARP, mac: Buffer.alloc(5) }],
    ['short UUID', { request: Request.GET_SHARED_OBJECT, uuid: Buffer.alloc(15) }],
    ['no regions', { request: Request.SET_MEM_TABLE, regions: [] }],
    ['9 regions', { request: Request.SET_MEM_TABLE, regions: Array.from({ length: 9 }, (_, i) => ({ ...region(i), fd: FD + i })) }],
    ['empty region', { request: Request.ADD_MEM_REG, region: { ...region(0), size: 0n }, fd: FD }],
    ['config too large', { request: Request.SET_CONFIG, offset: 0, flags: 0, payload: Buffer.alloc(257) }],
    ['config past the end', { request: Request.SET_CONFIG, offset: 250, flags: 0, payload: Buffer.alloc(7) }],
    ['crypto too small', { request: Request.CREATE_CRYPTO_SESSION, payload: Buffer.alloc(8) }],
    ['unknown vring addr flag', { ...(samples[8] as Message & object), flags: 2 } as Message],
    ['IOTLB type 0', { request: Request.IOTLB_MSG, iova: 0n, size: 0n, userAddr: 0n, perm: 0, type: 0 }],
    ['queue size > u16', { request: Request.GET_INFLIGHT_FD, mmapSize: 0n, mmapOffset: 0n, numQueues: 1, queueSize: 65536 }],
    ['unknown request', { request: 44 } as unknown as Message],
  ];

  it.each(bad)('%s -> EINVAL', (_n, msg) => {
    const err = catchError(() => encodeRequest(msg, false));
    expect(err.code).toBe('EINVAL');
  });
});
