/**
 * The pcap writer: a capture of every frame of a device, both directions, into a pcap file that
 * tcpdump and Wireshark read (nanosecond timestamps, magic 0xa1b23c4d; LINKTYPE_ETHERNET; frames
 * without the virtio-net header). The workers write pcap records into a native ring per queue pair
 * (native/net/capture.h) and never wait: what does not fit is counted as dropped. This writer drains
 * the rings into the file every few milliseconds, whole slices at a time, with no work per frame.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { native, type NativeCapture, type NativeNetDevice, type NativePoller, type NativeSwitch } from '../binding';
import { VhostUserError } from '../errors';

export interface CaptureOptions {
  /**
   * Bytes kept of each frame (pcap's snaplen), 1..MAX_SNAPLEN and at most half of ringBytes. Default
   * MAX_SNAPLEN (whole frames), or half of ringBytes when that is less.
   */
  snaplen?: number;
  /** Bytes of ring per queue pair, a power of two in MIN_RING_BYTES..MAX_RING_BYTES. Default 4 MiB. */
  ringBytes?: number;
}

export interface CaptureCounts {
  /** Frames captured (all written to the file once stop() resolved). */
  frames: number;
  /** Frames not captured because the ring had no room (the writer fell behind). */
  dropped: number;
}

export const MAX_SNAPLEN = 262144; // tcpdump's and Wireshark's largest
export const MIN_RING_BYTES = 65536;
export const MAX_RING_BYTES = 1 << 30;
export const DEFAULT_RING_BYTES = 4 << 20;
/** How often the writer looks at the rings while they stay below a quarter full (it is woken at a quarter). */
const DRAIN_MS = 10;

const PCAP_MAGIC_NS = 0xa1b23c4d;
const LINKTYPE_ETHERNET = 1;

/** The problem with the options, in one line, or null. */
export function captureOptionsProblem(opts: CaptureOptions): string | null {
  const ring = opts.ringBytes ?? DEFAULT_RING_BYTES;
  const snaplen = opts.snaplen ?? defaultSnaplen(ring);
  if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > MAX_SNAPLEN)
    return `snaplen must be an integer in 1..${MAX_SNAPLEN}, got ${snaplen}`;
  if (!Number.isInteger(ring) || ring < MIN_RING_BYTES || ring > MAX_RING_BYTES || (ring & (ring - 1)) !== 0) {
    return `ringBytes must be a power of two in ${MIN_RING_BYTES}..${MAX_RING_BYTES}, got ${ring}`;
  }
  if (snaplen > ring / 2) return `snaplen ${snaplen} needs ringBytes of at least ${2 * snaplen}`;
  return null;
}

function defaultSnaplen(ringBytes: number): number {
  return Math.min(MAX_SNAPLEN, Math.floor(ringBytes / 2));
}

/** The pcap global header, in this machine's byte order (the native records are written in it too). */
export function pcapHeader(snaplen: number): Buffer {
  const b = Buffer.alloc(24);
  const le = os.endianness() === 'LE';
  const u32 = (v: number, at: number) => (le ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
  const u16 = (v: number, at: number) => (le ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
  u32(PCAP_MAGIC_NS, 0);
  u16(2, 4); // version 2.4
  u16(4, 6);
  u32(0, 8); // thiszone
  u32(0, 12); // sigfigs
  u32(snaplen, 16);
  u32(LINKTYPE_ETHERNET, 20);
  return b;
}

function write(fd: number, bytes: Uint8Array): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, bytes, 0, bytes.length, null, (err, n) => (err ? reject(err) : resolve(n))));
}

/** A running capture of one device (or one switch: every frame entering it, once) into one file; stop() ends it. */
export class PcapCapture {
  readonly path: string;
  private readonly native: NativeCapture;
  private readonly fd: number;
  private stopping = false;
  private error: VhostUserError | null = null;
  private readonly done: Promise<void>;
  private wake: (() => void) | null = null;
  private result: Promise<CaptureCounts> | null = null;
  private readonly onStop: () => void;
  private readonly bell: NativePoller;

