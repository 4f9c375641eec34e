/**
 * Payload bytes <-> message fields. The reader and the writer here both walk
 * the layouts declared once in payloads.ts (sizes, counts, range checks), so
 * decode and encode cannot drift apart. The error and field-check helpers live
 * here too: codec.ts checks its fds and headers with the same ones.
 *
 * Pure functions over Buffers; little-endian throughout.
 */
import { VhostUserError } from '../errors';
import type { ArrayLayout, BitsField, Fields, PayloadLayout, ScalarField, StructLayout, TailLayout } from './payloads';

// ---------------------------------------------------------------------------
// Errors and field helpers
// ---------------------------------------------------------------------------

/** Where a payload is being processed, for error messages and codes. */
export interface Ctx {
  /** e.g. 'SET_MEM_TABLE', 'GET_CONFIG reply', 'encodeRequest(SET_VRING_KICK)'. */
  readonly label: string;
  /** VhostUserError.op: the request name. */
  readonly op: string;
  /** Encoding our own data: bad input is a caller bug (EINVAL), not a bad message. */
  readonly encoding: boolean;
}

export function fail(ctx: Ctx, code: string, detail: string): never {
  throw new VhostUserError(ctx.encoding ? 'EINVAL' : code, `${ctx.label}: ${detail}`, { op: ctx.op });
}

const U64_MAX = (1n << 64n) - 1n;

function show(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  if (Buffer.isBuffer(v)) return `a ${v.length}-byte Buffer`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

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

export function wantFd(v: unknown, what: string, ctx: Ctx): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    fail(ctx, 'EBADMSG_FDS', `${what} must be a non-negative integer fd, got ${show(v)}`);
  }
  return v;
}

export function wantArray(f: Fields, key: string, ctx: Ctx): unknown[] {
  const v = f[key];
  if (!Array.isArray(v)) fail(ctx, 'EBADMSG_FIELD', `${key} must be an array, got ${show(v)}`);
  return v;
}

export function wantObject(v: unknown, what: string, ctx: Ctx): Fields {
  if (typeof v !== 'object' || v === null) fail(ctx, 'EBADMSG_FIELD', `${what} must be an object, got ${show(v)}`);
  return v as Fields;
}

// ---------------------------------------------------------------------------
// Payloads: reader and writer derived from the layouts declared in payloads.ts
// ---------------------------------------------------------------------------

type Scalar = ScalarField['type'];

/** Little-endian scalar access: u64 as bigint, the others as number. */
const READ: { readonly [T in Scalar]: (p: Buffer, at: number) => number | bigint } = {
  u8: (p, at) => p.readUInt8(at),
  u16: (p, at) => p.readUInt16LE(at),
  u32: (p, at) => p.readUInt32LE(at),
  u64: (p, at) => p.readBigUInt64LE(at),
};
const WRITE: { readonly [T in Scalar]: (b: Buffer, v: unknown, at: number) => void } = {
  u8: (b, v, at) => b.writeUInt8(v as number, at),
  u16: (b, v, at) => b.writeUInt16LE(v as number, at),
  u32: (b, v, at) => b.writeUInt32LE(v as number, at),
  u64: (b, v, at) => b.writeBigUInt64LE(v as bigint, at),
};
const INT_MAX = { u8: 0xff, u16: 0xffff, u32: 0xffffffff } as const;

/** Position of the lowest set bit of a group mask: how far its value is shifted on the wire. */
function lowBit(mask: number): number {
  return 31 - Math.clz32(mask & -mask);
}

/** Throws what the layout's check (its is_valid()) reports, if anything. */
function enforce(layout: StructLayout, v: Fields, what: string, ctx: Ctx): void {
  const problem = layout.check?.(v, what) ?? null;
  if (problem !== null) fail(ctx, problem.code, problem.detail);
}

/** Reads every field of `layout` at `base`. Nested structs are checked; `layout` itself is not yet. */
function readFields(layout: StructLayout, p: Buffer, base: number, ctx: Ctx): Fields {
  const v: Fields = {};
  for (const [key, field] of Object.entries(layout.fields)) {
    const at = base + field.at;
    switch (field.type) {
      case 'u8':
      case 'u16':
      case 'u32':
      case 'u64':
        v[key] = READ[field.type](p, at);
        break;
      case 'bytes':
        v[key] = Buffer.from(p.subarray(at, at + field.length));
        break;
      case 'pad':
        break;
      case 'struct':
        v[key] = readStruct(field.layout, p, at, key, ctx);
        break;
      case 'bits':
        readBits(field, key, p.readBigUInt64LE(at), v, ctx);
        break;
    }
  }
  return v;
}

