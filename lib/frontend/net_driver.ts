/**
 * A virtio-net driver over vhost-user, as a guest's driver would be, but in this process: it
 * negotiates like QEMU (same messages, same order), owns an RX and a TX ring in shared guest memory,
 * sends frames and hands back the frames the device returns. Tests and benchmarks use it to drive a
 * back-end without a VM.
 */
import { native, type NativePoller } from '../binding';
import { VhostUserError } from '../errors';
import { VirtioNetFeature } from '../net/features';
import { MEMORY_BASELINE_NREGIONS, ProtocolFeature, Request, VirtioFeature, bit, hasBit } from '../protocol/constants';
import { DriverRing } from './driver_ring';
import { VhostUserFrontend } from './frontend';
import type { GuestMemory } from './guest_memory';

export interface NetDriverOptions {
  socketPath: string;
  /** Owned by the caller, so that one memory can serve many connections. */
  memory: GuestMemory;
  queueSize?: number;
  /** Accept these features when the device offers them (all default to true). */
  eventIdx?: boolean;
  mrgRxbuf?: boolean;
  indirect?: boolean;
  /** Size of each receive buffer with MRG_RXBUF (frames larger than this span several). Default 1024. */
  rxBufferSize?: number;
  /** Receive buffers to keep posted (default: as many as the ring takes). */
  rxBuffers?: number;
  /**
   * Regions of `memory` (indices) to place the TX and RX buffers in, to put traffic in a chosen
   * memory slot; the rings stay where the allocator puts them. Default: the first that fits.
   */
  bufferRegions?: { tx?: number; rx?: number };
  /** Called once per batch of received frames (copies, safe to keep). */
  onFrames?: (frames: Buffer[]) => void;
}

const NET_HDR_LEN = 12; // VERSION_1 is always negotiated by this driver
const MAX_FRAME = 1514;
const TX_SLOT = 2048;
const RX_SLOT_NO_MRG = 2048;
/** The protocol features this front-end uses (those QEMU uses for a net device, minus logging). */
const WANTED_PROTOCOL =
  bit(ProtocolFeature.MQ) |
  bit(ProtocolFeature.REPLY_ACK) |
  bit(ProtocolFeature.RARP) |
  bit(ProtocolFeature.MTU) |
  bit(ProtocolFeature.CONFIGURE_MEM_SLOTS) |
  bit(ProtocolFeature.STATUS);
const STATUS_DRIVER_OK = 0x1 | 0x2 | 0x8 | 0x4; // ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK

/** Slots of the driver's eventfds. */
const RX_KICK = 0;
const RX_CALL = 1;
const TX_KICK = 2;
const TX_CALL = 3;

/** How a frame is laid out in descriptors, to exercise the device's chain walking. */
export type TxLayout = 'single' | 'split-header' | 'indirect';

export class VirtioNetDriver {
  features = 0n;
  received = 0;
  /** Receive buffers the device returned without a frame (shorter than the header). */
  rxEmpty = 0;
  private readonly fe: VhostUserFrontend;
  private rx!: DriverRing;
  private tx!: DriverRing;
  private readonly fds: number[] = []; // indexed by RX_KICK, RX_CALL, TX_KICK, TX_CALL
  private pollers: NativePoller[] = [];
  private txSlots: number[] = [];
  private readonly txSlotOfHead = new Map<number, number>();
  private readonly rxSlotOfHead = new Map<number, number>();
  private rxSlotSize = 0;
  private partial: { parts: Buffer[]; left: number } | null = null;
  private txWaiters: (() => void)[] = [];
  private closed = false;

  private constructor(private readonly opts: NetDriverOptions) {
    this.fe = new VhostUserFrontend(opts.socketPath);
  }

  /** Connects, negotiates, sets up both rings and posts receive buffers. */
  static async start(opts: NetDriverOptions): Promise<VirtioNetDriver> {
    const d = new VirtioNetDriver(opts);
    try {
      await d.negotiate();
    } catch (err) {
      d.close();
      throw err;
    }
    return d;
  }

  get mrgRxbuf(): boolean {
    return hasBit(this.features, VirtioNetFeature.MRG_RXBUF);
  }

  get isOpen(): boolean {
    return !this.closed && this.fe.isOpen;
  }

  onClosed(listener: (reason?: Error) => void): void {
    this.fe.onClosed(listener);
  }

  /** The rings themselves, for tests that play a hostile guest (see DriverRing's raw hooks). */
  get rings(): { rx: DriverRing; tx: DriverRing } {
    return { rx: this.rx, tx: this.tx };
  }

  /** The control channel, for tests that send requests of their own in the middle of traffic. */
  get control(): VhostUserFrontend {
    return this.fe;
  }

  /** Sends the memory table again, as QEMU does when guest memory changes (the device must quiesce). */
  async resendMemTable(): Promise<void> {
    await this.sendMemTable();
  }

