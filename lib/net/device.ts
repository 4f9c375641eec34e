/**
 * A virtio-net device: its configuration, the features it offers (decided here, once, from what its
 * port and the native data path honour) and the native half that moves the packets.
 */
import { native, type NativeNetDevice } from '../binding';
import { VhostUserError } from '../errors';
import type { MemoryRegion, MemoryRegionWithFd } from '../protocol/codec';
import { ProtocolFeature, VirtioFeature, VirtioNetFeature, bit } from '../protocol/constants';
import type { VhostUserDevice, VringAddresses } from '../protocol/device';
import { featureNames } from '../protocol/features';
import { readAllStats, type QueueStats } from './stats';

export type PortKind = 'loopback' | 'tap' | 'sink' | 'source';
export const PORT_KINDS: readonly PortKind[] = ['loopback', 'tap', 'sink', 'source'];
/** Frame sizes the source port generates (Ethernet without FCS). */
export const MIN_SOURCE_FRAME = 60;
export const MAX_SOURCE_FRAME = 65535;
export const DEFAULT_SOURCE_FRAME = 64;
const ETHERNET_HEADER = 14;

export interface NetDeviceOptions {
  /** Queue pairs the device reports (GET_QUEUE_NUM). Default 1. */
  queuePairs?: number;
  /** Where frames go. Default 'loopback' ('tap' when `tap` is given). */
  port?: PortKind;
  /** Tap interface for the tap port: attached to, or created if absent (needs CAP_NET_ADMIN). */
  tap?: string;
  /** Size of the frames the source port generates, bytes without FCS. Default DEFAULT_SOURCE_FRAME. */
  frameSize?: number;
  /** If set, the device offers VIRTIO_NET_F_MTU and accepts NET_SET_MTU up to this value. */
  mtu?: number;
  /**
   * Busy-poll budget of the device's worker thread, in microseconds: while traffic flows it polls
   * the rings (guest kicks suppressed) and sleeps once this long passed without work. 0: purely
   * event-driven (a kick wakes it for every burst). Default DEFAULT_POLL_US.
   */
  pollUs?: number;
}

export const DEFAULT_POLL_US = 50;
export const MAX_POLL_US = 1_000_000;

export const MAX_QUEUE_PAIRS = 16;

/**
 * The split-ring and virtio-net features the native data path implements for every port. IN_ORDER
 * holds because every port returns buffers in the order the guest made them available.
 */
const RING_FEATURES =
  bit(VirtioFeature.VERSION_1) |
  bit(VirtioFeature.ANY_LAYOUT) |
  bit(VirtioFeature.RING_INDIRECT_DESC) |
  bit(VirtioFeature.RING_EVENT_IDX) |
  bit(VirtioFeature.IN_ORDER) |
  bit(VirtioFeature.PROTOCOL_FEATURES) |
  bit(VirtioNetFeature.MRG_RXBUF);

/**
 * Offloads the tap port passes through to the host kernel (the virtio-net header goes to the tap
 * unchanged): checksum and TCP segmentation both ways. The loopback port offers none: it would
 * hand a guest's partial checksums back to the same guest.
 */
const TAP_OFFLOADS =
  bit(VirtioNetFeature.CSUM) |
  bit(VirtioNetFeature.GUEST_CSUM) |
  bit(VirtioNetFeature.HOST_TSO4) |
  bit(VirtioNetFeature.HOST_TSO6) |
  bit(VirtioNetFeature.HOST_ECN) |
  bit(VirtioNetFeature.GUEST_TSO4) |
  bit(VirtioNetFeature.GUEST_TSO6) |
  bit(VirtioNetFeature.GUEST_ECN);

/**
 * Protocol features offered. Nothing is offered that the device does not honour: no LOG_SHMFD until
 * dirty-page logging exists, no BACKEND_REQ, no CONFIG (QEMU keeps the config space itself).
 */
const PROTOCOL_FEATURES =
  bit(ProtocolFeature.MQ) |
  bit(ProtocolFeature.REPLY_ACK) |
  bit(ProtocolFeature.MTU) |
  bit(ProtocolFeature.CONFIGURE_MEM_SLOTS) |
  bit(ProtocolFeature.STATUS) |
  bit(ProtocolFeature.RARP);

export class NetDevice implements VhostUserDevice {
  readonly queuePairs: number;
  readonly port: PortKind;
  readonly tap: string | undefined;
  readonly maxMtu: number | undefined;
  readonly features: bigint;
  readonly protocolFeatures: bigint = PROTOCOL_FEATURES;
  readonly native: NativeNetDevice;
  /** Set by NET_SET_MTU. */
  mtu: number | undefined;

