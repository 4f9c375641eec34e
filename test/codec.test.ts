import { describe, it, expect } from 'vitest';
import { VhostUserError } from '../lib/errors';
import { rawHeader } from './helpers/messages';
import {
  CONFIG_SPACE_MAX,
  HEADER_SIZE,
  HeaderFlag,
  MAX_PAYLOAD_SIZE,
  MEMORY_BASELINE_NREGIONS,
  ProtocolFeature,
  Request,
  VRING_ADDR_F_LOG,
  VRING_NOFD_MASK,
  VirtioFeature,
  bit,
  hasBit,
  requestName,
} from '../lib/protocol/constants';
import {
  MemoryRegion,
  Message,
  RawMessage,
  ReplyBody,
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  parseReplyHeader,
  parseRequestHeader,
  replyKind,
  requestSpec,
} from '../lib/protocol/codec';

// Fake fd numbers: the codec never touches fds.
const FD = 1000;
const U64_MAX = (1n << 64n) - 1n;

function region(i: number): MemoryRegion {
  return {
    guestPhysAddr: 0x1000_0000n * BigInt(i),
    size: 0x1000_0000n,
    userAddr: 0x7f00_0000_0000n + 0x1000_0000n * BigInt(i),
    mmapOffset: 0x20_0000n * BigInt(i),
  };
}

/** One message per request 1..43. */
const samples: Message[] = [
  { request: Request.GET_FEATURES },
  { request: Request.SET_FEATURES, value: bit(VirtioFeature.VERSION_1) | bit(VirtioFeature.PROTOCOL_FEATURES) | 1n },
  { request: Request.SET_OWNER },
  { request: Request.RESET_OWNER },
  {
    request: Request.SET_MEM_TABLE,
    regions: [
      { ...region(0), fd: FD },
      { ...region(1), fd: FD + 1 },
    ],
  },
  { request: Request.SET_LOG_BASE, mmapSize: 0x4000n, mmapOffset: 0x1000n, fd: FD },
  { request: Request.SET_LOG_FD, fd: FD },
  { request: Request.SET_VRING_NUM, index: 1, num: 256 },
  {
    request: Request.SET_VRING_ADDR,
    index: 1,
    flags: VRING_ADDR_F_LOG,
    descUserAddr: 0x7f00_0000_1000n,
    usedUserAddr: 0x7f00_0000_3000n,
    availUserAddr: 0x7f00_0000_2000n,
    logGuestAddr: 0x4000_0000n,
  },
  { request: Request.SET_VRING_BASE, index: 1, num: 0xffff },
  { request: Request.GET_VRING_BASE, index: 1, num: 0 },
  { request: Request.SET_VRING_KICK, index: 0, fd: FD },
  { request: Request.SET_VRING_CALL, index: 255, fd: FD + 1 },
  { request: Request.SET_VRING_ERR, index: 3, fd: null },
  { request: Request.GET_PROTOCOL_FEATURES },
  { request: Request.SET_PROTOCOL_FEATURES, value: bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK) },
  { request: Request.GET_QUEUE_NUM },
  { request: Request.SET_VRING_ENABLE, index: 1, num: 1 },
  { request: Request.SEND_RARP, mac: Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]) },
  { request: Request.NET_SET_MTU, value: 1500n },
  { request: Request.SET_BACKEND_REQ_FD, fd: FD },
  { request: Request.IOTLB_MSG, iova: 0x1000n, size: 0x2000n, userAddr: 0x7f00_0000_0000n, perm: 3, type: 2 },
  { request: Request.SET_VRING_ENDIAN, index: 0, num: 1 },
  { request: Request.GET_CONFIG, offset: 0, flags: 0, payload: Buffer.alloc(12) },
  { request: Request.SET_CONFIG, offset: 6, flags: 1, payload: Buffer.from([0xaa, 0xbb]) },
  { request: Request.CREATE_CRYPTO_SESSION, payload: Buffer.alloc(1072, 7) },
  { request: Request.CLOSE_CRYPTO_SESSION, value: 5n },
  { request: Request.POSTCOPY_ADVISE },
  { request: Request.POSTCOPY_LISTEN },
  { request: Request.POSTCOPY_END },
  { request: Request.GET_INFLIGHT_FD, mmapSize: 0n, mmapOffset: 0n, numQueues: 2, queueSize: 256 },
  { request: Request.SET_INFLIGHT_FD, mmapSize: 0x3000n, mmapOffset: 0n, numQueues: 2, queueSize: 256, fd: FD },
  { request: Request.GPU_SET_SOCKET, fd: FD },
  { request: Request.RESET_DEVICE },
  { request: Request.VRING_KICK, index: 1, num: 0 },
  { request: Request.GET_MAX_MEM_SLOTS },
  { request: Request.ADD_MEM_REG, region: region(2), fd: FD },
  { request: Request.REM_MEM_REG, region: region(2), fd: FD },
  { request: Request.SET_STATUS, value: 0xfn },
  { request: Request.GET_STATUS },
  { request: Request.GET_SHARED_OBJECT, uuid: Buffer.from('00112233445566778899aabbccddeeff', 'hex') },
  { request: Request.SET_DEVICE_STATE_FD, direction: 1, phase: 0, fd: FD },
  { request: Request.CHECK_DEVICE_STATE },
];

