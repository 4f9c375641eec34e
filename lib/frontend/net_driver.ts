/**
 * A virtio-net driver, as a guest's driver would be, but in this process: it negotiates like QEMU
 * (same messages, same order) over a VhostTransport (a vhost-user socket, or the kernel's
 * /dev/vhost-net with a tap), owns an RX and a TX ring per queue pair in shared guest memory
 * (net_queue_pair.ts), sends frames and hands back the frames the device returns. Tests and
 * benchmarks use it to drive a back-end without a VM.
 */
import { native } from '../binding';
import { VhostUserError } from '../errors';
import { VirtioNetFeature } from '../net/features';
import { FrontendDirtyLog, LOG_PAGE } from './dirty_log';
import { ProtocolFeature, Request, VirtioFeature, bit, hasBit } from '../protocol/constants';
import type { DriverRing } from './driver_ring';
import { VhostUserFrontend } from './frontend';
import type { GuestMemory } from './guest_memory';
import { MAX_FRAME, NetQueuePair, type PairFds, type TxLayout } from './net_queue_pair';
import type { PackedDriverRing } from './packed_driver_ring';
import type { SplitDriverRing } from './split_driver_ring';
import type { VhostTransport } from './transport';
import { VhostKernelTransport, type VhostNetOptions } from './vhost_kernel_transport';

export type { TxLayout } from './net_queue_pair';

export type { VhostNetOptions } from './vhost_kernel_transport';

export interface NetDriverOptions {
  /** The vhost-user back-end's socket; or, in its place, `vhostNet`. */
  socketPath?: string;
  /** The kernel's vhost-net as the back-end, moving frames between the rings and the tap `vhostNet.tap`. */
  vhostNet?: VhostNetOptions;
  /** Owned by the caller, so that one memory can serve many connections. */
  memory: GuestMemory;
  queueSize?: number;
  /** Accept these features when the device offers them (all default to true). */
  eventIdx?: boolean;
  mrgRxbuf?: boolean;
  indirect?: boolean;
  /**
   * Drive packed rings (VIRTIO_F_RING_PACKED); a device that does not offer them is refused.
   * Default false: split rings.
   */
  packed?: boolean;
  /**
   * Accept VIRTIO_F_IN_ORDER when offered. Default false (this driver never took it before). Only
   * the packed ring retires batched used entries; the split ring takes one used entry per buffer
   * and does not hand out descriptors in ring order, which our back-end's split ring does not need.
   */
  inOrder?: boolean;
  /**
   * More virtio-net features to accept when offered, e.g. the offloads (CSUM, HOST_TSO4) that frames
   * sent with a `header` use. Default none.
   */
  netFeatures?: bigint;
  /**
   * SET_VRING_BASE per queue index (packed rings: indexes and wrap counters, as GET_VRING_BASE
   * returned them), to resume where a previous connection stopped. Default: each ring's start.
   */
  vringBases?: number[];
  /** Largest frame this driver sends or receives (default 1514): sizes its buffer slots. */
  maxFrame?: number;
  /** Size of each receive buffer with MRG_RXBUF (frames larger than this span several). Default 1024. */
  rxBufferSize?: number;
  /** Receive buffers to keep posted (default: as many as the ring takes). */
  rxBuffers?: number;
  /**
   * Regions of `memory` (indices) to place the TX and RX buffers in, to put traffic in a chosen
   * memory slot; the rings stay where the allocator puts them. Default: the first that fits.
   */
  bufferRegions?: { tx?: number; rx?: number };
  /** Called once per batch of received frames (copies, safe to keep), with the pair they came on. */
  onFrames?: (frames: Buffer[], pair: number) => void;
  /**
   * Queue pairs to drive (default 1). More than 1 negotiates MQ; the device must offer that many.
   * send() spreads frames over the pairs; frames are received on all of them.
   */
  queuePairs?: number;
}

export class VirtioNetDriver {
  features = 0n;
  received = 0;
  readonly queuePairs: number;
  /** The connection to the back-end; handOver() replaces it. */
  private fe: VhostTransport;
  private readonly closeListeners: ((reason?: Error) => void)[] = [];
  /** Why the driver closed itself (a device that broke the rules), for the onClosed listeners. */
  private failure: Error | undefined;
  private pairs: NetQueuePair[] = [];
  private readonly fds: PairFds[] = [];
  private nextTxPair = 0;
  private txWaiters: (() => void)[] = [];
  private closed = false;

  private constructor(private readonly opts: NetDriverOptions) {
    this.queuePairs = opts.queuePairs ?? 1;
    if ((opts.socketPath === undefined) === (opts.vhostNet === undefined))
      throw new VhostUserError('EINVAL', 'give the driver either socketPath (vhost-user) or vhostNet (the kernel), not both or neither');
    this.fe = opts.vhostNet ? new VhostKernelTransport(opts.vhostNet, this.queuePairs) : new VhostUserFrontend(opts.socketPath as string);
  }