  /** Kicks the device's RX queue (after raw writes to the ring whose publish() asked for a kick). */
  kickRx(): void {
    native.eventfdWrite(this.fds[RX_KICK]);
  }

  /** Kicks the device's TX queue (after raw writes to the ring). */
  kickTx(): void {
    native.eventfdWrite(this.fds[TX_KICK]);
  }

  /** Frames that can be queued now. */
  get txSpace(): number {
    return Math.min(this.txSlots.length, Math.floor(this.tx.freeDescriptors / 3));
  }

  /** Queues one frame (14..1514 bytes); false when the ring is full. Call flush() after a batch. */
  send(frame: Buffer, layout: TxLayout = 'single'): boolean {
    if (frame.length < 14 || frame.length > MAX_FRAME) throw new VhostUserError('EINVAL', `frame of ${frame.length} bytes`);
    if (this.txSpace === 0) return false;
    const slot = this.txSlots.pop()!;
    const buf = this.opts.memory.view(slot, TX_SLOT);
    buf.fill(0, 0, NET_HDR_LEN);
    frame.copy(buf, NET_HDR_LEN);
    const total = NET_HDR_LEN + frame.length;
    const half = NET_HDR_LEN + (frame.length >> 1);
    let head: number | null;
    if (layout === 'single') {
      head = this.tx.add([{ gpa: slot, len: total, write: false }]);
    } else {
      const indirect = layout === 'indirect' && hasBit(this.features, VirtioFeature.RING_INDIRECT_DESC);
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
    if (this.tx.publish()) native.eventfdWrite(this.fds[TX_KICK]);
  }

  /** Resolves when transmitted buffers came back (at once if none is out, or the connection closed). */
  waitTxSpace(): Promise<void> {
    if (!this.isOpen || this.tx.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => this.txWaiters.push(resolve));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pollers) p.stop();
    this.pollers = [];
    this.fe.close();
    for (const fd of this.fds) native.close(fd);
    this.fds.length = 0;
    for (const w of this.txWaiters.splice(0)) w();
  }

  private async negotiate(): Promise<void> {
    const fe = this.fe;
    const mem = this.opts.memory;
    const queueSize = this.opts.queueSize ?? 256;
    for (let i = 0; i <= TX_CALL; i++) this.fds.push(native.eventfd());
    const [rxKick, rxCall, txKick, txCall] = [RX_KICK, RX_CALL, TX_KICK, TX_CALL].map((i) => this.fds[i]);

    // Initialisation, in QEMU's order (vhost_user_backend_init, vhost_dev_init).
    const offered = await fe.requestU64({ request: Request.GET_FEATURES });
    if (!hasBit(offered, VirtioFeature.VERSION_1)) throw new VhostUserError('ENOTSUP', 'the device does not offer VERSION_1');
    if (hasBit(offered, VirtioFeature.PROTOCOL_FEATURES)) {
      const pf = await fe.requestU64({ request: Request.GET_PROTOCOL_FEATURES });
      const agreed = pf & WANTED_PROTOCOL;
      await fe.request({ request: Request.SET_PROTOCOL_FEATURES, value: agreed });
      fe.protocolFeatures = agreed;
      if (hasBit(agreed, ProtocolFeature.MQ)) await fe.requestU64({ request: Request.GET_QUEUE_NUM });
      if (hasBit(agreed, ProtocolFeature.CONFIGURE_MEM_SLOTS)) await fe.requestU64({ request: Request.GET_MAX_MEM_SLOTS });
    }
    await fe.request({ request: Request.SET_OWNER });
    await fe.requestU64({ request: Request.GET_FEATURES });
    await fe.request({ request: Request.SET_VRING_CALL, index: 0, fd: rxCall });
    await fe.request({ request: Request.SET_VRING_CALL, index: 1, fd: txCall });

    // Start (vhost_dev_start): features, memory, then each ring, then enable.
    let wanted = bit(VirtioFeature.VERSION_1) | bit(VirtioFeature.PROTOCOL_FEATURES);
    if (this.opts.eventIdx ?? true) wanted |= bit(VirtioFeature.RING_EVENT_IDX);
    if (this.opts.mrgRxbuf ?? true) wanted |= bit(VirtioNetFeature.MRG_RXBUF);
    if (this.opts.indirect ?? true) wanted |= bit(VirtioFeature.RING_INDIRECT_DESC);
    this.features = offered & wanted;
    await fe.request({ request: Request.SET_FEATURES, value: this.features });
    await this.sendMemTable();

    const eventIdx = hasBit(this.features, VirtioFeature.RING_EVENT_IDX);
    this.rx = new DriverRing(mem, queueSize, eventIdx);
    this.tx = new DriverRing(mem, queueSize, eventIdx);
    const { tx: txRegion, rx: rxRegion } = this.opts.bufferRegions ?? {};
    for (let i = 0; i < queueSize; i++) this.txSlots.push(mem.alloc(TX_SLOT, 64, txRegion));
    for (const [index, ring, kick, call] of [
      [0, this.rx, rxKick, rxCall],
      [1, this.tx, txKick, txCall],
    ] as const) {
      await fe.request({ request: Request.SET_VRING_NUM, index, num: queueSize });
      await fe.request({ request: Request.SET_VRING_BASE, index, num: 0 });
      await fe.request({
        request: Request.SET_VRING_ADDR,
        index,
        flags: 0,
        descUserAddr: mem.userAddr(ring.descGpa),
        usedUserAddr: mem.userAddr(ring.usedGpa),
        availUserAddr: mem.userAddr(ring.availGpa),
        logGuestAddr: 0n,
      });
      await fe.request({ request: Request.SET_VRING_KICK, index, fd: kick });
      await fe.request({ request: Request.SET_VRING_CALL, index, fd: call });
    }
    if (hasBit(this.features, VirtioFeature.PROTOCOL_FEATURES)) {
      for (const index of [0, 1]) await fe.request({ request: Request.SET_VRING_ENABLE, index, num: 1 }, { needReply: true });
    }
    if (hasBit(fe.protocolFeatures, ProtocolFeature.STATUS)) {
      await fe.request({ request: Request.SET_STATUS, value: BigInt(STATUS_DRIVER_OK) }, { needReply: true });
    }

    this.pollers.push(new native.Poller(rxCall, () => this.onRxCall()));
    this.pollers.push(new native.Poller(txCall, () => this.onTxCall()));
    this.rx.armCall();
    this.tx.armCall();
    this.rxSlotSize = this.mrgRxbuf ? (this.opts.rxBufferSize ?? 1024) : RX_SLOT_NO_MRG;
    for (let n = 0; n < (this.opts.rxBuffers ?? queueSize) && this.postRxBuffer(mem.alloc(this.rxSlotSize, 64, rxRegion)); n++);
    if (this.rx.publish()) native.eventfdWrite(rxKick);
  }

