/**
 * vhost-user message codec: header parsing, request decode/encode, reply
 * decode/encode. Pure functions over Buffers; file descriptors are plain
 * numbers that this module never opens, closes or stores.
 *
 * Layouts follow QEMU docs/interop/vhost-user.rst ("Payload", "Front-end
 * message types") and the C structs QEMU actually puts on the wire
 * (hw/virtio/vhost-user.c). Little-endian throughout.
 *
 * Everything about a request lives in one table (SPEC): its payload kind,
 * how many fds it must carry, and what the back-end replies. decode/encode
 * only dispatch on those entries.
 */
import { VhostUserError } from '../errors';
import {
  CONFIG_SPACE_MAX,
  HEADER_SIZE,
  HeaderFlag,
  MAX_PAYLOAD_SIZE,
  MEMORY_BASELINE_NREGIONS,
  Request,
  RequestCode,
  VRING_ADDR_F_LOG,
  VRING_INDEX_MASK,
  VRING_NOFD_MASK,
  isRequestCode,
  requestName,
} from './constants';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/** A message as read off the socket: header fields, payload bytes, SCM_RIGHTS fds. */
export interface RawMessage {
  request: number;
  flags: number;
  payload: Buffer;
  fds: number[];
}

export interface MessageHeader {
  request: number;
  flags: number;
  size: number;
}

/** One guest memory region (spec: "Memory region description", 32 bytes). */
export interface MemoryRegion {
  guestPhysAddr: bigint;
  size: bigint;
  userAddr: bigint;
  mmapOffset: bigint;
}

export interface MemoryRegionWithFd extends MemoryRegion {
  fd: number;
}

type R = typeof Request;

/** Requests without payload (QEMU sends them with size 0). */
export type NoPayloadRequest =
  | R['GET_FEATURES']
  | R['SET_OWNER']
  | R['RESET_OWNER']
  | R['GET_PROTOCOL_FEATURES']
  | R['GET_QUEUE_NUM']
  | R['POSTCOPY_ADVISE']
  | R['POSTCOPY_LISTEN']
  | R['POSTCOPY_END']
  | R['RESET_DEVICE']
  | R['GET_MAX_MEM_SLOTS']
  | R['GET_STATUS']
  | R['CHECK_DEVICE_STATE'];

/** Requests whose payload is a single u64. */
export type U64Request =
  | R['SET_FEATURES']
  | R['SET_PROTOCOL_FEATURES']
  | R['NET_SET_MTU']
  | R['CLOSE_CRYPTO_SESSION']
  | R['SET_STATUS'];

/** Requests whose payload is a vring state {index u32, num u32}. */
export type VringStateRequest =
  | R['SET_VRING_NUM']
  | R['SET_VRING_BASE']
  | R['GET_VRING_BASE']
  | R['SET_VRING_ENABLE']
  | R['SET_VRING_ENDIAN']
  | R['VRING_KICK'];

/** Requests whose payload is a u64 with the vring index and the NOFD flag. */
export type VringFdRequest = R['SET_VRING_KICK'] | R['SET_VRING_CALL'] | R['SET_VRING_ERR'];

/** Requests with no payload and exactly one fd. */
export type FdOnlyRequest = R['SET_LOG_FD'] | R['SET_BACKEND_REQ_FD'] | R['GPU_SET_SOCKET'];

export type ConfigRequest = R['GET_CONFIG'] | R['SET_CONFIG'];

/** A decoded front-end request, discriminated by `request`. */
export type Message =
  | { request: NoPayloadRequest }
  | { request: U64Request; value: bigint }
  | { request: R['SET_MEM_TABLE']; regions: MemoryRegionWithFd[] }
  | { request: R['SET_LOG_BASE']; mmapSize: bigint; mmapOffset: bigint; fd: number }
  | { request: FdOnlyRequest; fd: number }
  | { request: VringStateRequest; index: number; num: number }
  | {
      request: R['SET_VRING_ADDR'];
      index: number;
      /** VRING_ADDR_F_LOG or 0. */
      flags: number;
      descUserAddr: bigint;
      usedUserAddr: bigint;
      availUserAddr: bigint;
      logGuestAddr: bigint;
    }
  /** fd is null when the NOFD bit is set: no eventfd, the back-end polls. */
  | { request: VringFdRequest; index: number; fd: number | null }
  /** The guest MAC: the first 6 bytes of the u64 payload. */
  | { request: R['SEND_RARP']; mac: Buffer }
  | {
      request: R['IOTLB_MSG'];
      iova: bigint;
      size: bigint;
      userAddr: bigint;
      /** 0 none, 1 read, 2 write, 3 read/write. */
      perm: number;
      /** 1 miss, 2 update, 3 invalidate, 4 access fail. */
      type: number;
    }
  /** payload.length is the spec's `size` field. GET_CONFIG carries a zero-filled payload of the wanted size. */
  | { request: ConfigRequest; offset: number; flags: number; payload: Buffer }
  /** Opaque VhostUserCryptoSession body; its layout differs between QEMU versions. */
  | { request: R['CREATE_CRYPTO_SESSION']; payload: Buffer }
  | { request: R['GET_INFLIGHT_FD']; mmapSize: bigint; mmapOffset: bigint; numQueues: number; queueSize: number }
  | {
      request: R['SET_INFLIGHT_FD'];
      mmapSize: bigint;
      mmapOffset: bigint;
      numQueues: number;
      queueSize: number;
      fd: number;
    }
  | { request: R['ADD_MEM_REG']; region: MemoryRegion; fd: number }
  /** fd: the spec says none SHOULD be sent, older QEMU sends one; if present, close it unused. */
  | { request: R['REM_MEM_REG']; region: MemoryRegion; fd: number | null }
  | { request: R['GET_SHARED_OBJECT']; uuid: Buffer }
  /** direction: 0 save, 1 load. phase: 0 stopped. */
  | { request: R['SET_DEVICE_STATE_FD']; direction: number; phase: number; fd: number };

