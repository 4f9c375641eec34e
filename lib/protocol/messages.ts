/**
 * What travels on a vhost-user socket, as the rest of the package sees it: the
 * decoded front-end requests, the back-end's reply bodies, and the one table
 * (SPEC) that says, per request, which payload layout it carries, how many fds
 * ride along and what the back-end replies. The layouts themselves are in
 * payloads.ts, the engine that reads and writes them in codec.ts.
 */
import { Request, RequestCode, isRequestCode } from './constants';

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
export type U64Request = R['SET_FEATURES'] | R['SET_PROTOCOL_FEATURES'] | R['NET_SET_MTU'] | R['CLOSE_CRYPTO_SESSION'] | R['SET_STATUS'];

/** Requests whose payload is a vring state {index u32, num u32}. */
export type VringStateRequest =
  R['SET_VRING_NUM'] | R['SET_VRING_BASE'] | R['GET_VRING_BASE'] | R['SET_VRING_ENABLE'] | R['SET_VRING_ENDIAN'] | R['VRING_KICK'];

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

/** The payload layout that carries each reply kind. */
export const REPLY_PAYLOAD: { readonly [K in ReplyKind]: PayloadKind } = {
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
export function replyKindsFor(request: number): ReplyKind[] {
  const spec = requestSpec(request);
  if (spec === null) return ['u64'];
  const main: ReplyKind = spec.reply ?? 'u64';
  return spec.altReply ? [main, spec.altReply] : [main];
}
