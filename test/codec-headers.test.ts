/** Request headers (parseRequestHeader), the constants a header carries, and the error every codec check throws. */
import { describe, it, expect } from 'vitest';
import { VhostUserError } from '../lib/errors';
import { rawHeader } from './helpers/messages';
import { catchError } from './helpers/codec';
import { HeaderFlag, MAX_PAYLOAD_SIZE, ProtocolFeature, Request, bit, hasBit, requestName } from '../lib/protocol/constants';
import { parseRequestHeader } from '../lib/protocol/codec';

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