/** The message variant for request code `C`. */
export type MessageOf<C extends RequestCode> = Extract<Message, { request: C }>;

/** Body of a back-end reply. fds that ride along (userfaultfd, dmabuf fd, ...) are passed separately. */
export type ReplyBody =
  | { kind: 'none' }
  | { kind: 'u64'; value: bigint }
  | { kind: 'vringState'; index: number; num: number }
  | { kind: 'config'; offset: number; flags: number; payload: Buffer }
  | { kind: 'inflight'; mmapSize: bigint; mmapOffset: bigint; numQueues: number; queueSize: number }
  /** ADD_MEM_REG reply in postcopy mode: the region with the back-end's mapping address as userAddr. */
  | { kind: 'memRegion'; region: MemoryRegion }
  /** SET_MEM_TABLE reply in postcopy mode: the regions with the back-end's mapping addresses. */
  | { kind: 'memTable'; regions: MemoryRegion[] }
  /** CREATE_CRYPTO_SESSION reply: opaque session body (session id inside). */
  | { kind: 'cryptoSession'; payload: Buffer };

export type ReplyKind = ReplyBody['kind'];

/** Wire layout of a payload. */
export type PayloadKind =
  | 'none'
  | 'u64'
  | 'vringState'
  | 'vringAddr'
  | 'vringFd'
  | 'memTable'
  | 'memRegion'
  | 'log'
  | 'iotlb'
  | 'config'
  | 'inflight'
  | 'rarp'
  | 'deviceState'
  | 'shared'
  | 'crypto';

/**
 * How many fds a request carries:
 *  none        exactly 0
 *  one         exactly 1
 *  perRegion   one per memory region, in region order
 *  vringFd     1, or 0 when the NOFD bit is set
 *  optionalOne 0 or 1 (REM_MEM_REG only)
 */
export type FdRule = 'none' | 'one' | 'perRegion' | 'vringFd' | 'optionalOne';

