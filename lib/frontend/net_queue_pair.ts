/**
 * One queue pair of our virtio-net driver: an RX and a TX ring in guest memory, their kick and call
 * eventfds, the buffers posted on them and the frames coming back. VirtioNetDriver negotiates the
 * device and owns one of these per pair; a pair knows nothing of the others.
 */
import { native, type NativePoller } from '../binding';
import { VhostUserError } from '../errors';
import { VirtioFeature, hasBit } from '../protocol/constants';
import type { DriverRing } from './driver_ring';
import type { GuestMemory } from './guest_memory';
import { PackedDriverRing } from './packed_driver_ring';
import { SplitDriverRing } from './split_driver_ring';

export const NET_HDR_LEN = 12; // VERSION_1 is always negotiated by this driver
export const MAX_FRAME = 1514;
/** A buffer slot of ours (TX, and RX without MRG_RXBUF) holds the header and a frame of `maxFrame`. */
const slotSize = (maxFrame: number) => Math.max(2048, (NET_HDR_LEN + maxFrame + 63) & ~63);

/** How a frame is laid out in descriptors, to exercise the device's chain walking. */
export type TxLayout = 'single' | 'split-header' | 'indirect';

/** A pair's eventfds: made before the rings (QEMU sends the calls first); the driver closes them. */
export interface PairFds {
  rxKick: number;
  rxCall: number;
  txKick: number;
  txCall: number;
}

export interface PairSettings {
  fds: PairFds;
  memory: GuestMemory;
  queueSize: number;
  features: bigint;
  /** SET_VRING_BASE of a packed pair's rings (default: the start of a ring). */
  bases?: { rx?: number; tx?: number };
  /** Largest frame sent or received (default MAX_FRAME): sizes the buffer slots. */
  maxFrame: number;
  mrgRxbuf: boolean;
  /** Size of each receive buffer with MRG_RXBUF. */
  rxBufferSize: number;
  /** Receive buffers to keep posted. */
  rxBuffers: number;
  /** Regions of `memory` to allocate the TX and RX buffers in (NetDriverOptions.bufferRegions). */
  bufferRegions: { tx?: number; rx?: number };
  onFrames: (frames: Buffer[]) => void;
  onTxSpace: () => void;
  /**
   * The device broke the rules on a ring (a used id or length it was never given, num_buffers 0...):
   * the pair has stopped; the driver closes with this reason instead of throwing from an event callback.
   */
  onDeviceError: (err: Error) => void;
}

export class NetQueuePair {
  readonly rx: DriverRing;
  readonly tx: DriverRing;
  readonly rxKick: number;
  readonly rxCall: number;
  readonly txKick: number;
  readonly txCall: number;
  /** Receive buffers the device returned without a frame (shorter than the header). */
  rxEmpty = 0;
  private pollers: NativePoller[] = [];
  private readonly txSlots: number[] = [];
  private readonly txSlotOfHead = new Map<number, number>();
  private readonly rxSlotOfHead = new Map<number, number>();
  private readonly rxSlotSize: number;
  private readonly txSlotSize: number;
  private partial: { parts: Buffer[]; left: number } | null = null;
  private closed = false;

  constructor(private readonly s: PairSettings) {
    ({ rxKick: this.rxKick, rxCall: this.rxCall, txKick: this.txKick, txCall: this.txCall } = s.fds);
    this.rx = makeRing(s, s.bases?.rx);
    this.tx = makeRing(s, s.bases?.tx);
    this.txSlotSize = slotSize(s.maxFrame);
    for (let i = 0; i < s.queueSize; i++) this.txSlots.push(s.memory.alloc(this.txSlotSize, 64, s.bufferRegions.tx));
    this.rxSlotSize = s.mrgRxbuf ? s.rxBufferSize : slotSize(s.maxFrame);
  }

  /** After the rings are set up and enabled: watch the calls and post the receive buffers. */
  start(): void {
    this.pollers.push(new native.Poller(this.rxCall, () => this.onRxCall()));
    this.pollers.push(new native.Poller(this.txCall, () => this.onTxCall()));
    this.rx.armCall();
    this.tx.armCall();
    for (let n = 0; n < this.s.rxBuffers && this.postRxBuffer(this.s.memory.alloc(this.rxSlotSize, 64, this.s.bufferRegions.rx)); n++);
    if (this.rx.publish()) native.eventfdWrite(this.rxKick);
  }

  /** Frames that can be queued now. */
  get txSpace(): number {
    return Math.min(this.txSlots.length, Math.floor(this.tx.freeDescriptors / 3));
  }