  /**
   * The memory table: SET_MEM_TABLE takes at most MEMORY_BASELINE_NREGIONS regions; the rest are
   * added one by one with ADD_MEM_REG (memory slots, as QEMU's hotplugged DIMMs), which needs
   * CONFIGURE_MEM_SLOTS.
   */
  private async sendMemTable(): Promise<void> {
    const table = this.opts.memory.table();
    await this.fe.request({ request: Request.SET_MEM_TABLE, regions: table.slice(0, MEMORY_BASELINE_NREGIONS) }, { needReply: true });
    const rest = table.slice(MEMORY_BASELINE_NREGIONS);
    if (rest.length && !hasBit(this.fe.protocolFeatures, ProtocolFeature.CONFIGURE_MEM_SLOTS)) {
      throw new VhostUserError('ENOTSUP', `${table.length} memory regions need CONFIGURE_MEM_SLOTS, which was not negotiated`);
    }
    for (const { fd, ...region } of rest) await this.fe.request({ request: Request.ADD_MEM_REG, region, fd }, { needReply: true });
  }

  /** Adds one receive buffer at `slot`; false when the ring is full. */
  private postRxBuffer(slot: number): boolean {
    const head = this.mrgRxbuf
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
    native.eventfdRead(this.fds[RX_CALL]);
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
    if (this.rx.publish()) native.eventfdWrite(this.fds[RX_KICK]);
    this.received += frames.length;
    if (frames.length) this.opts.onFrames?.(frames);
  }

  /** Turns one used receive buffer into a frame, or part of one (mergeable buffers). */
  private receiveBuffer(slot: number, len: number): Buffer | null {
    if (len > this.rxSlotSize) throw new VhostUserError('EPROTO', `device wrote ${len} bytes into a ${this.rxSlotSize}-byte buffer`);
    const data = this.opts.memory.view(slot, len);
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
    if (numBuffers === 0 || (!this.mrgRxbuf && numBuffers !== 1)) {
      throw new VhostUserError('EPROTO', `num_buffers is ${numBuffers}`);
    }
    if (numBuffers === 1) return body;
    this.partial = { parts: [body], left: numBuffers - 1 };
    return null;
  }

  private onTxCall(): void {
    if (this.closed) return;
    native.eventfdRead(this.fds[TX_CALL]);
    do {
      for (const { id } of this.tx.takeUsed()) {
        const slot = this.txSlotOfHead.get(id);
        if (slot === undefined) continue; // a raw chain a hostile-guest test posted
        this.txSlots.push(slot);
        this.txSlotOfHead.delete(id);
      }
    } while (this.tx.armCall());
    for (const w of this.txWaiters.splice(0)) w();
  }
}
