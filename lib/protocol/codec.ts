/**
 * vhost-user message codec: header parsing, request decode/encode, reply
 * decode/encode. Pure functions over Buffers; file descriptors are plain
 * numbers that this module never opens, closes or stores.
 *
 * Layouts follow QEMU docs/interop/vhost-user.rst ("Payload", "Front-end
 * message types") and the C structs QEMU actually puts on the wire
 * (hw/virtio/vhost-user.c). Little-endian throughout.
 *
 * Everything about a request lives in one table (SPEC, messages.ts): its
 * payload kind, how many fds it must carry, and what the back-end replies.
 * Each payload kind's wire layout, with its size, count and range checks, is
 * declared once in payloads.ts; the reader and the writer here derive from
 * those declarations, so decode and encode cannot drift apart.
 */
import { VhostUserError } from '../errors';
import { HEADER_SIZE, HeaderFlag, MAX_PAYLOAD_SIZE, requestName } from './constants';
import {
  REPLY_PAYLOAD,
  replyKindsFor,
  requestSpec,
  type FdRule,
  type MemoryRegion,
  type Message,
  type MessageHeader,
  type RawMessage,
  type ReplyBody,
  type ReplyKind,
  type RequestSpec,
} from './messages';
import {
  PAYLOADS,
  type ArrayLayout,
  type BitsField,
  type Fields,
  type PayloadLayout,
  type ScalarField,
  type StructLayout,
  type TailLayout,
} from './payloads';

// The message types and the request table live in messages.ts; re-exported so that code which
// speaks to the codec needs one import.
export * from './messages';

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
function fixedSize(layout: PayloadLayout): number | null {
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

function decodePayload(layout: PayloadLayout, p: Buffer, ctx: Ctx): Fields {
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

function encodePayload(layout: PayloadLayout, f: Fields, ctx: Ctx): Buffer {
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

/** The payload fields an outgoing request's fds imply: the NOFD bit says that no fd rides along. */
function wireFields(rule: FdRule, f: Fields): Fields {
  return rule === 'vringFd' ? { ...f, nofd: f.fd === null } : f;
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
  const spec = requestSpec(request);
  if (spec === null) {
    fail(
      ctx,
      'ENOTSUP_REQUEST',
      `request code ${request} is not a front-end request (known: 1..43); ` +
        'discard its payload, close its fds, and nack it if NEED_REPLY is set',
    );
  }
  return spec;
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
  const fields = decodePayload(PAYLOADS[spec.payload], raw.payload, ctx);
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
  const payload = encodePayload(PAYLOADS[spec.payload], wireFields(spec.fds, f), ctx);
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
  const payload = encodePayload(PAYLOADS[REPLY_PAYLOAD[body.kind]], body as unknown as Fields, ctx);
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
  const layoutOf = (k: ReplyKind): PayloadLayout => PAYLOADS[REPLY_PAYLOAD[k]];
  const kind = kinds.find((k) => fixedSize(layoutOf(k)) === payload.length) ?? kinds.find((k) => fixedSize(layoutOf(k)) === null);
  if (kind === undefined) {
    const want = kinds.map((k) => `${fixedSize(layoutOf(k))} (${layoutOf(k).name})`);
    fail(ctx, 'EBADMSG_SIZE', `payload is ${payload.length} bytes, expected exactly ${want.join(' or ')}`);
  }
  const fields = decodePayload(layoutOf(kind), payload, ctx);
  return { kind, ...fields } as unknown as ReplyBody;
}
