/**
 * vhost-user payload layouts, each declared once. The codec engine (codec.ts) derives
 * both the reader and the writer of a payload from its declaration; the check next to
 * a declaration (its is_valid()) runs on decoded values and on values about to be
 * encoded alike, so a rule is never stated twice.
 *
 * Offsets follow the C structs QEMU actually puts on the wire (hw/virtio/vhost-user.c),
 * tail padding included, and QEMU docs/interop/vhost-user.rst ("Payload").
 * Little-endian throughout. This file holds data and pure checks only: no Buffers are
 * read here and nothing throws, except a declaration that does not fit its own size.
 */
import {
  CONFIG_SPACE_MAX,
  MAX_PAYLOAD_SIZE,
  MEMORY_BASELINE_NREGIONS,
  VRING_ADDR_F_LOG,
  VRING_INDEX_MASK,
  VRING_NOFD_MASK,
} from './constants';
import type { PayloadKind } from './messages';

/** Field values by name: what a decoder produces and an encoder consumes. */
export type Fields = Record<string, unknown>;

/** The first rule some values break: the error code and the message detail. */
export interface Problem {
  readonly code: 'EBADMSG_FIELD' | 'EBADMSG_SIZE' | 'EBADMSG_REGIONS';
  readonly detail: string;
}

// ---------------------------------------------------------------------------
// Field kinds
// ---------------------------------------------------------------------------

/** An unsigned integer at a byte offset: u64 as bigint, the others as number. */
export interface ScalarField {
  readonly type: 'u8' | 'u16' | 'u32' | 'u64';
  readonly at: number;
  /**
   * Largest value the encoder accepts (default: the type's range). Decoding reads any value
   * and leaves the rules to the layout's check, which names them better.
   */
  readonly max?: number;
}

/** Raw bytes, decoded as a copy. */
export interface BytesField {
  readonly type: 'bytes';
  readonly at: number;
  readonly length: number;
}

/** Bytes the wire has but nothing reads: skipped when decoding, zeros when encoding. */
export interface PadField {
  readonly type: 'pad';
  readonly at: number;
  readonly length: number;
}

/** A nested struct; its field name prefixes its messages ('region has size 0'). */
export interface StructField {
  readonly type: 'struct';
  readonly at: number;
  readonly layout: StructLayout;
}

/**
 * A u64 split into named bit groups: `numbers` read as number (mask shifted down),
 * `flags` as boolean. Bits outside every group are undefined and must be clear.
 */
export interface BitsField {
  readonly type: 'bits';
  readonly at: number;
  readonly numbers: { readonly [key: string]: number };
  readonly flags: { readonly [key: string]: number };
  /** Names the groups for the stray-bit message. */
  readonly describe: string;
}

export type Field = ScalarField | BytesField | PadField | StructField | BitsField;

const WIDTH = { u8: 1, u16: 2, u32: 4, u64: 8 } as const;

export function u8(at: number, max?: number): ScalarField {
  return { type: 'u8', at, max };
}
export function u16(at: number): ScalarField {
  return { type: 'u16', at };
}
export function u32(at: number, max?: number): ScalarField {
  return { type: 'u32', at, max };
}
export function u64(at: number): ScalarField {
  return { type: 'u64', at };
}
export function bytes(at: number, length: number): BytesField {
  return { type: 'bytes', at, length };
}
export function pad(at: number, length: number): PadField {
  return { type: 'pad', at, length };
}
export function nested(at: number, layout: StructLayout): StructField {
  return { type: 'struct', at, layout };
}

/** Bytes a field takes on the wire. */
export function fieldWidth(f: Field): number {
  switch (f.type) {
    case 'bytes':
    case 'pad':
      return f.length;
    case 'struct':
      return f.layout.size;
    case 'bits':
      return 8;
    default:
      return WIDTH[f.type];
  }
}

// ---------------------------------------------------------------------------
// Layout kinds
// ---------------------------------------------------------------------------

/** A fixed-size struct: as a whole payload, its size is exact. */
export interface StructLayout {
  readonly form: 'struct';
  /** What it is, for size messages: 'a vring address description'. */
  readonly name: string;
  readonly size: number;
  readonly fields: { readonly [key: string]: Field };
  /** is_valid(): the first rule the values break, or null. `what` names a nested struct ('region 2'). */
  readonly check?: (v: Fields, what: string) => Problem | null;
}

