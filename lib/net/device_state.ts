/**
 * The net device's DEVICE_STATE blob: what one back-end hands another through the front-end when a
 * guest migrates (vhost-user "Migrating back-end state"). The blob comes from the front-end, so it is
 * untrusted: decodeDeviceState reads it whole, checking every length against what is left, before
 * the device applies any of it.
 *
 * Layout, little-endian: "VHUS", u16 format version (1), u8 length and the port kind's name (the
 * state fits only a device of the same port), then records to the end, each u16 type, u32 length and
 * that many bytes:
 * - 1 FORWARD (user port; one per forward): "tcp:HOSTADDR:HOSTPORT:GUESTPORT" (or udp:), ASCII;
 * - 2 SLIRP (user port; at most one): i32 libslirp state version, then slirp_state_save's bytes;
 * - 3 MACS (switch port; at most one): the MACs learnt behind the device's port, 6 bytes each.
 * A port without state writes the header alone.
 */
import { VhostUserError } from '../errors';
import type { NativePortState } from '../binding';

export const DEVICE_STATE_MAGIC = 'VHUS';
export const DEVICE_STATE_VERSION = 1;

export const StateRecord = { FORWARD: 1, SLIRP: 2, MACS: 3 } as const;

/** Bounds of one blob: far above what a device holds, low enough that a lie costs nothing. */
export const MAX_FORWARDS = 1024;
const MAX_FORWARD_TEXT = 64;
const MAX_SLIRP_BYTES = 64 * 1024;
const MAX_MACS = 1 << 20;

/** What a blob carries, as decoded; the fields of other port kinds are empty. */
export interface DeviceState {
  port: string;
  /** tcp:HOSTADDR:HOSTPORT:GUESTPORT, as device.addForward takes them. */
  forwards: string[];
  /** libslirp's state format version (-1: none) and bytes. */
  slirpVersion: number;
  slirp: Buffer;
  macs: Buffer[];
}

const HEADER = 4 + 2 + 1;
const RECORD_HEADER = 2 + 4;

function record(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(RECORD_HEADER);
  head.writeUInt16LE(type, 0);
  head.writeUInt32LE(body.length, 2);
  return Buffer.concat([head, body]);
}

/** "tcp:H:HP:G:GP" (the native spelling) -> "tcp:H:HP:GP": the destination puts in its own guest address. */
function portable(spelled: string): string {
  const parts = spelled.split(':');
  return parts.length === 5 ? [parts[0], parts[1], parts[2], parts[4]].join(':') : spelled;
}

/** The blob of a device of port `port` whose native half saved `state`. */
export function encodeDeviceState(port: string, state: NativePortState): Buffer {
  const name = Buffer.from(port, 'ascii');
  const head = Buffer.alloc(HEADER + name.length);
  head.write(DEVICE_STATE_MAGIC, 0, 'ascii');
  head.writeUInt16LE(DEVICE_STATE_VERSION, 4);
  head.writeUInt8(name.length, 6);
  name.copy(head, HEADER);
  const parts: Buffer[] = [head];
  for (const f of state.forwards) parts.push(record(StateRecord.FORWARD, Buffer.from(portable(f), 'ascii')));
  if (state.slirpVersion >= 0) {
    const version = Buffer.alloc(4);
    version.writeInt32LE(state.slirpVersion, 0);
    parts.push(record(StateRecord.SLIRP, Buffer.concat([version, state.slirp])));
  }
  if (state.macs.length) parts.push(record(StateRecord.MACS, Buffer.concat(state.macs)));
  return Buffer.concat(parts);
}

const bad = (what: string) => new VhostUserError('EBADMSG', `device state refused: ${what}`);

/** Which records a port's state may hold. */
const RECORDS_OF: Record<string, number[]> = { user: [StateRecord.FORWARD, StateRecord.SLIRP], switch: [StateRecord.MACS] };

/**
 * Reads a blob for a device of port `port`. Throws VhostUserError EBADMSG with the reason (wrong
 * magic, version or port, a length past the end, a record this port cannot hold, a bad value).
 */
export function decodeDeviceState(blob: Buffer, port: string): DeviceState {
  if (blob.length < HEADER) throw bad(`${blob.length} bytes, shorter than the ${HEADER}-byte header`);
  const magic = blob.subarray(0, 4);
  if (!magic.equals(Buffer.from(DEVICE_STATE_MAGIC, 'ascii'))) throw bad(`magic ${magic.toString('hex')}, not "${DEVICE_STATE_MAGIC}"`);
  const version = blob.readUInt16LE(4);
  if (version !== DEVICE_STATE_VERSION) throw bad(`format version ${version}; this back-end reads version ${DEVICE_STATE_VERSION}`);
  const nameEnd = HEADER + blob.readUInt8(6);
  if (nameEnd > blob.length) throw bad(`the port name runs ${nameEnd - blob.length} bytes past the end`);
  const saved = blob.subarray(HEADER, nameEnd).toString('latin1');
  if (saved !== port) throw bad(`saved by a device of port '${printable(saved)}', this device's port is '${port}'`);
  const state: DeviceState = { port, forwards: [], slirpVersion: -1, slirp: Buffer.alloc(0), macs: [] };
  const seen = new Set<number>();
  for (let at = nameEnd; at < blob.length;) {
    if (blob.length - at < RECORD_HEADER) throw bad(`${blob.length - at} stray bytes at offset ${at}, shorter than a record header`);
    const type = blob.readUInt16LE(at);
    const len = blob.readUInt32LE(at + 2);
    const start = at + RECORD_HEADER;
    if (len > blob.length - start) throw bad(`record ${type} at offset ${at} claims ${len} bytes, ${blob.length - start} are left`);
    if (!(RECORDS_OF[port] ?? []).includes(type)) throw bad(`record type ${type} at offset ${at} has no place in a ${port} port's state`);
    if (type !== StateRecord.FORWARD && seen.has(type)) throw bad(`record type ${type} twice`);
    seen.add(type);
    readRecord(state, type, blob.subarray(start, start + len), at);
    at = start + len;
  }
  return state;
}

function readRecord(state: DeviceState, type: number, body: Buffer, at: number): void {
  if (type === StateRecord.FORWARD) {
    const text = body.toString('latin1');
    if (body.length === 0 || body.length > MAX_FORWARD_TEXT || !/^[a-z0-9.:]+$/.test(text))
      throw bad(`forward at offset ${at} is not a forward spec of 1..${MAX_FORWARD_TEXT} characters`);
    if (state.forwards.length >= MAX_FORWARDS) throw bad(`more than ${MAX_FORWARDS} forwards`);
    state.forwards.push(text);
  } else if (type === StateRecord.SLIRP) {
    if (body.length < 4 || body.length - 4 > MAX_SLIRP_BYTES) throw bad(`libslirp state of ${body.length} bytes at offset ${at}`);
    const version = body.readInt32LE(0);
    if (version < 0) throw bad(`libslirp state version ${version}`);
    state.slirpVersion = version;
    state.slirp = Buffer.from(body.subarray(4));
  } else {
    if (body.length % 6 !== 0 || body.length / 6 > MAX_MACS) throw bad(`MAC list of ${body.length} bytes, not a whole number of MACs`);
    for (let i = 0; i < body.length; i += 6) {
      const mac = Buffer.from(body.subarray(i, i + 6));
      if (mac[0] & 1 || mac.every((b) => b === 0)) throw bad(`MAC ${mac.toString('hex')} is not a unicast address`);
      state.macs.push(mac);
    }
  }
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}