/** Other shapes worth a round trip. */
const extraSamples: Message[] = [
  { request: Request.SET_VRING_KICK, index: 7, fd: null },
  { request: Request.SET_VRING_CALL, index: 0, fd: null },
  { request: Request.SET_VRING_ERR, index: 2, fd: FD },
  { request: Request.REM_MEM_REG, region: region(3), fd: null },
  {
    request: Request.SET_MEM_TABLE,
    regions: Array.from({ length: MEMORY_BASELINE_NREGIONS }, (_, i) => ({ ...region(i), fd: FD + i })),
  },
  { request: Request.SET_FEATURES, value: U64_MAX },
  { request: Request.SET_FEATURES, value: 0n },
  { request: Request.SET_VRING_NUM, index: 0xffffffff, num: 0xffffffff },
  { request: Request.GET_CONFIG, offset: 0, flags: 0, payload: Buffer.alloc(CONFIG_SPACE_MAX) },
  { request: Request.SET_CONFIG, offset: 10, flags: 0, payload: Buffer.alloc(0) },
  { request: Request.CREATE_CRYPTO_SESSION, payload: Buffer.alloc(16, 1) },
  { request: Request.CREATE_CRYPTO_SESSION, payload: Buffer.alloc(MAX_PAYLOAD_SIZE, 2) },
  {
    request: Request.ADD_MEM_REG,
    region: { guestPhysAddr: U64_MAX - 0xfffn, size: 0x1000n, userAddr: 0n, mmapOffset: 0n },
    fd: FD,
  },
  { request: Request.IOTLB_MSG, iova: 0x1000n, size: 0x1000n, userAddr: 0n, perm: 0, type: 3 },
];

const named = (list: Message[]) => list.map((m) => [requestName(m.request), m] as const);

function toRaw(bytes: Buffer, fds: number[]): RawMessage {
  const hdr = parseRequestHeader(bytes.subarray(0, HEADER_SIZE));
  const payload = bytes.subarray(HEADER_SIZE);
  expect(hdr.size).toBe(payload.length);
  return { request: hdr.request, flags: hdr.flags, payload, fds };
}

function rawOf(msg: Message): RawMessage {
  const { bytes, fds } = encodeRequest(msg, false);
  return toRaw(bytes, fds);
}

function raw(request: number, payload: Buffer, fds: number[] = [], flags: number = HeaderFlag.VERSION): RawMessage {
  return { request, flags, payload, fds };
}

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

function catchError(fn: () => unknown): VhostUserError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VhostUserError);
    return e as VhostUserError;
  }
  throw new Error('expected a VhostUserError, nothing was thrown');
}

/** decodeRequest must throw `code` and leave raw.fds exactly as it was (ownership not taken). */
function expectReject(r: RawMessage, code: string): VhostUserError {
  const fdsBefore = r.fds;
  const copy = [...r.fds];
  const err = catchError(() => decodeRequest(r));
  expect(err.code).toBe(code);
  expect(err.name).toBe('VhostUserError');
  expect(r.fds).toBe(fdsBefore);
  expect(r.fds).toEqual(copy);
  return err;
}