/** A fixed header, then raw bytes (config space, crypto session). */
export interface TailLayout {
  readonly form: 'tail';
  readonly name: string;
  /** The header's short name in size messages: 'config' -> 'the 12-byte config header'. */
  readonly noun: string;
  readonly header: StructLayout;
  /** The message field that holds the bytes. */
  readonly key: string;
  /** Header field that states the tail length (the encoder fills it); without one, the tail is whatever follows. */
  readonly lengthField?: string;
  /** Bounds on the tail length, given the header values; outside them is EBADMSG_SIZE. */
  readonly min: number;
  readonly max: (header: Fields) => number;
}

/** A fixed header with a count, then that many elements of one layout. The count rule is the header's check. */
export interface ArrayLayout {
  readonly form: 'array';
  readonly name: string;
  readonly noun: string;
  readonly header: StructLayout;
  /** Header field that holds the element count (the encoder fills it). */
  readonly countField: string;
  /** The message field that holds the elements, and what one element is called in messages. */
  readonly key: string;
  readonly elementNoun: string;
  readonly element: StructLayout;
}

export type PayloadLayout = StructLayout | TailLayout | ArrayLayout;

/** Declares a struct; a field that does not fit or overlaps another is a bug in this file. */
export function struct(
  name: string,
  size: number,
  fields: { readonly [key: string]: Field },
  check?: (v: Fields, what: string) => Problem | null,
): StructLayout {
  const taken = new Uint8Array(size);
  for (const [key, f] of Object.entries(fields)) {
    const end = f.at + fieldWidth(f);
    if (end > size || taken.subarray(f.at, end).includes(1)) throw new Error(`layout '${name}': field ${key} does not fit`);
    taken.fill(1, f.at, end);
  }
  return { form: 'struct', name, size, fields, check };
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

function fieldProblem(detail: string): Problem {
  return { code: 'EBADMSG_FIELD', detail };
}

const U64_LIMIT = 1n << 64n;

/** base + size must stay inside the 64-bit address space. */
function span(base: unknown, size: unknown, what: string): Problem | null {
  const b = base as bigint;
  const s = size as bigint;
  return b + s > U64_LIMIT ? fieldProblem(`${what} 0x${b.toString(16)} + size 0x${s.toString(16)} wraps past 2^64`) : null;
}

// ---------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------

/** Spec "Memory region description": guest_phys_addr, memory_size, userspace_addr, mmap_offset. */
export const MEMORY_REGION = struct(
  'a memory region description',
  32,
  { guestPhysAddr: u64(0), size: u64(8), userAddr: u64(16), mmapOffset: u64(24) },
  (r, what) => {
    if (r.size === 0n) return fieldProblem(`${what} has size 0; a region must cover at least one byte`);
    return (
      span(r.guestPhysAddr, r.size, `${what} guestPhysAddr`) ??
      span(r.userAddr, r.size, `${what} userAddr`) ??
      span(r.mmapOffset, r.size, `${what} mmapOffset`)
    );
  },
);

/** CREATE_CRYPTO_SESSION: op_code u64 ... session_id i64 at the very least; QEMU sends ~1 KiB. */
const CRYPTO_SESSION_MIN = 16;

export const PAYLOADS: { readonly [K in PayloadKind]: PayloadLayout } = {
  none: struct('no payload', 0, {}),

  u64: struct('a u64', 8, { value: u64(0) }),

  vringState: struct('a vring state {index u32, num u32}', 8, { index: u32(0), num: u32(4) }),

  // struct vhost_vring_addr. (The spec's table header also lists a "size" column; no such field
  // exists on the wire.) Only VHOST_VRING_F_LOG is defined; the kernel vhost rejects other bits too.
  vringAddr: struct(
    'a vring address description',
    40,
    {
      index: u32(0),
      flags: u32(4),
      descUserAddr: u64(8),
      usedUserAddr: u64(16),
      availUserAddr: u64(24),
      logGuestAddr: u64(32),
    },
    (v) => {
      const flags = v.flags as number;
      return (flags & ~VRING_ADDR_F_LOG) !== 0
        ? fieldProblem(`flags 0x${flags.toString(16)} has bits other than VRING_ADDR_F_LOG (0x1)`)
        : null;
    },
  ),

  // `nofd` is consumed by the fd rule, which replaces it with `fd` (and derives it when encoding).
  vringFd: struct('a u64 (vring index bits 0..7, NOFD bit 8)', 8, {
    u64: {
      type: 'bits',
      at: 0,
      numbers: { index: VRING_INDEX_MASK },
      flags: { nofd: VRING_NOFD_MASK },
      describe: 'the vring index (bits 0..7) and the NOFD flag (bit 8)',
    },
  }),

  // Exactly as many regions as announced, 1..MEMORY_BASELINE_NREGIONS of them.
  memTable: {
    form: 'array',
    name: 'a memory table',
    noun: 'memory table',
    header: struct('a memory table header', 8, { nregions: u32(0), padding: pad(4, 4) }, (h) => {
      const n = h.nregions as number;
      return n < 1 || n > MEMORY_BASELINE_NREGIONS
        ? { code: 'EBADMSG_REGIONS', detail: `memory table has ${n} regions; 1..${MEMORY_BASELINE_NREGIONS} are allowed` }
        : null;
    }),
    countField: 'nregions',
    key: 'regions',
    elementNoun: 'region',
    element: MEMORY_REGION,
  },

  // ADD_MEM_REG / REM_MEM_REG and their postcopy reply.
  memRegion: struct('a single memory region description', 40, { padding: pad(0, 8), region: nested(8, MEMORY_REGION) }),

  log: struct('a log description', 16, { mmapSize: u64(0), mmapOffset: u64(8) }, (v) => span(v.mmapOffset, v.mmapSize, 'mmapOffset')),

  // struct vhost_iotlb_msg; the C struct is 8-byte aligned, so QEMU sends sizeof = 32.
  iotlb: struct(
    'an IOTLB message (struct vhost_iotlb_msg)',
    32,
    { iova: u64(0), size: u64(8), userAddr: u64(16), perm: u8(24, 3), type: u8(25, 4), padding: pad(26, 6) },
    (v) => {
      const perm = v.perm as number;
      const type = v.type as number;
      if (perm > 3) return fieldProblem(`permissions ${perm} is not one of 0 (none), 1 (RO), 2 (WO), 3 (RW)`);
      if (type < 1 || type > 4) {
        return fieldProblem(`IOTLB type ${type} is not one of 1 (miss), 2 (update), 3 (invalidate), 4 (access fail)`);
      }
      return null;
    },
  ),

  // offset u32, size u32, flags u32, then `size` bytes of config space, all inside it.
  config: {
    form: 'tail',
    name: 'a device config space message',
    noun: 'config',
    header: struct('a config header', 12, { offset: u32(0, CONFIG_SPACE_MAX), size: u32(4), flags: u32(8) }, (h) => {
      const offset = h.offset as number;
      const size = h.size as number;
      return size > CONFIG_SPACE_MAX || offset + size > CONFIG_SPACE_MAX
        ? fieldProblem(`config access offset ${offset} size ${size} reaches past the ${CONFIG_SPACE_MAX}-byte config space`)
        : null;
    }),
    key: 'payload',
    lengthField: 'size',
    min: 0,
    max: (h) => CONFIG_SPACE_MAX - (h.offset as number),
  },

  // struct VhostUserInflight is 8-byte aligned: QEMU sends sizeof = 24, not 20.
  inflight: struct(
    'an inflight description',
    24,
    { mmapSize: u64(0), mmapOffset: u64(8), numQueues: u16(16), queueSize: u16(18), padding: pad(20, 4) },
    (v) => span(v.mmapOffset, v.mmapSize, 'mmapOffset'),
  ),

  // The first 6 bytes of a u64 are the guest MAC; QEMU zero-fills the last 2.
  rarp: struct('a u64 carrying a MAC address', 8, { mac: bytes(0, 6), padding: pad(6, 2) }),

  // direction u32 (0 save, 1 load), phase u32 (0 stopped). Values are checked by the handler:
  // the spec says more phases may be added.
  deviceState: struct('device state transfer parameters', 8, { direction: u32(0), phase: u32(4) }),

  // VhostUserShared: a UUID, kept as raw bytes.
  shared: struct('a 16-byte UUID', 16, { uuid: bytes(0, 16) }),

  // VhostUserCryptoSession: opaque (its layout embeds QEMU-internal structs and changed between
  // versions), only bounded.
  crypto: {
    form: 'tail',
    name: 'a crypto session description',
    noun: 'crypto session',
    header: struct('no header', 0, {}),
    key: 'payload',
    min: CRYPTO_SESSION_MIN,
    max: () => MAX_PAYLOAD_SIZE,
  },
};

/** A MAC address (SEND_RARP's) as aa:bb:cc:dd:ee:ff. */
export const macText = (mac: Buffer): string => [...mac.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