export interface RequestSpec {
  readonly payload: PayloadKind;
  readonly fds: FdRule;
  /** What the back-end always replies; null = nothing, unless NEED_REPLY asks for a REPLY_ACK (u64). */
  readonly reply: ReplyKind | null;
  /** Another reply shape the back-end may send instead (postcopy replies, GET_CONFIG error). */
  readonly altReply?: ReplyKind;
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

const SPEC: { readonly [C in RequestCode]: RequestSpec } = {
  [Request.GET_FEATURES]: { payload: 'none', fds: 'none', reply: 'u64' },
  [Request.SET_FEATURES]: { payload: 'u64', fds: 'none', reply: null },
  [Request.SET_OWNER]: { payload: 'none', fds: 'none', reply: null },
  [Request.RESET_OWNER]: { payload: 'none', fds: 'none', reply: null },
  // Postcopy: after POSTCOPY_LISTEN the back-end answers with its own mapping addresses.
  [Request.SET_MEM_TABLE]: { payload: 'memTable', fds: 'perRegion', reply: null, altReply: 'memTable' },
  // The spec table says "u64" but the payload is the 16-byte log description; the fd is the
  // shared log (we require it: without LOG_SHMFD there is no way to share the log). Its reply is
  // always sent (spec: "SET_LOG_BASE (if LOG_SHMFD)" in the list of requests that reply).
  [Request.SET_LOG_BASE]: { payload: 'log', fds: 'one', reply: 'u64' },
  [Request.SET_LOG_FD]: { payload: 'none', fds: 'one', reply: null },
  [Request.SET_VRING_NUM]: { payload: 'vringState', fds: 'none', reply: null },
  [Request.SET_VRING_ADDR]: { payload: 'vringAddr', fds: 'none', reply: null },
  [Request.SET_VRING_BASE]: { payload: 'vringState', fds: 'none', reply: null },
  [Request.GET_VRING_BASE]: { payload: 'vringState', fds: 'none', reply: 'vringState' },
  [Request.SET_VRING_KICK]: { payload: 'vringFd', fds: 'vringFd', reply: null },
  [Request.SET_VRING_CALL]: { payload: 'vringFd', fds: 'vringFd', reply: null },
  [Request.SET_VRING_ERR]: { payload: 'vringFd', fds: 'vringFd', reply: null },
  [Request.GET_PROTOCOL_FEATURES]: { payload: 'none', fds: 'none', reply: 'u64' },
  [Request.SET_PROTOCOL_FEATURES]: { payload: 'u64', fds: 'none', reply: null },
  [Request.GET_QUEUE_NUM]: { payload: 'none', fds: 'none', reply: 'u64' },
  [Request.SET_VRING_ENABLE]: { payload: 'vringState', fds: 'none', reply: null },
  [Request.SEND_RARP]: { payload: 'rarp', fds: 'none', reply: null },
  [Request.NET_SET_MTU]: { payload: 'u64', fds: 'none', reply: null },
  [Request.SET_BACKEND_REQ_FD]: { payload: 'none', fds: 'one', reply: null },
  // "The back-end has to acknowledge the request with sending zero as u64 payload": always.
  [Request.IOTLB_MSG]: { payload: 'iotlb', fds: 'none', reply: 'u64' },
  [Request.SET_VRING_ENDIAN]: { payload: 'vringState', fds: 'none', reply: null },
  // "vhost-user back-end uses zero length of payload to indicate an error".
  [Request.GET_CONFIG]: { payload: 'config', fds: 'none', reply: 'config', altReply: 'none' },
  [Request.SET_CONFIG]: { payload: 'config', fds: 'none', reply: null },
  [Request.CREATE_CRYPTO_SESSION]: { payload: 'crypto', fds: 'none', reply: 'cryptoSession' },
  [Request.CLOSE_CRYPTO_SESSION]: { payload: 'u64', fds: 'none', reply: null },
  // Reply has no payload; the userfaultfd rides along as an fd.
  [Request.POSTCOPY_ADVISE]: { payload: 'none', fds: 'none', reply: 'none' },
  [Request.POSTCOPY_LISTEN]: { payload: 'none', fds: 'none', reply: null },
  [Request.POSTCOPY_END]: { payload: 'none', fds: 'none', reply: 'u64' },
  // Request carries the wanted queue geometry (mmap fields 0); reply carries the area + its fd.
  [Request.GET_INFLIGHT_FD]: { payload: 'inflight', fds: 'none', reply: 'inflight' },
  [Request.SET_INFLIGHT_FD]: { payload: 'inflight', fds: 'one', reply: null },
  [Request.GPU_SET_SOCKET]: { payload: 'none', fds: 'one', reply: null },
  [Request.RESET_DEVICE]: { payload: 'none', fds: 'none', reply: null },
  [Request.VRING_KICK]: { payload: 'vringState', fds: 'none', reply: null },
  [Request.GET_MAX_MEM_SLOTS]: { payload: 'none', fds: 'none', reply: 'u64' },
  // Postcopy: the back-end answers with the region and its own mapping address.
  [Request.ADD_MEM_REG]: { payload: 'memRegion', fds: 'one', reply: null, altReply: 'memRegion' },
  [Request.REM_MEM_REG]: { payload: 'memRegion', fds: 'optionalOne', reply: null },
  [Request.SET_STATUS]: { payload: 'u64', fds: 'none', reply: null },
  [Request.GET_STATUS]: { payload: 'none', fds: 'none', reply: 'u64' },
  // Reply has no payload; the dmabuf fd (if found) rides along.
  [Request.GET_SHARED_OBJECT]: { payload: 'shared', fds: 'none', reply: 'none' },
  // Reply u64: bits 0..7 error, bit 8 NOFD (no back-end-provided fd attached).
  [Request.SET_DEVICE_STATE_FD]: { payload: 'deviceState', fds: 'one', reply: 'u64' },
  [Request.CHECK_DEVICE_STATE]: { payload: 'none', fds: 'none', reply: 'u64' },
};

/** The table entry for a request code, or null for codes that are not front-end requests. */
export function requestSpec(code: number): RequestSpec | null {
  return isRequestCode(code) ? SPEC[code] : null;
}

/**
 * What the back-end always replies to `request`, or null when it replies only
 * with a REPLY_ACK (u64) because NEED_REPLY was set. (For null entries, a
 * postcopy SET_MEM_TABLE / ADD_MEM_REG also gets a memTable / memRegion reply.)
 */
export function replyKind(request: number): ReplyKind | null {
  return isRequestCode(request) ? SPEC[request].reply : null;
}

// ---------------------------------------------------------------------------
// Errors and field helpers
// ---------------------------------------------------------------------------

/** Where a payload is being processed, for error messages and codes. */
interface Ctx {
  /** e.g. 'SET_MEM_TABLE', 'GET_CONFIG reply', 'encodeRequest(SET_VRING_KICK)'. */
  readonly label: string;
  /** VhostUserError.op: the request name. */
  readonly op: string;
  /** Encoding our own data: bad input is a caller bug (EINVAL), not a bad message. */
  readonly encoding: boolean;
}

function fail(ctx: Ctx, code: string, detail: string): never {
  throw new VhostUserError(ctx.encoding ? 'EINVAL' : code, `${ctx.label}: ${detail}`, { op: ctx.op });
}

const U64_LIMIT = 1n << 64n;
const U64_MAX = U64_LIMIT - 1n;

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (Buffer.isBuffer(v)) return `a ${v.length}-byte Buffer`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

type Fields = Record<string, unknown>;

function wantInt(f: Fields, key: string, max: number, ctx: Ctx): number {
  const v = f[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    fail(ctx, 'EBADMSG_FIELD', `${key} must be an integer in 0..${max}, got ${show(v)}`);
  }
  return v;
}

function wantU64(f: Fields, key: string, ctx: Ctx): bigint {
  const v = f[key];
  if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) {
    fail(ctx, 'EBADMSG_FIELD', `${key} must be a bigint in 0n..2n**64n-1n, got ${show(v)}`);
  }
  return v;
}

function wantBuffer(f: Fields, key: string, min: number, max: number, ctx: Ctx): Buffer {
  const v = f[key];
  if (!Buffer.isBuffer(v) || v.length < min || v.length > max) {
    const want = min === max ? `${min} bytes` : `${min}..${max} bytes`;
    fail(ctx, 'EBADMSG_FIELD', `${key} must be a Buffer of ${want}, got ${show(v)}`);
  }
  return v;
}

function wantFd(v: unknown, what: string, ctx: Ctx): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    fail(ctx, 'EBADMSG_FDS', `${what} must be a non-negative integer fd, got ${show(v)}`);
  }
  return v;
}

function wantArray(f: Fields, key: string, ctx: Ctx): unknown[] {
  const v = f[key];
  if (!Array.isArray(v)) fail(ctx, 'EBADMSG_FIELD', `${key} must be an array, got ${show(v)}`);
  return v;
}

function wantObject(v: unknown, what: string, ctx: Ctx): Fields {
  if (typeof v !== 'object' || v === null) fail(ctx, 'EBADMSG_FIELD', `${what} must be an object, got ${show(v)}`);
  return v as Fields;
}

/** base + size must stay inside the 64-bit address space. */
function checkSpan(base: bigint, size: bigint, what: string, ctx: Ctx): void {
  if (base + size > U64_LIMIT) {
    fail(ctx, 'EBADMSG_FIELD', `${what} 0x${base.toString(16)} + size 0x${size.toString(16)} wraps past 2^64`);
  }
}