function readStruct(layout: StructLayout, p: Buffer, base: number, what: string, ctx: Ctx): Fields {
  const v = readFields(layout, p, base, ctx);
  enforce(layout, v, what, ctx);
  return v;
}

function readBits(field: BitsField, key: string, word: bigint, into: Fields, ctx: Ctx): void {
  const known = [...Object.values(field.numbers), ...Object.values(field.flags)].reduce((all, m) => all | BigInt(m), 0n);
  if ((word & ~known) !== 0n) {
    fail(ctx, 'EBADMSG_FIELD', `${key} 0x${word.toString(16)} has bits set outside ${field.describe}`);
  }
  for (const [name, mask] of Object.entries(field.numbers)) into[name] = Number((word & BigInt(mask)) >> BigInt(lowBit(mask)));
  for (const [name, bit] of Object.entries(field.flags)) into[name] = (word & BigInt(bit)) !== 0n;
}

/**
 * Takes every field of `layout` from caller-supplied `src`, each checked against its type (and
 * `max`); `derived` holds the fields the encoder computes itself (counts, lengths). Nested
 * structs are checked; `layout` itself is not yet.
 */
function collectFields(layout: StructLayout, src: Fields, derived: Fields, ctx: Ctx): Fields {
  const v: Fields = {};
  for (const [key, field] of Object.entries(layout.fields)) {
    if (key in derived) {
      v[key] = derived[key];
      continue;
    }
    switch (field.type) {
      case 'u8':
      case 'u16':
      case 'u32':
        v[key] = wantInt(src, key, field.max ?? INT_MAX[field.type], ctx);
        break;
      case 'u64':
        v[key] = wantU64(src, key, ctx);
        break;
      case 'bytes':
        v[key] = wantBuffer(src, key, field.length, field.length, ctx);
        break;
      case 'pad':
        break;
      case 'struct':
        v[key] = collectStruct(field.layout, src[key], key, ctx);
        break;
      case 'bits':
        for (const [name, mask] of Object.entries(field.numbers)) v[name] = wantInt(src, name, mask >>> lowBit(mask), ctx);
        for (const name of Object.keys(field.flags)) v[name] = src[name] === true;
        break;
    }
  }
  return v;
}

/** A nested struct (a region) from the caller: messages about its fields name it in the label. */
function collectStruct(layout: StructLayout, value: unknown, what: string, ctx: Ctx): Fields {
  const src = wantObject(value, what, ctx);
  const v = collectFields(layout, src, {}, { ...ctx, label: `${ctx.label} ${what}` });
  enforce(layout, v, what, ctx);
  return v;
}

/** Writes checked values (from collectFields) at `base`; padding stays zero. */
function writeFields(layout: StructLayout, v: Fields, b: Buffer, base: number): void {
  for (const [key, field] of Object.entries(layout.fields)) {
    const at = base + field.at;
    switch (field.type) {
      case 'u8':
      case 'u16':
      case 'u32':
      case 'u64':
        WRITE[field.type](b, v[key], at);
        break;
      case 'bytes':
        (v[key] as Buffer).copy(b, at);
        break;
      case 'pad':
        break;
      case 'struct':
        writeFields(field.layout, v[key] as Fields, b, at);
        break;
      case 'bits': {
        let word = 0n;
        for (const [name, mask] of Object.entries(field.numbers)) word |= BigInt(v[name] as number) << BigInt(lowBit(mask));
        for (const [name, bit] of Object.entries(field.flags)) if (v[name] === true) word |= BigInt(bit);
        b.writeBigUInt64LE(word, at);
        break;
      }
    }
  }
}

/** The exact size of a fixed layout; null for variable-size ones. */
export function fixedSize(layout: PayloadLayout): number | null {
  return layout.form === 'struct' ? layout.size : null;
}

function readHeaderOf(layout: TailLayout | ArrayLayout, p: Buffer, ctx: Ctx): Fields {
  const hdr = layout.header;
  if (p.length < hdr.size) {
    fail(ctx, 'EBADMSG_SIZE', `payload is ${p.length} bytes, too short for the ${hdr.size}-byte ${layout.noun} header`);
  }
  return readFields(hdr, p, 0, ctx);
}

