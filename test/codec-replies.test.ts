/** Back-end replies: which requests reply, round trips through encodeReply/decodeReply, reply headers. */
import { describe, it, expect } from 'vitest';
import { rawHeader } from './helpers/messages';
import { HEADER_SIZE, HeaderFlag, MAX_PAYLOAD_SIZE, Request, VRING_NOFD_MASK, bit } from '../lib/protocol/constants';
import { ReplyBody, decodeReply, encodeReply, parseReplyHeader, replyKind } from '../lib/protocol/codec';
import { U64_MAX, catchError, region } from './helpers/codec';

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
