/**
 * vhost-user protocol constants.
 *
 * Source of truth: QEMU docs/interop/vhost-user.rst ("Front-end message
 * types", "Protocol features", "Header"). All wire integers are
 * little-endian (the spec says "machine native byte order"; every platform
 * this package supports is little-endian).
 */

/** Front-end request codes (front-end -> back-end), ids 1..43 of the spec. */
export const Request = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  /** Previously named SET_SLAVE_REQ_FD. */
  SET_BACKEND_REQ_FD: 21,
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  POSTCOPY_ADVISE: 28,
  POSTCOPY_LISTEN: 29,
  POSTCOPY_END: 30,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GPU_SET_SOCKET: 33,
  RESET_DEVICE: 34,
  /** In-band kick (INBAND_NOTIFICATIONS). QEMU reserves the number but does not send it. */
  VRING_KICK: 35,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
  GET_SHARED_OBJECT: 41,
  SET_DEVICE_STATE_FD: 42,
  CHECK_DEVICE_STATE: 43,
} as const;

export type RequestName = keyof typeof Request;
export type RequestCode = (typeof Request)[RequestName];

const REQUEST_NAMES: ReadonlyMap<number, RequestName> = new Map(
  (Object.keys(Request) as RequestName[]).map((name) => [Request[name], name]),
);

/** True if `code` is one of the front-end requests 1..43. */
export function isRequestCode(code: number): code is RequestCode {
  return REQUEST_NAMES.has(code);
}

/** 'SET_VRING_ADDR' for 9, 'UNKNOWN(99)' for anything that is not a request code. */
export function requestName(code: number): string {
  return REQUEST_NAMES.get(code) ?? `UNKNOWN(${code})`;
}

/** Bits of the header `flags` word. */
export const HeaderFlag = {
  /** The only protocol version there is; lives in the low 2 bits. */
  VERSION: 0x1,
  VERSION_MASK: 0x3,
  /** Set on every reply (back-end -> front-end). */
  REPLY: 0x4,
  /** Front-end asks for a REPLY_ACK (needs protocol feature REPLY_ACK). */
  NEED_REPLY: 0x8,
} as const;

/** request u32 + flags u32 + size u32. */
export const HEADER_SIZE = 12;

/** vhost-user protocol feature bit numbers (GET/SET_PROTOCOL_FEATURES). */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  MTU: 4,
  /** Previously SLAVE_REQ. */
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  /** Previously SLAVE_SEND_FD. */
  BACKEND_SEND_FD: 10,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
  XEN_MMAP: 17,
  SHARED_OBJECT: 18,
  DEVICE_STATE: 19,
} as const;

/** Device-independent feature bit numbers (GET/SET_FEATURES). */
export const VirtioFeature = {
  NOTIFY_ON_EMPTY: 24,
  /** VHOST_F_LOG_ALL: the front-end turns dirty logging on with this bit in SET_FEATURES. */
  LOG_ALL: 26,
  ANY_LAYOUT: 27,
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  /** VHOST_USER_F_PROTOCOL_FEATURES: the reserved virtio bit 30 reused by vhost-user. */
  PROTOCOL_FEATURES: 30,
  VERSION_1: 32,
  /** Previously IOMMU_PLATFORM. */
  ACCESS_PLATFORM: 33,
  RING_PACKED: 34,
  IN_ORDER: 35,
  ORDER_PLATFORM: 36,
  SR_IOV: 37,
  NOTIFICATION_DATA: 38,
  RING_RESET: 40,
} as const;

/** Feature mask with only bit `n` set. */
export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** True if bit `n` is set in `mask`. */
export function hasBit(mask: bigint, n: number): boolean {
  return (mask & bit(n)) !== 0n;
}

/**
 * Largest payload we accept or send. The biggest payload QEMU can produce is
 * the CREATE_CRYPTO_SESSION body (VhostUserCryptoSession: u64 op_code, a
 * union whose asymmetric arm carries a 1024-byte key, i64 session_id: about
 * 1.1 KiB). Everything else is far smaller: a full SET_MEM_TABLE is
 * 8 + 8*32 = 264 bytes (328 with the XEN_MMAP region extension), a config
 * space message 12 + 256 = 268. 4096 covers all of them with margin while
 * still bounding what a peer can make us buffer per message.
 */
export const MAX_PAYLOAD_SIZE = 4096;

/** SCM_RIGHTS fds carried by one message (QEMU: VHOST_USER_BACKEND_MAX_FDS / memory table). */
export const MAX_FDS_PER_MESSAGE = 8;

/** Region limit of SET_MEM_TABLE (QEMU: VHOST_MEMORY_BASELINE_NREGIONS). */
export const MEMORY_BASELINE_NREGIONS = 8;

/** Vring index inside the SET_VRING_KICK/CALL/ERR u64: bits 0..7. */
export const VRING_INDEX_MASK = 0xff;

/** "Invalid FD" flag in the SET_VRING_KICK/CALL/ERR u64 (bit 8): no fd attached, poll instead. */
export const VRING_NOFD_MASK = 0x100;

/** Largest virtio device config space carried by GET/SET_CONFIG (QEMU: VHOST_USER_MAX_CONFIG_SIZE). */
export const CONFIG_SPACE_MAX = 256;

/** SET_VRING_ADDR flags: log writes to the used ring (1 << VHOST_VRING_F_LOG). */
export const VRING_ADDR_F_LOG = 0x1;

/**
 * Most regions a front-end may add with ADD_MEM_REG (GET_MAX_MEM_SLOTS): 509, what QEMU's
 * libvhost-user offers for memory hotplug (VHOST_USER_MAX_RAM_SLOTS). The native guest memory
 * holds this many whatever the device kind (GuestMemory::kMaxRegions, kept in step by hand).
 */
export const MAX_MEM_SLOTS = 509;
