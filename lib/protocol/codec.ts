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
 * declared once in payloads.ts; the reader and the writer that derive from
 * those declarations are in payload_codec.ts. This file adds what surrounds a
 * payload: the header, the fds, and which layout a request or reply uses.
 */
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
import { decodePayload, encodePayload, fail, fixedSize, wantArray, wantFd, wantObject, type Ctx } from './payload_codec';
import { PAYLOADS, type Fields, type PayloadLayout } from './payloads';

// The message types and the request table live in messages.ts; re-exported so that code which
// speaks to the codec needs one import.
export * from './messages';

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