// ---------------------------------------------------------------------------
// Memory regions (32 bytes: guest_phys_addr, memory_size, userspace_addr, mmap_offset)
// ---------------------------------------------------------------------------

const REGION_SIZE = 32;

function checkRegion(r: MemoryRegion, what: string, ctx: Ctx): void {
  if (r.size === 0n) fail(ctx, 'EBADMSG_FIELD', `${what} has size 0; a region must cover at least one byte`);
  checkSpan(r.guestPhysAddr, r.size, `${what} guestPhysAddr`, ctx);
  checkSpan(r.userAddr, r.size, `${what} userAddr`, ctx);
  checkSpan(r.mmapOffset, r.size, `${what} mmapOffset`, ctx);
}

function readRegion(p: Buffer, off: number, what: string, ctx: Ctx): MemoryRegion {
  const r: MemoryRegion = {
    guestPhysAddr: p.readBigUInt64LE(off),
    size: p.readBigUInt64LE(off + 8),
    userAddr: p.readBigUInt64LE(off + 16),
    mmapOffset: p.readBigUInt64LE(off + 24),
  };
  checkRegion(r, what, ctx);
  return r;
}

function writeRegion(b: Buffer, off: number, v: unknown, what: string, ctx: Ctx): void {
  const f = wantObject(v, what, ctx);
  const sub: Ctx = { ...ctx, label: `${ctx.label} ${what}` };
  const r: MemoryRegion = {
    guestPhysAddr: wantU64(f, 'guestPhysAddr', sub),
    size: wantU64(f, 'size', sub),
    userAddr: wantU64(f, 'userAddr', sub),
    mmapOffset: wantU64(f, 'mmapOffset', sub),
  };
  checkRegion(r, what, ctx);
  b.writeBigUInt64LE(r.guestPhysAddr, off);
  b.writeBigUInt64LE(r.size, off + 8);
  b.writeBigUInt64LE(r.userAddr, off + 16);
  b.writeBigUInt64LE(r.mmapOffset, off + 24);
}

// ---------------------------------------------------------------------------
// Payload codecs, one per PayloadKind
// ---------------------------------------------------------------------------

interface PayloadCodec {
  /** Exact payload size; null for variable-size kinds, which check their size themselves. */
  readonly size: number | null;
  /** Human name for error messages. */
  readonly name: string;
  decode(p: Buffer, ctx: Ctx): Fields;
  encode(f: Fields, ctx: Ctx): Buffer;
}

const CONFIG_HDR = 12; // offset u32, size u32, flags u32
const MEM_TABLE_HDR = 8; // nregions u32, padding u32
/** CREATE_CRYPTO_SESSION: op_code u64 ... session_id i64 at the very least; QEMU sends ~1 KiB. */
const CRYPTO_SESSION_MIN = 16;