  /** Queues one frame, after its header's first bytes (zeros without); false when the ring is full. */
  send(frame: Buffer, layout: TxLayout, header?: Buffer): boolean {
    if (this.txSpace === 0) return false;
    const slot = this.txSlots.pop()!;
    const buf = this.s.memory.view(slot, this.txSlotSize);
    buf.fill(0, 0, NET_HDR_LEN);
    header?.copy(buf, 0, 0, Math.min(header.length, NET_HDR_LEN));
    frame.copy(buf, NET_HDR_LEN);
    const total = NET_HDR_LEN + frame.length;
    const half = NET_HDR_LEN + (frame.length >> 1);
    let head: number | null;
    if (layout === 'single') {
      head = this.tx.add([{ gpa: slot, len: total, write: false }]);
    } else {
      const indirect = layout === 'indirect' && hasBit(this.s.features, VirtioFeature.RING_INDIRECT_DESC);
      head = this.tx.add(
        [
          { gpa: slot, len: NET_HDR_LEN, write: false },
          { gpa: slot + NET_HDR_LEN, len: half - NET_HDR_LEN, write: false },
          { gpa: slot + half, len: total - half, write: false },
        ],
        indirect,
      );
    }
    this.txSlotOfHead.set(head!, slot);
    return true;
  }

  /** Makes queued frames visible and kicks the device if it asked for kicks. */
  flush(): void {
    if (this.tx.publish()) native.eventfdWrite(this.txKick);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pollers) p.stop();
    this.pollers = [];
  }

  /** Adds one receive buffer at `slot`; false when the ring is full. */
  private postRxBuffer(slot: number): boolean {
    const head = this.s.mrgRxbuf
      ? this.rx.add([{ gpa: slot, len: this.rxSlotSize, write: true }])
      : this.rx.add([
          { gpa: slot, len: NET_HDR_LEN, write: true },
          { gpa: slot + NET_HDR_LEN, len: this.rxSlotSize - NET_HDR_LEN, write: true },
        ]);
    if (head === null) return false;
    this.rxSlotOfHead.set(head, slot);
    return true;
  }

  private onRxCall(): void {
    if (this.closed) return;
    let frames: Buffer[];
    try {
      frames = this.takeFrames();
    } catch (err) {
      return this.deviceError(err as Error);
    }
    if (frames.length) this.s.onFrames(frames); // the user's callback: its exceptions stay the user's
  }

  /** What the device returned on the RX ring since the last call, as frames; its buffers posted again. */
  private takeFrames(): Buffer[] {
    native.eventfdRead(this.rxCall);
    const frames: Buffer[] = [];
    do {
      // Look up every slot before reposting any: a reposted buffer may reuse a head of this batch.
      const used: { slot: number; len: number }[] = [];
      for (const { id, len } of this.rx.takeUsed()) {
        const slot = this.rxSlotOfHead.get(id);
        if (slot === undefined) continue; // a raw buffer a hostile-guest test posted
        this.rxSlotOfHead.delete(id);
        used.push({ slot, len });
      }
      for (const { slot, len } of used) {
        const frame = this.receiveBuffer(slot, len);
        if (frame) frames.push(frame);
      }
      for (const { slot } of used) this.postRxBuffer(slot);
    } while (this.rx.armCall());
    if (this.rx.publish()) native.eventfdWrite(this.rxKick);
    return frames;
  }

  private deviceError(err: Error): void {
    this.close();
    this.s.onDeviceError(err);
  }

  /** Turns one used receive buffer into a frame, or part of one (mergeable buffers). */
  private receiveBuffer(slot: number, len: number): Buffer | null {
    if (len > this.rxSlotSize) throw new VhostUserError('EPROTO', `device wrote ${len} bytes into a ${this.rxSlotSize}-byte buffer`);
    const data = this.s.memory.view(slot, len);
    if (this.partial) {
      this.partial.parts.push(Buffer.from(data));
      if (--this.partial.left > 0) return null;
      const frame = Buffer.concat(this.partial.parts);
      this.partial = null;
      return frame;
    }
    if (len < NET_HDR_LEN) {
      // The device gave the buffer back unused (it dropped a frame): Linux counts this and goes on.
      this.rxEmpty++;
      return null;
    }
    const numBuffers = data.readUInt16LE(10);
    const body = Buffer.from(data.subarray(NET_HDR_LEN));
    if (numBuffers === 0 || (!this.s.mrgRxbuf && numBuffers !== 1)) {
      throw new VhostUserError('EPROTO', `num_buffers is ${numBuffers}`);
    }
    if (numBuffers === 1) return body;
    this.partial = { parts: [body], left: numBuffers - 1 };
    return null;
  }

  private onTxCall(): void {
    if (this.closed) return;
    try {
      native.eventfdRead(this.txCall);
      do {
        for (const { id } of this.tx.takeUsed()) {
          const slot = this.txSlotOfHead.get(id);
          if (slot === undefined) continue; // a raw chain a hostile-guest test posted
          this.txSlots.push(slot);
          this.txSlotOfHead.delete(id);
        }
      } while (this.tx.armCall());
    } catch (err) {
      return this.deviceError(err as Error);
    }
    this.s.onTxSpace();
  }
}

/** The ring layout negotiated: packed with VIRTIO_F_RING_PACKED, split otherwise. */
function makeRing(s: PairSettings, base: number | undefined): DriverRing {
  const eventIdx = hasBit(s.features, VirtioFeature.RING_EVENT_IDX);
  if (!hasBit(s.features, VirtioFeature.RING_PACKED)) return new SplitDriverRing(s.memory, s.queueSize, eventIdx);
  return new PackedDriverRing(s.memory, s.queueSize, { eventIdx, inOrder: hasBit(s.features, VirtioFeature.IN_ORDER), base });
}