  /**
   * Opens (truncates) `path`, writes the pcap header and attaches the rings to `device` (or a switch);
   * `onStop` runs when stop() is first called. Throws VhostUserError.
   */
  constructor(device: NativeNetDevice | NativeSwitch, path: string, opts: CaptureOptions = {}, onStop: () => void = () => {}) {
    this.onStop = onStop;
    const problem = captureOptionsProblem(opts);
    if (problem) throw new VhostUserError('EINVAL', `capture: ${problem}`);
    const ringBytes = opts.ringBytes ?? DEFAULT_RING_BYTES;
    const snaplen = opts.snaplen ?? defaultSnaplen(ringBytes);
    this.path = path;
    try {
      this.fd = fs.openSync(path, 'w', 0o644);
      fs.writeSync(this.fd, pcapHeader(snaplen));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // Node's "ENOENT: no such file or directory, open '/x'" -> "no such file or directory".
      const why = e.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
      throw new VhostUserError(e.code ?? 'EIO', `capture: cannot write ${path}: ${why}`, {
        errno: e.errno,
        op: 'open',
      });
    }
    try {
      this.native = new native.Capture(device, ringBytes, snaplen);
    } catch (err) {
      fs.closeSync(this.fd);
      throw err;
    }
    const wakeFd = this.native.wakeFd;
    try {
      this.bell = new native.Poller(wakeFd, () => {
        native.eventfdRead(wakeFd);
        this.wake?.();
      });
    } catch (err) {
      this.native.close();
      fs.closeSync(this.fd);
      throw err;
    }
    this.done = this.pump();
  }

  /** Frames captured and dropped so far. */
  counts(): CaptureCounts {
    return this.native.counts();
  }

  /** Stops capturing, writes what the rings still hold, closes the file. Rejects if a write failed. */
  stop(): Promise<CaptureCounts> {
    if (!this.result) {
      this.onStop();
      this.stopping = true;
      this.native.stop(); // no record is written after this
      this.wake?.();
      this.result = this.done.then(() => {
        const counts = this.native.counts();
        this.bell.stop(); // before close() closes its fd
        this.native.close();
        fs.closeSync(this.fd);
        if (this.error) throw this.error;
        return counts;
      });
    }
    return this.result;
  }

  /** Drains the rings until stopped and empty; a write error stops the capture. */
  private async pump(): Promise<void> {
    for (;;) {
      let wrote = 0;
      try {
        wrote = await this.drainOnce();
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        this.error = new VhostUserError(e.code ?? 'EIO', `capture: writing ${this.path}: ${e.message}`, { errno: e.errno, op: 'write' });
        this.native.stop();
        this.bell.stop();
        return;
      }
      if (wrote > 0) continue;
      if (this.stopping) return;
      // Sleep, asking to be woken when a ring fills; look once more first (a burst may have
      // published just before the workers could see the request).
      this.native.writerSleeps();
      if (this.hasRecords()) continue;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, DRAIN_MS).unref();
      });
      this.wake = null;
    }
  }

  private hasRecords(): boolean {
    for (let p = 0; p < this.native.pairs; p++) if (this.native.readable(p)[1] > 0) return true;
    return false;
  }

  /** Writes what every ring holds (each ring in at most two slices: before and after its wrap). */
  private async drainOnce(): Promise<number> {
    let total = 0;
    for (let p = 0; p < this.native.pairs; p++) {
      for (let piece = 0; piece < 2; piece++) {
        const [offset, length] = this.native.readable(p);
        if (length === 0) break;
        const view = new Uint8Array(this.native.buffer, offset, length);
        let done = 0;
        while (done < length) done += await write(this.fd, view.subarray(done));
        this.native.consume(p, length);
        total += length;
      }
    }
    return total;
  }
}