  constructor(opts: NetDeviceOptions = {}) {
    this.queuePairs = opts.queuePairs ?? 1;
    this.port = opts.port ?? (opts.tap !== undefined ? 'tap' : 'loopback');
    this.tap = opts.tap;
    this.maxMtu = opts.mtu;
    if (!Number.isInteger(this.queuePairs) || this.queuePairs < 1 || this.queuePairs > MAX_QUEUE_PAIRS) {
      throw new VhostUserError('EINVAL', `queue pairs must be an integer in 1..${MAX_QUEUE_PAIRS}, got ${opts.queuePairs}`);
    }
    if (!PORT_KINDS.includes(this.port)) {
      throw new VhostUserError('EINVAL', `unknown port '${String(this.port)}' (available: ${PORT_KINDS.join(', ')})`);
    }
    if (this.maxMtu !== undefined && (!Number.isInteger(this.maxMtu) || this.maxMtu < 68 || this.maxMtu > 65535)) {
      throw new VhostUserError('EINVAL', `MTU must be an integer in 68..65535, got ${this.maxMtu}`);
    }
    if (this.port === 'tap') {
      if (!this.tap || this.tap.length > 15 || !/^[A-Za-z0-9_.-]+$/.test(this.tap)) {
        throw new VhostUserError('EINVAL', `the tap port needs an interface name of 1..15 characters [A-Za-z0-9_.-] (--tap NAME), got '${this.tap ?? ''}'`);
      }
      if (this.queuePairs !== 1) throw new VhostUserError('EINVAL', 'the tap port serves one queue pair for now (--queues 1)');
    } else if (this.tap !== undefined) {
      throw new VhostUserError('EINVAL', `--tap needs the tap port, not '${this.port}'`);
    }
    if (opts.frameSize !== undefined) {
      if (this.port !== 'source') throw new VhostUserError('EINVAL', `--frame-size needs the source port, not '${this.port}'`);
      if (!Number.isInteger(opts.frameSize) || opts.frameSize < MIN_SOURCE_FRAME || opts.frameSize > MAX_SOURCE_FRAME) {
        throw new VhostUserError('EINVAL', `frame size must be an integer in ${MIN_SOURCE_FRAME}..${MAX_SOURCE_FRAME} bytes, got ${opts.frameSize}`);
      }
      if (this.maxMtu !== undefined && opts.frameSize > this.maxMtu + ETHERNET_HEADER) {
        throw new VhostUserError(
          'EINVAL',
          `frame size ${opts.frameSize} is larger than the MTU the device offers (${this.maxMtu}) plus the ${ETHERNET_HEADER}-byte Ethernet header: lower --frame-size or raise --mtu`,
        );
      }
    }
    let features = RING_FEATURES;
    if (this.port === 'tap') features |= TAP_OFFLOADS;
    if (this.maxMtu !== undefined) features |= bit(VirtioNetFeature.MTU);
    if (this.queuePairs > 1) features |= bit(VirtioNetFeature.MQ);
    this.features = features;
    const pollUs = opts.pollUs ?? DEFAULT_POLL_US;
    if (!Number.isInteger(pollUs) || pollUs < 0 || pollUs > MAX_POLL_US) {
      throw new VhostUserError('EINVAL', `poll budget must be an integer in 0..${MAX_POLL_US} µs, got ${opts.pollUs}`);
    }
    this.native = new native.NetDevice(this.queuePairs, this.port, { tap: this.tap, frameSize: opts.frameSize });
    this.native.setPollMicros(pollUs);
  }

  get queueCount(): number {
    return 2 * this.queuePairs;
  }

  stats(): QueueStats[] {
    return readAllStats(this.native.stats);
  }

  // VhostUserDevice: what the protocol asks of the device, handed to the native half.

  /** GET_QUEUE_NUM counts queue pairs for virtio-net (QEMU compares it with -netdev vhost-user,queues=N). */
  get queueNum(): number {
    return this.queuePairs;
  }

  setFeatures(acked: bigint): void {
    this.native.setFeatures(acked);
  }

  describeFeatures(mask: bigint): string[] {
    return [...featureNames(mask, VirtioFeature), ...featureNames(mask, VirtioNetFeature)];
  }

  setMemTable(regions: MemoryRegionWithFd[]): void {
    this.native.setMemTable(regions);
  }

  addMemRegion(region: MemoryRegionWithFd): void {
    this.native.addMemReg(region);
  }

  removeMemRegion(region: MemoryRegion): void {
    this.native.remMemReg(region);
  }

  setVringNum(queue: number, num: number): void {
    this.native.setVringNum(queue, num);
  }

  setVringAddr(queue: number, addr: VringAddresses): void {
    this.native.setVringAddr(queue, addr.desc, addr.used, addr.avail);
  }

  setVringBase(queue: number, base: number): void {
    this.native.setVringBase(queue, base);
  }

  getVringBase(queue: number): number {
    return this.native.getVringBase(queue);
  }

  setVringKick(queue: number, fd: number): void {
    this.native.setVringKick(queue, fd);
  }

  setVringCall(queue: number, fd: number): void {
    this.native.setVringCall(queue, fd);
  }

  setVringErr(queue: number, fd: number): void {
    this.native.setVringErr(queue, fd);
  }

  setVringEnable(queue: number, on: boolean): void {
    this.native.setVringEnable(queue, on);
  }

  reset(): void {
    this.native.reset();
  }

  /** NET_SET_MTU: up to the MTU the device offers, or any valid MTU when it offers none. */
  setMtu(mtu: bigint): void {
    const limit = BigInt(this.maxMtu ?? 65535);
    if (mtu < 68n || mtu > limit) throw new VhostUserError('EINVAL', `NET_SET_MTU: MTU ${mtu} outside 68..${limit} (see --mtu)`);
    this.mtu = Number(mtu);
  }
}