const CODECS: { readonly [K in PayloadKind]: PayloadCodec } = {
  none: {
    size: 0,
    name: 'no payload',
    decode: () => ({}),
    encode: () => Buffer.alloc(0),
  },

  u64: {
    size: 8,
    name: 'a u64',
    decode: (p) => ({ value: p.readBigUInt64LE(0) }),
    encode: (f, ctx) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(wantU64(f, 'value', ctx), 0);
      return b;
    },
  },

  vringState: {
    size: 8,
    name: 'a vring state {index u32, num u32}',
    decode: (p) => ({ index: p.readUInt32LE(0), num: p.readUInt32LE(4) }),
    encode: (f, ctx) => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(wantInt(f, 'index', 0xffffffff, ctx), 0);
      b.writeUInt32LE(wantInt(f, 'num', 0xffffffff, ctx), 4);
      return b;
    },
  },

  // struct vhost_vring_addr: index u32, flags u32, desc, used, avail, log (u64 each).
  // (The spec's table header also lists a "size" column; no such field exists on the wire.)
  vringAddr: {
    size: 40,
    name: 'a vring address description',
    decode: (p, ctx) => {
      const flags = p.readUInt32LE(4);
      // Only VHOST_VRING_F_LOG is defined; the kernel vhost rejects other bits too.
      if ((flags & ~VRING_ADDR_F_LOG) !== 0) {
        fail(ctx, 'EBADMSG_FIELD', `flags 0x${flags.toString(16)} has bits other than VRING_ADDR_F_LOG (0x1)`);
      }
      return {
        index: p.readUInt32LE(0),
        flags,
        descUserAddr: p.readBigUInt64LE(8),
        usedUserAddr: p.readBigUInt64LE(16),
        availUserAddr: p.readBigUInt64LE(24),
        logGuestAddr: p.readBigUInt64LE(32),
      };
    },
    encode: (f, ctx) => {
      const flags = wantInt(f, 'flags', 0xffffffff, ctx);
      if ((flags & ~VRING_ADDR_F_LOG) !== 0) {
        fail(ctx, 'EBADMSG_FIELD', `flags 0x${flags.toString(16)} has bits other than VRING_ADDR_F_LOG (0x1)`);
      }
      const b = Buffer.alloc(40);
      b.writeUInt32LE(wantInt(f, 'index', 0xffffffff, ctx), 0);
      b.writeUInt32LE(flags, 4);
      b.writeBigUInt64LE(wantU64(f, 'descUserAddr', ctx), 8);
      b.writeBigUInt64LE(wantU64(f, 'usedUserAddr', ctx), 16);
      b.writeBigUInt64LE(wantU64(f, 'availUserAddr', ctx), 24);
      b.writeBigUInt64LE(wantU64(f, 'logGuestAddr', ctx), 32);
      return b;
    },
  },

  // u64: vring index in bits 0..7, NOFD in bit 8, nothing else defined.
  vringFd: {
    size: 8,
    name: 'a u64 (vring index bits 0..7, NOFD bit 8)',
    decode: (p, ctx) => {
      const v = p.readBigUInt64LE(0);
      const known = BigInt(VRING_INDEX_MASK | VRING_NOFD_MASK);
      if ((v & ~known) !== 0n) {
        fail(
          ctx,
          'EBADMSG_FIELD',
          `u64 0x${v.toString(16)} has bits set outside the vring index (bits 0..7) and the NOFD flag (bit 8)`,
        );
      }
      // `nofd` is consumed by the fd rule and replaced by `fd`.
      return { index: Number(v & BigInt(VRING_INDEX_MASK)), nofd: (v & BigInt(VRING_NOFD_MASK)) !== 0n };
    },
    encode: (f, ctx) => {
      let v = wantInt(f, 'index', VRING_INDEX_MASK, ctx);
      if (f.fd === null) v |= VRING_NOFD_MASK;
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt(v), 0);
      return b;
    },
  },

  // nregions u32, padding u32, nregions x region. Exactly as many regions as announced.
  memTable: {
    size: null,
    name: 'a memory table',
    decode: (p, ctx) => {
      if (p.length < MEM_TABLE_HDR) {
        fail(ctx, 'EBADMSG_SIZE', `payload is ${p.length} bytes, too short for the 8-byte memory table header`);
      }
      const n = p.readUInt32LE(0);
      if (n < 1 || n > MEMORY_BASELINE_NREGIONS) {
        fail(ctx, 'EBADMSG_REGIONS', `memory table has ${n} regions; 1..${MEMORY_BASELINE_NREGIONS} are allowed`);
      }
      const want = MEM_TABLE_HDR + REGION_SIZE * n;
      if (p.length !== want) {
        fail(
          ctx,
          'EBADMSG_SIZE',
          `payload is ${p.length} bytes, expected exactly ${want} (8-byte header + ${n} regions x 32)`,
        );
      }
      const regions: MemoryRegion[] = [];
      for (let i = 0; i < n; i++) regions.push(readRegion(p, MEM_TABLE_HDR + REGION_SIZE * i, `region ${i}`, ctx));
      return { regions };
    },
    encode: (f, ctx) => {
      const regions = wantArray(f, 'regions', ctx);
      const n = regions.length;
      if (n < 1 || n > MEMORY_BASELINE_NREGIONS) {
        fail(ctx, 'EBADMSG_REGIONS', `memory table has ${n} regions; 1..${MEMORY_BASELINE_NREGIONS} are allowed`);
      }
      const b = Buffer.alloc(MEM_TABLE_HDR + REGION_SIZE * n);
      b.writeUInt32LE(n, 0);
      regions.forEach((r, i) => writeRegion(b, MEM_TABLE_HDR + REGION_SIZE * i, r, `region ${i}`, ctx));
      return b;
    },
  },

  // padding u64, then one region (ADD_MEM_REG / REM_MEM_REG and the postcopy reply).
  memRegion: {
    size: 8 + REGION_SIZE,
    name: 'a single memory region description',
    decode: (p, ctx) => ({ region: readRegion(p, 8, 'region', ctx) }),
    encode: (f, ctx) => {
      const b = Buffer.alloc(8 + REGION_SIZE);
      writeRegion(b, 8, f.region, 'region', ctx);
      return b;
    },
  },

  // mmap_size u64, mmap_offset u64.
  log: {
    size: 16,
    name: 'a log description',
    decode: (p, ctx) => {
      const mmapSize = p.readBigUInt64LE(0);
      const mmapOffset = p.readBigUInt64LE(8);
      checkSpan(mmapOffset, mmapSize, 'mmapOffset', ctx);
      return { mmapSize, mmapOffset };
    },
    encode: (f, ctx) => {
      const mmapSize = wantU64(f, 'mmapSize', ctx);
      const mmapOffset = wantU64(f, 'mmapOffset', ctx);
      checkSpan(mmapOffset, mmapSize, 'mmapOffset', ctx);
      const b = Buffer.alloc(16);
      b.writeBigUInt64LE(mmapSize, 0);
      b.writeBigUInt64LE(mmapOffset, 8);
      return b;
    },
  },

  // struct vhost_iotlb_msg: iova, size, uaddr (u64), perm u8, type u8, 6 bytes of tail padding
  // (the C struct is 8-byte aligned; QEMU sends sizeof = 32).
  iotlb: {
    size: 32,
    name: 'an IOTLB message (struct vhost_iotlb_msg)',
    decode: (p, ctx) => {
      const perm = p.readUInt8(24);
      const type = p.readUInt8(25);
      if (perm > 3) fail(ctx, 'EBADMSG_FIELD', `permissions ${perm} is not one of 0 (none), 1 (RO), 2 (WO), 3 (RW)`);
      if (type < 1 || type > 4) {
        fail(ctx, 'EBADMSG_FIELD', `IOTLB type ${type} is not one of 1 (miss), 2 (update), 3 (invalidate), 4 (access fail)`);
      }
      return { iova: p.readBigUInt64LE(0), size: p.readBigUInt64LE(8), userAddr: p.readBigUInt64LE(16), perm, type };
    },
    encode: (f, ctx) => {
      const perm = wantInt(f, 'perm', 3, ctx);
      const type = wantInt(f, 'type', 4, ctx);
      if (type < 1) fail(ctx, 'EBADMSG_FIELD', `IOTLB type must be 1..4, got ${type}`);
      const b = Buffer.alloc(32);
      b.writeBigUInt64LE(wantU64(f, 'iova', ctx), 0);
      b.writeBigUInt64LE(wantU64(f, 'size', ctx), 8);
      b.writeBigUInt64LE(wantU64(f, 'userAddr', ctx), 16);
      b.writeUInt8(perm, 24);
      b.writeUInt8(type, 25);
      return b;
    },
  },

  // offset u32, size u32, flags u32, then `size` bytes of config space.
  config: {
    size: null,
    name: 'a device config space message',
    decode: (p, ctx) => {
      if (p.length < CONFIG_HDR) {
        fail(ctx, 'EBADMSG_SIZE', `payload is ${p.length} bytes, too short for the 12-byte config header`);
      }
      const offset = p.readUInt32LE(0);
      const size = p.readUInt32LE(4);
      const flags = p.readUInt32LE(8);
      if (p.length - CONFIG_HDR !== size) {
        fail(
          ctx,
          'EBADMSG_SIZE',
          `config size field says ${size} bytes but ${p.length - CONFIG_HDR} bytes follow the 12-byte config header`,
        );
      }
      if (size > CONFIG_SPACE_MAX || offset + size > CONFIG_SPACE_MAX) {
        fail(
          ctx,
          'EBADMSG_FIELD',
          `config access offset ${offset} size ${size} reaches past the ${CONFIG_SPACE_MAX}-byte config space`,
        );
      }
      return { offset, flags, payload: Buffer.from(p.subarray(CONFIG_HDR)) };
    },
    encode: (f, ctx) => {
      const offset = wantInt(f, 'offset', CONFIG_SPACE_MAX, ctx);
      const flags = wantInt(f, 'flags', 0xffffffff, ctx);
      const data = wantBuffer(f, 'payload', 0, CONFIG_SPACE_MAX - offset, ctx);
      const b = Buffer.alloc(CONFIG_HDR + data.length);
      b.writeUInt32LE(offset, 0);
      b.writeUInt32LE(data.length, 4);
      b.writeUInt32LE(flags, 8);
      data.copy(b, CONFIG_HDR);
      return b;
    },
  },

  // mmap_size u64, mmap_offset u64, num_queues u16, queue_size u16, 4 bytes of tail padding
  // (struct VhostUserInflight is 8-byte aligned; QEMU sends sizeof = 24, not 20).
  inflight: {
    size: 24,
    name: 'an inflight description',
    decode: (p, ctx) => {
      const mmapSize = p.readBigUInt64LE(0);
      const mmapOffset = p.readBigUInt64LE(8);
      checkSpan(mmapOffset, mmapSize, 'mmapOffset', ctx);
      return { mmapSize, mmapOffset, numQueues: p.readUInt16LE(16), queueSize: p.readUInt16LE(18) };
    },
    encode: (f, ctx) => {
      const mmapSize = wantU64(f, 'mmapSize', ctx);
      const mmapOffset = wantU64(f, 'mmapOffset', ctx);
      checkSpan(mmapOffset, mmapSize, 'mmapOffset', ctx);
      const b = Buffer.alloc(24);
      b.writeBigUInt64LE(mmapSize, 0);
      b.writeBigUInt64LE(mmapOffset, 8);
      b.writeUInt16LE(wantInt(f, 'numQueues', 0xffff, ctx), 16);
      b.writeUInt16LE(wantInt(f, 'queueSize', 0xffff, ctx), 18);
      return b;
    },
  },

  // u64 whose first 6 bytes are the guest MAC; QEMU zero-fills the last 2, we ignore them.
  rarp: {
    size: 8,
    name: 'a u64 carrying a MAC address',
    decode: (p) => ({ mac: Buffer.from(p.subarray(0, 6)) }),
    encode: (f, ctx) => {
      const b = Buffer.alloc(8);
      wantBuffer(f, 'mac', 6, 6, ctx).copy(b, 0);
      return b;
    },
  },

  // direction u32 (0 save, 1 load), phase u32 (0 stopped). Values are checked by the caller:
  // the spec says more phases may be added.
  deviceState: {
    size: 8,
    name: 'device state transfer parameters',
    decode: (p) => ({ direction: p.readUInt32LE(0), phase: p.readUInt32LE(4) }),
    encode: (f, ctx) => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(wantInt(f, 'direction', 0xffffffff, ctx), 0);
      b.writeUInt32LE(wantInt(f, 'phase', 0xffffffff, ctx), 4);
      return b;
    },
  },

  // VhostUserShared: 16-byte UUID, kept as raw bytes.
  shared: {
    size: 16,
    name: 'a 16-byte UUID',
    decode: (p) => ({ uuid: Buffer.from(p) }),
    encode: (f, ctx) => Buffer.from(wantBuffer(f, 'uuid', 16, 16, ctx)),
  },

  // VhostUserCryptoSession: opaque (its layout embeds QEMU-internal structs and changed between
  // versions), only bounded.
  crypto: {
    size: null,
    name: 'a crypto session description',
    decode: (p, ctx) => {
      if (p.length < CRYPTO_SESSION_MIN || p.length > MAX_PAYLOAD_SIZE) {
        fail(
          ctx,
          'EBADMSG_SIZE',
          `payload is ${p.length} bytes; a crypto session description is ${CRYPTO_SESSION_MIN}..${MAX_PAYLOAD_SIZE} bytes`,
        );
      }
      return { payload: Buffer.from(p) };
    },
    encode: (f, ctx) => Buffer.from(wantBuffer(f, 'payload', CRYPTO_SESSION_MIN, MAX_PAYLOAD_SIZE, ctx)),
  },
};

