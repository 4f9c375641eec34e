/** Fixtures for the codec tests: a sample message per request, raw-message builders, error checks. */
import { expect } from 'vitest';
import { VhostUserError } from '../../lib/errors';
import {
  CONFIG_SPACE_MAX,
  HEADER_SIZE,
  HeaderFlag,
  MAX_PAYLOAD_SIZE,
  MEMORY_BASELINE_NREGIONS,
  ProtocolFeature,
  Request,
  VRING_ADDR_F_LOG,
  VirtioFeature,
  bit,
  requestName,
} from '../../lib/protocol/constants';
import { MemoryRegion, Message, RawMessage, decodeRequest, encodeRequest, parseRequestHeader } from '../../lib/protocol/codec';

// Fake fd numbers: the codec never touches fds.
export const FD = 1000;
export const U64_MAX = (1n << 64n) - 1n;

export function region(i: number): MemoryRegion {
  return {
    guestPhysAddr: 0x1000_0000n * BigInt(i),
    size: 0x1000_0000n,
    userAddr: 0x7f00_0000_0000n + 0x1000_0000n * BigInt(i),
    mmapOffset: 0x20_0000n * BigInt(i),
  };
}

/** One message per request 1..43. */
export const samples: Message[] = [
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
export const extraSamples: Message[] = [
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

export const named = (list: Message[]) => list.map((m) => [requestName(m.request), m] as const);

export function toRaw(bytes: Buffer, fds: number[]): RawMessage {
  const hdr = parseRequestHeader(bytes.subarray(0, HEADER_SIZE));
  const payload = bytes.subarray(HEADER_SIZE);
  expect(hdr.size).toBe(payload.length);
  return { request: hdr.request, flags: hdr.flags, payload, fds };
}

export function rawOf(msg: Message): RawMessage {
  const { bytes, fds } = encodeRequest(msg, false);
  return toRaw(bytes, fds);
}

export function raw(request: number, payload: Buffer, fds: number[] = [], flags: number = HeaderFlag.VERSION): RawMessage {
  return { request, flags, payload, fds };
}

export function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
}

export function catchError(fn: () => unknown): VhostUserError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(VhostUserError);
    return e as VhostUserError;
  }
  throw new Error('expected a VhostUserError, nothing was thrown');
}

/** decodeRequest must throw `code` and leave raw.fds exactly as it was (ownership not taken). */
export function expectReject(r: RawMessage, code: string): VhostUserError {
  const fdsBefore = r.fds;
  const copy = [...r.fds];
  const err = catchError(() => decodeRequest(r));
  expect(err.code).toBe(code);
  expect(err.name).toBe('VhostUserError');
  expect(r.fds).toBe(fdsBefore);
  expect(r.fds).toEqual(copy);
  return err;
}