  /** Connects, negotiates, sets up every pair's rings and posts receive buffers. */
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

  /** Receive buffers the device returned without a frame (shorter than the header), on every pair. */
  get rxEmpty(): number {
    return this.pairs.reduce((n, p) => n + p.rxEmpty, 0);
  }

  /** Called when the connection ends (the one at that time: not an old one a handOver() left). */
  onClosed(listener: (reason?: Error) => void): void {
    this.closeListeners.push(listener);
    this.onClosedOf(this.fe, listener);
  }

  get packed(): boolean {
    return hasBit(this.features, VirtioFeature.RING_PACKED);
  }

  /** Pair 0's split rings, for tests that play a hostile guest (see SplitDriverRing's raw hooks). */
  get rings(): { rx: SplitDriverRing; tx: SplitDriverRing } {
    if (this.packed) throw new VhostUserError('EINVAL', 'the rings are packed: use packedRings');
    return this.ringsOf(0) as { rx: SplitDriverRing; tx: SplitDriverRing };
  }

  /** Pair 0's packed rings, for tests that play a hostile guest (see PackedDriverRing's raw hooks). */
  get packedRings(): { rx: PackedDriverRing; tx: PackedDriverRing } {
    if (!this.packed) throw new VhostUserError('EINVAL', 'the rings are split: use rings');
    return this.ringsOf(0) as { rx: PackedDriverRing; tx: PackedDriverRing };
  }

  /** A pair's rings. */
  ringsOf(pair: number): { rx: DriverRing; tx: DriverRing } {
    return { rx: this.pairs[pair].rx, tx: this.pairs[pair].tx };
  }

  /** The vhost-user control channel, for tests that send requests of their own in the middle of traffic. */
  get control(): VhostUserFrontend {
    if (!(this.fe instanceof VhostUserFrontend))
      throw new VhostUserError('ENOTSUP', `the driver runs over ${this.fe.kind}, which has no vhost-user control channel`);
    return this.fe;
  }

  /** The transport the driver runs over (vhost-user or the kernel's vhost-net). */
  get transport(): VhostTransport {
    return this.fe;
  }

  /** GET_VRING_BASE of a queue: stops the ring and returns where the device got to. */
  vringBase(index: number): Promise<number> {
    return this.fe.getVringBase(index);
  }

  /** Sends the memory table again, as QEMU does when guest memory changes (the device must quiesce). */
  async resendMemTable(): Promise<void> {
    await this.fe.setMemTable(this.opts.memory);
  }

  /** Kicks a pair's RX queue (after raw writes to the ring whose publish() asked for a kick). */
  kickRx(pair = 0): void {
    native.eventfdWrite(this.pairs[pair].rxKick);
  }

  /** Kicks a pair's TX queue (after raw writes to the ring). */
  kickTx(pair = 0): void {
    native.eventfdWrite(this.pairs[pair].txKick);
  }

  /** Frames that can be queued now, on every pair together. */
  get txSpace(): number {
    return this.pairs.reduce((n, p) => n + p.txSpace, 0);
  }

  /** Frames that can be queued now on one pair. */
  txSpaceOf(pair: number): number {
    return this.pairs[pair].txSpace;
  }

  /**
   * Queues one frame (14..maxFrame bytes) on `pair`, or, without one, on the next pair in turn that
   * has room; false when there is none. Call flush() after a batch. `header`: the first bytes of its
   * virtio-net header (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, little-endian),
   * for the offloads negotiated; zeros by default.
   */
  send(frame: Buffer, layout: TxLayout = 'single', pair?: number, header?: Buffer): boolean {
    if (frame.length < 14 || frame.length > (this.opts.maxFrame ?? MAX_FRAME))
      throw new VhostUserError('EINVAL', `frame of ${frame.length} bytes`);
    if (pair !== undefined) return this.pairs[pair].send(frame, layout, header);
    for (let tried = 0; tried < this.pairs.length; tried++) {
      const p = this.pairs[this.nextTxPair];
      this.nextTxPair = (this.nextTxPair + 1) % this.pairs.length;
      if (p.send(frame, layout, header)) return true;
    }
    return false;
  }

  /** Makes queued frames visible on every pair and kicks the device where it asked for kicks. */
  flush(): void {
    for (const p of this.pairs) p.flush();
  }