function decodePayload(kind: PayloadKind, p: Buffer, ctx: Ctx): Fields {
  const codec = CODECS[kind];
  if (codec.size !== null && p.length !== codec.size) {
    fail(
      ctx,
      'EBADMSG_SIZE',
      `payload is ${p.length} bytes, expected exactly ${codec.size} (${codec.name})`,
    );
  }
  return codec.decode(p, ctx);
}

// ---------------------------------------------------------------------------
// fd rules
// ---------------------------------------------------------------------------

/** Moves fds into the decoded fields per the rule, or throws when the count is wrong. */
function attachFds(rule: FdRule, f: Fields, fds: readonly number[], ctx: Ctx): void {
  const got = fds.length;
  const bad = (want: string): never => fail(ctx, 'EBADMSG_FDS', `got ${got} fd${got === 1 ? '' : 's'}, expected ${want}`);
  switch (rule) {
    case 'none':
      if (got !== 0) bad('none');
      return;
    case 'one':
      if (got !== 1) bad('exactly 1');
      f.fd = fds[0];
      return;
    case 'perRegion': {
      const regions = f.regions as MemoryRegion[];
      if (got !== regions.length) bad(`${regions.length} (one per memory region)`);
      f.regions = regions.map((r, i) => ({ ...r, fd: fds[i] }));
      return;
    }
    case 'vringFd': {
      const nofd = f.nofd === true;
      delete f.nofd;
      if (nofd && got !== 0) bad('none because the NOFD bit (0x100) is set');
      if (!nofd && got !== 1) bad('exactly 1 because the NOFD bit (0x100) is clear');
      f.fd = nofd ? null : fds[0];
      return;
    }
    case 'optionalOne':
      if (got > 1) bad('0 or 1');
      f.fd = got === 1 ? fds[0] : null;
      return;
  }
}