function decodeTail(layout: TailLayout, p: Buffer, ctx: Ctx): Fields {
  const hdr = layout.header;
  const h = readHeaderOf(layout, p, ctx);
  const length = p.length - hdr.size;
  if (layout.lengthField !== undefined) {
    const stated = h[layout.lengthField];
    if (stated !== length) {
      const header = `the ${hdr.size}-byte ${layout.noun} header`;
      fail(ctx, 'EBADMSG_SIZE', `${layout.noun} ${layout.lengthField} field says ${stated} bytes but ${length} bytes follow ${header}`);
    }
  }
  enforce(hdr, h, '', ctx);
  const max = layout.max(h);
  if (length < layout.min || length > max) {
    fail(ctx, 'EBADMSG_SIZE', `payload is ${p.length} bytes; ${layout.name} is ${hdr.size + layout.min}..${hdr.size + max} bytes`);
  }
  // The length is the Buffer's; the decoded message does not repeat it.
  if (layout.lengthField !== undefined) delete h[layout.lengthField];
  h[layout.key] = Buffer.from(p.subarray(hdr.size));
  return h;
}

function encodeTail(layout: TailLayout, f: Fields, ctx: Ctx): Buffer {
  const hdr = layout.header;
  const lengthField = layout.lengthField;
  const h = collectFields(hdr, f, lengthField === undefined ? {} : { [lengthField]: 0 }, ctx);
  const data = wantBuffer(f, layout.key, layout.min, layout.max(h), ctx);
  if (lengthField !== undefined) h[lengthField] = data.length;
  enforce(hdr, h, '', ctx);
  const b = Buffer.alloc(hdr.size + data.length);
  writeFields(hdr, h, b, 0);
  data.copy(b, hdr.size);
  return b;
}

function decodeArray(layout: ArrayLayout, p: Buffer, ctx: Ctx): Fields {
  const { header: hdr, element: el, elementNoun: noun } = layout;
  const h = readHeaderOf(layout, p, ctx);
  enforce(hdr, h, '', ctx);
  const n = h[layout.countField] as number;
  const want = hdr.size + el.size * n;
  if (p.length !== want) {
    const parts = `${hdr.size}-byte header + ${n} ${noun}s x ${el.size}`;
    fail(ctx, 'EBADMSG_SIZE', `payload is ${p.length} bytes, expected exactly ${want} (${parts})`);
  }
  // The count is the array's length; the decoded message does not repeat it.
  delete h[layout.countField];
  h[layout.key] = Array.from({ length: n }, (_, i) => readStruct(el, p, hdr.size + el.size * i, `${noun} ${i}`, ctx));
  return h;
}

function encodeArray(layout: ArrayLayout, f: Fields, ctx: Ctx): Buffer {
  const { header: hdr, element: el } = layout;
  const items = wantArray(f, layout.key, ctx);
  const h = collectFields(hdr, f, { [layout.countField]: items.length }, ctx);
  enforce(hdr, h, '', ctx);
  const elements = items.map((item, i) => collectStruct(el, item, `${layout.elementNoun} ${i}`, ctx));
  const b = Buffer.alloc(hdr.size + el.size * items.length);
  writeFields(hdr, h, b, 0);
  elements.forEach((v, i) => writeFields(el, v, b, hdr.size + el.size * i));
  return b;
}

export function decodePayload(layout: PayloadLayout, p: Buffer, ctx: Ctx): Fields {
  switch (layout.form) {
    case 'struct':
      if (p.length !== layout.size) {
        fail(ctx, 'EBADMSG_SIZE', `payload is ${p.length} bytes, expected exactly ${layout.size} (${layout.name})`);
      }
      return readStruct(layout, p, 0, '', ctx);
    case 'tail':
      return decodeTail(layout, p, ctx);
    case 'array':
      return decodeArray(layout, p, ctx);
  }
}

export function encodePayload(layout: PayloadLayout, f: Fields, ctx: Ctx): Buffer {
  switch (layout.form) {
    case 'struct': {
      const v = collectFields(layout, f, {}, ctx);
      enforce(layout, v, '', ctx);
      const b = Buffer.alloc(layout.size);
      writeFields(layout, v, b, 0);
      return b;
    }
    case 'tail':
      return encodeTail(layout, f, ctx);
    case 'array':
      return encodeArray(layout, f, ctx);
  }
}