describe('constants', () => {
  it('numbers requests 1..43 without gaps and names them', () => {
    const codes = Object.values(Request).sort((a, b) => a - b);
    expect(codes).toEqual(Array.from({ length: 43 }, (_, i) => i + 1));
    expect(requestName(9)).toBe('SET_VRING_ADDR');
    expect(requestName(21)).toBe('SET_BACKEND_REQ_FD');
    expect(requestName(43)).toBe('CHECK_DEVICE_STATE');
    expect(requestName(99)).toBe('UNKNOWN(99)');
    expect(requestName(0)).toBe('UNKNOWN(0)');
  });

  it('has the spec protocol feature bits', () => {
    expect(ProtocolFeature.MQ).toBe(0);
    expect(ProtocolFeature.BACKEND_REQ).toBe(5);
    expect(ProtocolFeature.CONFIGURE_MEM_SLOTS).toBe(15);
    expect(ProtocolFeature.DEVICE_STATE).toBe(19);
    expect(Object.values(ProtocolFeature).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('bit() and hasBit() work above 2^53', () => {
    expect(bit(30)).toBe(0x4000_0000n);
    expect(bit(63)).toBe(1n << 63n);
    const mask = bit(63) | bit(32) | bit(0);
    expect(hasBit(mask, 63)).toBe(true);
    expect(hasBit(mask, 32)).toBe(true);
    expect(hasBit(mask, 31)).toBe(false);
    expect(hasBit(mask, 0)).toBe(true);
  });
});

describe('VhostUserError', () => {
  it('carries code, errno and op', () => {
    const e = new VhostUserError('EINVAL', 'mmap failed', { errno: 22, op: 'mmap' });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('VhostUserError');
    expect(e.code).toBe('EINVAL');
    expect(e.errno).toBe(22);
    expect(e.op).toBe('mmap');
    expect(e.message).toBe('mmap failed');
    const bare = new VhostUserError('EBADMSG_SIZE', 'x');
    expect(bare.errno).toBeUndefined();
    expect(bare.op).toBeUndefined();
  });
});

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

describe('parseRequestHeader', () => {
  const header = rawHeader;

  it('parses a valid header', () => {
    expect(parseRequestHeader(header(Request.SET_VRING_NUM, 1, 8))).toEqual({ request: 8, flags: 1, size: 8 });
    expect(parseRequestHeader(header(Request.GET_FEATURES, 9, 0))).toEqual({ request: 1, flags: 9, size: 0 });
    expect(parseRequestHeader(header(Request.SET_CONFIG, 1, MAX_PAYLOAD_SIZE)).size).toBe(MAX_PAYLOAD_SIZE);
  });

  it.each([0, 2, 3])('rejects version bits %i', (v) => {
    expect(catchError(() => parseRequestHeader(header(1, v, 0))).code).toBe('EBADMSG_VERSION');
    expect(catchError(() => parseRequestHeader(header(1, v | HeaderFlag.NEED_REPLY, 0))).code).toBe('EBADMSG_VERSION');
  });

  it('rejects the REPLY bit', () => {
    expect(catchError(() => parseRequestHeader(header(1, 0x5, 0))).code).toBe('EBADMSG_REPLY_FLAG');
  });

  it('rejects an oversized payload and a short header', () => {
    expect(catchError(() => parseRequestHeader(header(5, 1, MAX_PAYLOAD_SIZE + 1))).code).toBe('EBADMSG_SIZE');
    expect(catchError(() => parseRequestHeader(header(5, 1, 0xffffffff))).code).toBe('EBADMSG_SIZE');
    expect(catchError(() => parseRequestHeader(Buffer.alloc(11))).code).toBe('EBADMSG_SIZE');
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

describe('replies', () => {
  it('replyKind tells which requests always reply', () => {
    expect(replyKind(Request.GET_FEATURES)).toBe('u64');
    expect(replyKind(Request.GET_PROTOCOL_FEATURES)).toBe('u64');
    expect(replyKind(Request.GET_QUEUE_NUM)).toBe('u64');
    expect(replyKind(Request.GET_MAX_MEM_SLOTS)).toBe('u64');
    expect(replyKind(Request.GET_STATUS)).toBe('u64');
    expect(replyKind(Request.GET_VRING_BASE)).toBe('vringState');
    expect(replyKind(Request.GET_CONFIG)).toBe('config');
    expect(replyKind(Request.GET_INFLIGHT_FD)).toBe('inflight');
    expect(replyKind(Request.SET_LOG_BASE)).toBe('u64');
    expect(replyKind(Request.POSTCOPY_ADVISE)).toBe('none');
    expect(replyKind(Request.SET_DEVICE_STATE_FD)).toBe('u64');
    expect(replyKind(Request.CHECK_DEVICE_STATE)).toBe('u64');
    expect(replyKind(Request.SET_VRING_ADDR)).toBeNull();
    expect(replyKind(Request.SET_MEM_TABLE)).toBeNull();
    expect(replyKind(Request.ADD_MEM_REG)).toBeNull();
    expect(replyKind(99)).toBeNull();
  });

  const replies: [string, number, ReplyBody][] = [
    ['GET_FEATURES', Request.GET_FEATURES, { kind: 'u64', value: U64_MAX }],
    ['GET_PROTOCOL_FEATURES', Request.GET_PROTOCOL_FEATURES, { kind: 'u64', value: bit(19) | bit(0) }],
    ['GET_QUEUE_NUM', Request.GET_QUEUE_NUM, { kind: 'u64', value: 4n }],
    ['GET_MAX_MEM_SLOTS', Request.GET_MAX_MEM_SLOTS, { kind: 'u64', value: 509n }],
    ['GET_STATUS', Request.GET_STATUS, { kind: 'u64', value: 0xfn }],
    ['SET_LOG_BASE', Request.SET_LOG_BASE, { kind: 'u64', value: 0n }],
    ['IOTLB_MSG', Request.IOTLB_MSG, { kind: 'u64', value: 0n }],
    ['POSTCOPY_END', Request.POSTCOPY_END, { kind: 'u64', value: 0n }],
    ['SET_DEVICE_STATE_FD', Request.SET_DEVICE_STATE_FD, { kind: 'u64', value: BigInt(VRING_NOFD_MASK) }],
    ['CHECK_DEVICE_STATE', Request.CHECK_DEVICE_STATE, { kind: 'u64', value: 1n }],
    ['GET_VRING_BASE', Request.GET_VRING_BASE, { kind: 'vringState', index: 1, num: 0x8000_8000 }],
    ['GET_CONFIG', Request.GET_CONFIG, { kind: 'config', offset: 0, flags: 0, payload: Buffer.from([1, 2, 3, 4, 5, 6]) }],
    ['GET_CONFIG error', Request.GET_CONFIG, { kind: 'none' }],
    ['GET_INFLIGHT_FD', Request.GET_INFLIGHT_FD, { kind: 'inflight', mmapSize: 0x10000n, mmapOffset: 0n, numQueues: 2, queueSize: 256 }],
    ['CREATE_CRYPTO_SESSION', Request.CREATE_CRYPTO_SESSION, { kind: 'cryptoSession', payload: Buffer.alloc(1072, 3) }],
    ['POSTCOPY_ADVISE', Request.POSTCOPY_ADVISE, { kind: 'none' }],
    ['GET_SHARED_OBJECT', Request.GET_SHARED_OBJECT, { kind: 'none' }],
    ['SET_MEM_TABLE postcopy', Request.SET_MEM_TABLE, { kind: 'memTable', regions: [region(0), region(1)] }],
    ['SET_MEM_TABLE ack', Request.SET_MEM_TABLE, { kind: 'u64', value: 0n }],
    ['ADD_MEM_REG postcopy', Request.ADD_MEM_REG, { kind: 'memRegion', region: region(4) }],
    ['ADD_MEM_REG ack', Request.ADD_MEM_REG, { kind: 'u64', value: 1n }],
    ['SET_VRING_ENABLE REPLY_ACK', Request.SET_VRING_ENABLE, { kind: 'u64', value: 0n }],
    ['unknown request nack', 44, { kind: 'u64', value: 1n }],
  ];

  it.each(replies)('%s round trip', (_n, req, body) => {
    const bytes = encodeReply(req, body);
    const hdr = parseReplyHeader(bytes.subarray(0, HEADER_SIZE), req);
    expect(hdr.flags).toBe(HeaderFlag.VERSION | HeaderFlag.REPLY);
    expect(hdr.size).toBe(bytes.length - HEADER_SIZE);
    expect(decodeReply(req, hdr, bytes.subarray(HEADER_SIZE))).toEqual(body);
  });

  // Variable-size shapes whose neighbour sizes would select another shape are covered separately.
  const sizeChecked = replies.filter(
    ([, req, body]) => body.kind !== 'cryptoSession' && !(req === Request.SET_MEM_TABLE && body.kind === 'u64'),
  );

  it.each(sizeChecked)('%s: payload one byte long or short', (_n, req, body) => {
    const payload = encodeReply(req, body).subarray(HEADER_SIZE);
    const variants: Buffer[] = [Buffer.concat([payload, Buffer.alloc(1)])];
    if (payload.length > 0) variants.push(payload.subarray(0, payload.length - 1));
    for (const p of variants) {
      const err = catchError(() => decodeReply(req, { request: req, flags: 5, size: p.length }, p));
      expect(err.code).toBe('EBADMSG_SIZE');
    }
  });

  it('size rejections for the multi-shape replies', () => {
    const hdr = (req: number, p: Buffer) => ({ request: req, flags: 5, size: p.length });
    // SET_MEM_TABLE: neither a u64 ack nor a whole table.
    const t = Buffer.alloc(8 + 32 + 1);
    t.writeUInt32LE(1, 0);
    expect(catchError(() => decodeReply(Request.SET_MEM_TABLE, hdr(Request.SET_MEM_TABLE, t), t)).code).toBe('EBADMSG_SIZE');
    // ADD_MEM_REG: 39 bytes is neither 8 nor 40.
    const a = Buffer.alloc(39);
    const err = catchError(() => decodeReply(Request.ADD_MEM_REG, hdr(Request.ADD_MEM_REG, a), a));
    expect(err.code).toBe('EBADMSG_SIZE');
    expect(err.message).toMatch(/8 .* or 40/);
    // CREATE_CRYPTO_SESSION: bounded.
    const c = Buffer.alloc(15);
    expect(catchError(() => decodeReply(Request.CREATE_CRYPTO_SESSION, hdr(26, c), c)).code).toBe('EBADMSG_SIZE');
    // GET_FEATURES: a u64, nothing else.
    for (const n of [0, 4, 16]) {
      const p = Buffer.alloc(n);
      expect(catchError(() => decodeReply(Request.GET_FEATURES, hdr(1, p), p)).code).toBe('EBADMSG_SIZE');
    }
  });

  it('decodeReply checks the header against the payload and the request', () => {
    const p = Buffer.alloc(8);
    expect(catchError(() => decodeReply(1, { request: 1, flags: 5, size: 16 }, p)).code).toBe('EBADMSG_SIZE');
    expect(catchError(() => decodeReply(1, { request: 15, flags: 5, size: 8 }, p)).code).toBe('EBADMSG_FIELD');
  });

  describe('parseReplyHeader', () => {
    const hdr = rawHeader;

    it('accepts a reply', () => {
      expect(parseReplyHeader(hdr(1, 5, 8), 1)).toEqual({ request: 1, flags: 5, size: 8 });
    });

    it('rejects a missing REPLY bit', () => {
      expect(catchError(() => parseReplyHeader(hdr(1, 1, 8), 1)).code).toBe('EBADMSG_REPLY_FLAG');
    });

    it.each([0, 2, 3])('rejects version bits %i', (v) => {
      expect(catchError(() => parseReplyHeader(hdr(1, 4 | v, 8), 1)).code).toBe('EBADMSG_VERSION');
    });

    it('rejects a reply to another request', () => {
      const err = catchError(() => parseReplyHeader(hdr(15, 5, 8), 1));
      expect(err.code).toBe('EBADMSG_FIELD');
      expect(err.message).toContain('GET_PROTOCOL_FEATURES');
      expect(err.message).toContain('GET_FEATURES');
    });

    it('rejects an oversized payload and a short header', () => {
      expect(catchError(() => parseReplyHeader(hdr(1, 5, MAX_PAYLOAD_SIZE + 1), 1)).code).toBe('EBADMSG_SIZE');
      expect(catchError(() => parseReplyHeader(Buffer.alloc(4), 1)).code).toBe('EBADMSG_SIZE');
    });
  });

  it('encodeReply refuses a body the request does not reply with', () => {
    expect(catchError(() => encodeReply(Request.GET_FEATURES, { kind: 'vringState', index: 0, num: 0 })).code).toBe('EINVAL');
    expect(catchError(() => encodeReply(Request.SET_VRING_ADDR, { kind: 'memTable', regions: [region(0)] })).code).toBe('EINVAL');
    expect(catchError(() => encodeReply(Request.GET_VRING_BASE, { kind: 'u64', value: 0n })).code).toBe('EINVAL');
    expect(catchError(() => encodeReply(Request.GET_FEATURES, { kind: 'u64', value: -1n })).code).toBe('EINVAL');
  });
});