/** The fds an outgoing request carries, in order. */
function collectFds(rule: FdRule, f: Fields, ctx: Ctx): number[] {
  switch (rule) {
    case 'none':
      return [];
    case 'one':
      return [wantFd(f.fd, 'fd', ctx)];
    case 'perRegion':
      return wantArray(f, 'regions', ctx).map((r, i) => wantFd(wantObject(r, `region ${i}`, ctx).fd, `region ${i} fd`, ctx));
    case 'vringFd':
    case 'optionalOne':
      return f.fd === null ? [] : [wantFd(f.fd, 'fd (or null)', ctx)];
  }
}

// ---------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------

function checkVersion(flags: number, ctx: Ctx): void {
  const version = flags & HeaderFlag.VERSION_MASK;
  if (version !== HeaderFlag.VERSION) {
    fail(
      ctx,
      'EBADMSG_VERSION',
      `header flags 0x${flags.toString(16)} carry protocol version ${version}, only version 1 exists; ` +
        'the peer does not speak vhost-user (or the stream is out of sync): close the connection',
    );
  }
}

function checkRequestFlags(flags: number, ctx: Ctx): void {
  checkVersion(flags, ctx);
  if ((flags & HeaderFlag.REPLY) !== 0) {
    fail(
      ctx,
      'EBADMSG_REPLY_FLAG',
      `header flags 0x${flags.toString(16)} have the REPLY bit (0x4) set on a front-end request; a back-end never receives replies on this socket: close the connection`,
    );
  }
}

function checkPayloadLimit(size: number, ctx: Ctx): void {
  if (size > MAX_PAYLOAD_SIZE) {
    fail(
      ctx,
      'EBADMSG_SIZE',
      `payload size ${size} exceeds the ${MAX_PAYLOAD_SIZE}-byte maximum; the stream cannot be trusted: close the connection`,
    );
  }
}

function readHeader(buf: Buffer, ctx: Ctx): MessageHeader {
  if (buf.length < HEADER_SIZE) {
    fail(ctx, 'EBADMSG_SIZE', `header is ${buf.length} bytes, expected ${HEADER_SIZE}`);
  }
  return { request: buf.readUInt32LE(0), flags: buf.readUInt32LE(4), size: buf.readUInt32LE(8) };
}

/** Writes a 12-byte header at the start of `b` as given, unchecked (tests build malformed ones with it). */
export function writeHeader(b: Buffer, request: number, flags: number, size: number): void {
  b.writeUInt32LE(request, 0);
  b.writeUInt32LE(flags, 4);
  b.writeUInt32LE(size, 8);
}

/**
 * Parses and checks the 12-byte header of a front-end request (reads the
 * first 12 bytes of `buf`): version bits must be 1, REPLY must be clear, size
 * must be <= MAX_PAYLOAD_SIZE. Unknown request codes pass, so the caller can
 * read and discard the payload and nack it. Flag bits above NEED_REPLY are
 * not defined by the spec and are ignored.
 */
export function parseRequestHeader(buf: Buffer): MessageHeader {
  const hdr = readHeader(buf, { label: 'request header', op: 'header', encoding: false });
  const ctx: Ctx = { label: `${requestName(hdr.request)} header`, op: requestName(hdr.request), encoding: false };
  checkRequestFlags(hdr.flags, ctx);
  checkPayloadLimit(hdr.size, ctx);
  return hdr;
}

/**
 * Parses and checks the header of a reply read by a front-end: version 1,
 * REPLY set, size <= MAX_PAYLOAD_SIZE, and the request code must be the one
 * we are waiting for.
 */