  /** Resolves when transmitted buffers came back (at once if none is out, or the connection closed). */
  waitTxSpace(): Promise<void> {
    if (!this.isOpen || this.pairs.every((p) => p.tx.outstanding === 0)) return Promise.resolve();
    return new Promise((resolve) => this.txWaiters.push(resolve));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pairs) p.close();
    this.fe.close();
    for (const f of this.fds.splice(0)) for (const fd of [f.rxKick, f.rxCall, f.txKick, f.txCall]) native.close(fd);
    for (const w of this.txWaiters.splice(0)) w();
  }

  /** Initialisation, in QEMU's order (vhost_user_backend_init, vhost_dev_init). Returns the offered features. */
  private async init(): Promise<bigint> {
    const fe = this.fe;
    const { features: offered, queuePairs: queueNum } = await fe.probe();
    if (!hasBit(offered, VirtioFeature.VERSION_1)) throw new VhostUserError('ENOTSUP', 'the device does not offer VERSION_1');
    if (this.queuePairs > 1 && (queueNum < this.queuePairs || !hasBit(offered, VirtioNetFeature.MQ))) {
      throw new VhostUserError('ENOTSUP', `the device offers ${queueNum} queue pair(s), the driver wants ${this.queuePairs}`);
    }
    await fe.setOwner();
    await fe.getFeatures();
    for (let p = 0; p < this.queuePairs; p++) {
      // A handOver() keeps the eventfds: the pairs watch them.
      if (!this.fds[p])
        this.fds.push({ rxKick: native.eventfd(), rxCall: native.eventfd(), txKick: native.eventfd(), txCall: native.eventfd() });
      const f = this.fds[p];
      await fe.setVringCall(2 * p, f.rxCall);
      await fe.setVringCall(2 * p + 1, f.txCall);
    }
    return offered;
  }

  private async negotiate(): Promise<void> {
    const fe = this.fe;
    const mem = this.opts.memory;
    const queueSize = this.opts.queueSize ?? 256;
    const offered = await this.init();

    // Start (vhost_dev_start): features, memory, then each ring, then enable.
    let wanted = bit(VirtioFeature.VERSION_1) | bit(VirtioFeature.PROTOCOL_FEATURES);
    if (this.opts.eventIdx ?? true) wanted |= bit(VirtioFeature.RING_EVENT_IDX);
    if (this.opts.mrgRxbuf ?? true) wanted |= bit(VirtioNetFeature.MRG_RXBUF);
    if (this.opts.indirect ?? true) wanted |= bit(VirtioFeature.RING_INDIRECT_DESC);
    if (this.opts.inOrder ?? false) wanted |= bit(VirtioFeature.IN_ORDER);
    if (this.opts.packed) {
      if (!hasBit(offered, VirtioFeature.RING_PACKED))
        throw new VhostUserError('ENOTSUP', 'the device does not offer packed rings (VIRTIO_F_RING_PACKED): drop the packed option');
      wanted |= bit(VirtioFeature.RING_PACKED);
    }
    if (this.queuePairs > 1) wanted |= bit(VirtioNetFeature.MQ);
    wanted |= this.opts.netFeatures ?? 0n;
    this.features = offered & wanted;
    await fe.setFeatures(this.features);
    await fe.setMemTable(mem);

    for (let p = 0; p < this.queuePairs; p++) {
      const pair = new NetQueuePair({
        fds: this.fds[p],
        memory: mem,
        queueSize,
        features: this.features,
        bases: { rx: this.opts.vringBases?.[2 * p], tx: this.opts.vringBases?.[2 * p + 1] },
        maxFrame: this.opts.maxFrame ?? MAX_FRAME,
        mrgRxbuf: this.mrgRxbuf,
        rxBufferSize: this.opts.rxBufferSize ?? 1024,
        rxBuffers: this.opts.rxBuffers ?? queueSize,
        bufferRegions: this.opts.bufferRegions ?? {},
        onFrames: (frames) => {
          this.received += frames.length;
          this.opts.onFrames?.(frames, p);
        },
        onTxSpace: () => {
          for (const w of this.txWaiters.splice(0)) w();
        },
        onDeviceError: (err) => this.fail(err),
      });
      this.pairs.push(pair);
      await this.setUpRings(p, pair, queueSize);
    }
    await this.enableAll();
    for (const pair of this.pairs) pair.start();
  }

  /** Every ring enabled (the kernel: given its net back-end), then DRIVER_OK, as QEMU ends vhost_dev_start. */
  private async enableAll(): Promise<void> {
    for (let index = 0; index < 2 * this.queuePairs; index++) await this.fe.enableRing(index);
    await this.fe.driverOk();
  }

  /**
   * Moves the device to the back-end at `socketPath`, as a migration moves a guest's NIC: every ring
   * stopped on the current back-end where it stands (GET_VRING_BASE), then the new one set up on the
   * same memory, rings and eventfds, each ring resuming there (SET_VRING_BASE). Frames queued meanwhile
   * are taken by the new back-end. Send nothing while it runs. `deviceState`: the back-end's own state
   * goes too (DEVICE_STATE), saved once the rings stopped and loaded before the new rings start.
   */
  async handOver(socketPath: string, opts: { deviceState?: boolean } = {}): Promise<void> {
    const bases: number[] = [];
    for (let index = 0; index < 2 * this.queuePairs; index++) bases.push(await this.vringBase(index));
    const state = opts.deviceState ? await this.stateOf(this.control) : null;
    const old = this.fe;
    const next = new VhostUserFrontend(socketPath);
    this.fe = next;
    old.close();
    for (const listener of this.closeListeners) this.onClosedOf(this.fe, listener);
    await this.init();
    await next.setFeatures(this.features);
    await next.setMemTable(this.opts.memory);
    if (state) {
      this.needDeviceState(next);
      await next.loadState(state);
    }
    for (const [p, pair] of this.pairs.entries()) await this.setUpRings(p, pair, this.opts.queueSize ?? 256, bases);
    await this.enableAll();
  }

  private stateOf(fe: VhostUserFrontend): Promise<Buffer> {
    this.needDeviceState(fe);
    return fe.saveState();
  }

  private needDeviceState(fe: VhostUserFrontend): void {
    if (!hasBit(fe.protocolFeatures, ProtocolFeature.DEVICE_STATE))
      throw new VhostUserError('ENOTSUP', 'the back-end does not offer DEVICE_STATE: hand over without deviceState');
  }

  private onClosedOf(fe: VhostTransport, listener: (reason?: Error) => void): void {
    fe.onClosed((reason) => {
      if (fe === this.fe) listener(reason ?? this.failure);
    });
  }

  /** The device broke the rules on a ring: close, and tell the onClosed listeners why. */
  private fail(err: Error): void {
    if (this.closed) return;
    this.failure = err;
    this.close();
  }

  /** `bases`: GET_VRING_BASE's per queue index (a handOver), else each ring's own starting point. */
  private async setUpRings(p: number, pair: NetQueuePair, queueSize: number, bases?: number[]): Promise<void> {
    for (const [index, ring, kick, call] of [
      [2 * p, pair.rx, pair.rxKick, pair.rxCall],
      [2 * p + 1, pair.tx, pair.txKick, pair.txCall],
    ] as const) {
      await this.fe.setVringNum(index, queueSize);
      await this.fe.setVringBase(index, bases?.[index] ?? ring.base);
      await this.fe.setVringAddr(index, ring, this.opts.memory, false);
      await this.fe.setVringKick(index, kick);
      await this.fe.setVringCall(index, call);
    }
  }

  /**
   * Dirty-page logging as QEMU starts it when a migration begins (vhost_migration_log): `log` (a new
   * FrontendDirtyLog over the memory table, or one given) sent with SET_LOG_BASE, VHOST_F_LOG_ALL
   * added in SET_FEATURES, every ring's address again with VHOST_VRING_F_LOG. Returns the log.
   */
  async startLogging(log = FrontendDirtyLog.over(this.opts.memory)): Promise<FrontendDirtyLog> {
    const fe = this.control;
    if (!hasBit(fe.protocolFeatures, ProtocolFeature.LOG_SHMFD)) {
      throw new VhostUserError('ENOTSUP', 'the device does not offer LOG_SHMFD: it cannot log for a migration');
    }
    await fe.request({ request: Request.SET_LOG_BASE, mmapSize: BigInt(log.size), mmapOffset: 0n, fd: log.fd });
    await this.setLogAll(true);
    return log;
  }

  /** Logging off, as QEMU ends a migration that did not happen: LOG_ALL cleared, ring addresses without the flag. */
  async stopLogging(): Promise<void> {
    await this.setLogAll(false);
  }

  private async setLogAll(on: boolean): Promise<void> {
    const logAll = bit(VirtioFeature.LOG_ALL);
    this.features = on ? this.features | logAll : this.features & ~logAll;
    const fe = this.control;
    await fe.setFeatures(this.features, true);
    for (const [p, pair] of this.pairs.entries()) {
      await fe.setVringAddr(2 * p, pair.rx, this.opts.memory, on);
      await fe.setVringAddr(2 * p + 1, pair.tx, this.opts.memory, on);
    }
  }

  /** The guest-physical pages of every ring's part the device writes (used rings; packed: descriptors). */
  ringPagesWritten(): number[] {
    const pages = new Set<number>();
    const queueSize = this.opts.queueSize ?? 256;
    for (const pair of this.pairs)
      for (const ring of [pair.rx, pair.tx]) {
        const [gpa, len] = this.packed ? [ring.descGpa, 16 * queueSize] : [ring.usedGpa, 6 + 8 * queueSize];
        for (let p = Math.floor(gpa / LOG_PAGE); p <= Math.floor((gpa + len - 1) / LOG_PAGE); p++) pages.add(p);
      }
    return [...pages].sort((a, b) => a - b);
  }
}