export function parseReplyHeader(buf: Buffer, expectRequest: number): MessageHeader {
  const name = requestName(expectRequest);
  const ctx: Ctx = { label: `${name} reply header`, op: name, encoding: false };
  const hdr = readHeader(buf, ctx);
  checkVersion(hdr.flags, ctx);
  if ((hdr.flags & HeaderFlag.REPLY) === 0) {
    fail(ctx, 'EBADMSG_REPLY_FLAG', `header flags 0x${hdr.flags.toString(16)} lack the REPLY bit (0x4)`);
  }
  if (hdr.request !== expectRequest) {
    fail(
      ctx,
      'EBADMSG_FIELD',
      `reply is for ${requestName(hdr.request)} but ${name} is outstanding; the stream is out of sync: close the connection`,
    );
  }
  checkPayloadLimit(hdr.size, ctx);
  return hdr;
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

function specOrThrow(request: number, ctx: Ctx): RequestSpec {
  if (!isRequestCode(request)) {
    fail(
      ctx,
      'ENOTSUP_REQUEST',
      `request code ${request} is not a front-end request (known: 1..43); ` +
        'discard its payload, close its fds, and nack it if NEED_REPLY is set',
    );
  }
  return SPEC[request];
}

/**
 * Decodes a front-end request. Checks the header flags again, the exact
 * payload size for the request's kind, field values, and the exact fd count.
 *
 * Never closes fds and never mutates raw.fds. On success the fds appear in
 * the returned message and belong to the caller; on error (VhostUserError)
 * nothing was taken: the caller closes all of raw.fds.
 */
export function decodeRequest(raw: RawMessage): Message {
  const name = requestName(raw.request);
  const ctx: Ctx = { label: name, op: name, encoding: false };
  checkRequestFlags(raw.flags, ctx);
  const spec = specOrThrow(raw.request, ctx);
  checkPayloadLimit(raw.payload.length, ctx);
  // No separate MAX_FDS_PER_MESSAGE check: every fd rule demands an exact count <= 8.
  const fields = decodePayload(spec.payload, raw.payload, ctx);
  attachFds(spec.fds, fields, raw.fds.slice(), ctx);
  return { request: raw.request, ...fields } as unknown as Message;
}

/**
 * Encodes a request (header + payload, version 1, NEED_REPLY if asked) and
 * returns the fds to send with it as SCM_RIGHTS, in order. Exact inverse of
 * decodeRequest. Throws VhostUserError 'EINVAL' on fields that cannot be
 * encoded.
 */
export function encodeRequest(msg: Message, needReply: boolean): { bytes: Buffer; fds: number[] } {
  const name = requestName(msg.request);
  const ctx: Ctx = { label: `encodeRequest(${name})`, op: name, encoding: true };
  const spec = specOrThrow(msg.request, ctx);
  const f = msg as unknown as Fields;
  const payload = CODECS[spec.payload].encode(f, ctx);
  const fds = collectFds(spec.fds, f, ctx);
  const flags = HeaderFlag.VERSION | (needReply ? HeaderFlag.NEED_REPLY : 0);
  const bytes = Buffer.alloc(HEADER_SIZE + payload.length);
  writeHeader(bytes, msg.request, flags, payload.length);
  payload.copy(bytes, HEADER_SIZE);
  return { bytes, fds };
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

const REPLY_PAYLOAD: { readonly [K in ReplyKind]: PayloadKind } = {
  none: 'none',
  u64: 'u64',
  vringState: 'vringState',
  config: 'config',
  inflight: 'inflight',
  memRegion: 'memRegion',
  memTable: 'memTable',
  cryptoSession: 'crypto',
};

/**
 * Reply shapes allowed for `request`, preferred first. Requests without an
 * explicit reply answer NEED_REPLY with a u64 REPLY_ACK (0 = success); so do
 * unknown requests, which a back-end nacks.
 */
function replyKindsFor(request: number): ReplyKind[] {
  const spec = requestSpec(request);
  if (spec === null) return ['u64'];
  const main: ReplyKind = spec.reply ?? 'u64';
  return spec.altReply ? [main, spec.altReply] : [main];
}

/** Encodes a back-end reply: header (flags VERSION|REPLY) + payload. */
export function encodeReply(request: number, body: ReplyBody): Buffer {
  const name = requestName(request);
  const ctx: Ctx = { label: `encodeReply(${name})`, op: name, encoding: true };
  if (!Number.isInteger(request) || request < 0 || request > 0xffffffff) {
    fail(ctx, 'EBADMSG_FIELD', `request code ${request} is not a u32`);
  }
  const allowed = replyKindsFor(request);
  if (!allowed.includes(body.kind)) {
    fail(ctx, 'EBADMSG_FIELD', `a ${name} reply carries ${allowed.join(' or ')}, not ${String(body.kind)}`);
  }
  const payload = CODECS[REPLY_PAYLOAD[body.kind]].encode(body as unknown as Fields, ctx);
  const bytes = Buffer.alloc(HEADER_SIZE + payload.length);
  writeHeader(bytes, request, HeaderFlag.VERSION | HeaderFlag.REPLY, payload.length);
  payload.copy(bytes, HEADER_SIZE);
  return bytes;
}

/**
 * Decodes the payload of a reply to `request` (header from parseReplyHeader).
 * Where two shapes are possible (postcopy SET_MEM_TABLE / ADD_MEM_REG vs.
 * REPLY_ACK; GET_CONFIG vs. its empty error reply) the payload size decides.
 */
export function decodeReply(request: number, header: MessageHeader, payload: Buffer): ReplyBody {
  const name = requestName(request);
  const ctx: Ctx = { label: `${name} reply`, op: name, encoding: false };
  if (header.request !== request) {
    fail(ctx, 'EBADMSG_FIELD', `header is for ${requestName(header.request)}, expected ${name}`);
  }
  if (header.size !== payload.length) {
    fail(ctx, 'EBADMSG_SIZE', `header announces ${header.size} payload bytes but ${payload.length} were given`);
  }
  checkPayloadLimit(payload.length, ctx);
  const kinds = replyKindsFor(request);
  // A fixed-size shape of exactly this size wins; otherwise the variable-size shape decides.
  const kind =
    kinds.find((k) => CODECS[REPLY_PAYLOAD[k]].size === payload.length) ??
    kinds.find((k) => CODECS[REPLY_PAYLOAD[k]].size === null);
  if (kind === undefined) {
    const want = kinds.map((k) => `${CODECS[REPLY_PAYLOAD[k]].size} (${CODECS[REPLY_PAYLOAD[k]].name})`);
    fail(ctx, 'EBADMSG_SIZE', `payload is ${payload.length} bytes, expected exactly ${want.join(' or ')}`);
  }
  const fields = decodePayload(REPLY_PAYLOAD[kind], payload, ctx);
  return { kind, ...fields } as unknown as ReplyBody;
}
