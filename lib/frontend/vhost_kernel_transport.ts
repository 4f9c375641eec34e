/**
 * The kernel's vhost-net as a VhostTransport: one /dev/vhost-net per queue pair (as DPDK's
 * virtio-user vhost-kernel back-end opens them), each moving one pair's frames between our rings
 * and one queue of a multiqueue tap opened with a virtio-net header. The kernel reads our guest
 * memory at this process's own addresses (GuestMemory.hostTable/hostAddr).
 *
 * Features: the kernel offers the ring and header features (VERSION_1, EVENT_IDX, INDIRECT_DESC,
 * MRG_RXBUF...); the offloads are the tap's to do, so they are offered as the tap port offers them
 * and passed to the tap (TUNSETOFFLOAD), never to the kernel, as QEMU does with a vhost-net NIC.
 */
import { native } from '../binding';
import { VhostUserError } from '../errors';
import { VirtioNetFeature } from '../net/features';
import { TAP_OFFLOADS, tapNameProblem } from '../net/ports/tap';
import { VirtioFeature, bit } from '../protocol/constants';
import type { GuestMemory } from './guest_memory';
import type { DeviceOffer, RingAddresses, VhostTransport } from './transport';

export const VHOST_NET_DEVICE = '/dev/vhost-net';

export interface VhostNetOptions {
  /** The tap interface: created if absent (needs CAP_NET_ADMIN), else attached (multi_queue, vnet_hdr). */
  tap: string;
  /** The vhost-net character device (default /dev/vhost-net). */
  device?: string;
  /** VHOST_SET_VRING_BUSYLOOP_TIMEOUT of every ring, in microseconds: the kernel polls this long before sleeping. */
  busyloopUs?: number;
}

/** Bits a front-end may not hand to the kernel as a device feature: they are the tap's (offloads) or ours (MQ). */
const NOT_THE_KERNELS = TAP_OFFLOADS | bit(VirtioNetFeature.MQ);
/** Never taken from the kernel: ACCESS_PLATFORM needs an IOTLB this front-end does not run. */
const REFUSED = bit(VirtioFeature.ACCESS_PLATFORM);

/** The one-line error for a failed open of the vhost device, naming the fix. */
function openError(device: string, err: VhostUserError): VhostUserError {
  if (err.code === 'ENOENT')
    return new VhostUserError('ENOENT', `no ${device}: the kernel's vhost-net is not loaded (run \`modprobe vhost_net\` as root)`);
  if (err.code === 'EACCES' || err.code === 'EPERM')
    return new VhostUserError(err.code, `permission denied opening ${device}: run as root, or give this user read-write access to it`);
  return new VhostUserError(err.code, `opening ${device}: ${err.message}`);
}

export class VhostKernelTransport implements VhostTransport {
  readonly kind = 'vhost-net';
  /** What the kernel offered (GET_FEATURES) and what it was given (SET_FEATURES), for logs. */
  kernelOffered = 0n;
  kernelAcked = 0n;
  private readonly devices: number[] = [];
  private readonly taps: number[] = [];
  private readonly listeners: ((reason?: Error) => void)[] = [];
  private open = true;

  /** Opens one vhost-net device and one tap queue per pair; nothing stays open when one fails. */
  constructor(
    private readonly opts: VhostNetOptions,
    queuePairs: number,
  ) {
    const device = opts.device ?? VHOST_NET_DEVICE;
    const problem = tapNameProblem(opts.tap);
    if (problem) throw new VhostUserError('EINVAL', `vhostNet.tap ${JSON.stringify(opts.tap)}: ${problem}`);
    const busyloop = opts.busyloopUs;
    if (busyloop !== undefined && !(Number.isInteger(busyloop) && busyloop >= 0 && busyloop <= 1_000_000))
      throw new VhostUserError('EINVAL', `vhostNet.busyloopUs must be an integer of 0..1000000 microseconds, got ${busyloop}`);
    try {
      for (let p = 0; p < queuePairs; p++) {
        try {
          this.devices.push(native.vhostKernel.open(device));
        } catch (err) {
          throw err instanceof VhostUserError ? openError(device, err) : err;
        }
        this.taps.push(native.vhostKernel.tapOpenQueue(opts.tap, 12));
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  get isOpen(): boolean {
    return this.open;
  }

  onClosed(listener: (reason?: Error) => void): void {
    this.listeners.push(listener);
  }

  async probe(): Promise<DeviceOffer> {
    return { features: await this.getFeatures(), queuePairs: this.devices.length };
  }

  async setOwner(): Promise<void> {
    for (const fd of this.devices) this.ioctl('VHOST_SET_OWNER', () => native.vhostKernel.setOwner(fd));
  }

  /** The kernel's features (less ACCESS_PLATFORM), the tap's offloads, and MQ when there are several pairs. */
  async getFeatures(): Promise<bigint> {
    this.kernelOffered = this.ioctl('VHOST_GET_FEATURES', () => native.vhostKernel.getFeatures(this.devices[0]));
    return (this.kernelOffered & ~REFUSED) | TAP_OFFLOADS | (this.devices.length > 1 ? bit(VirtioNetFeature.MQ) : 0n);
  }

  async setFeatures(features: bigint): Promise<void> {
    // Sent as asked, even bits the kernel did not offer: the kernel is the judge (EOPNOTSUPP).
    const kernel = features & ~NOT_THE_KERNELS;
    for (const fd of this.devices) {
      try {
        native.vhostKernel.setFeatures(fd, kernel);
      } catch (err) {
        const e = err as VhostUserError;
        const msg = `the kernel's vhost-net refused features 0x${kernel.toString(16)}: ${e.message} (ask for fewer: drop the driver option that adds them)`;
        throw new VhostUserError(e.code, msg, { errno: e.errno, op: 'VHOST_SET_FEATURES' });
      }
    }
    this.kernelAcked = kernel;
    // The tap's header length and offloads follow from the features, as for the tap port.
    for (const fd of this.taps) native.vhostKernel.tapConfigure(fd, this.opts.tap, features);
  }

  async setMemTable(memory: GuestMemory): Promise<void> {
    const table = memory.hostTable();
    for (const fd of this.devices) this.ioctl('VHOST_SET_MEM_TABLE', () => native.vhostKernel.setMemTable(fd, table));
  }

  async setVringNum(index: number, num: number): Promise<void> {
    this.onRing(index, 'VHOST_SET_VRING_NUM', (fd, i) => native.vhostKernel.setVringNum(fd, i, num));
  }

  async setVringBase(index: number, num: number): Promise<void> {
    this.onRing(index, 'VHOST_SET_VRING_BASE', (fd, i) => native.vhostKernel.setVringBase(fd, i, num));
  }

  /** The ring detached from the tap first (the kernel stops it there), then where it got to, as QEMU stops a vhost-net ring. */
  async getVringBase(index: number): Promise<number> {
    this.onRing(index, 'VHOST_NET_SET_BACKEND', (fd, i) => native.vhostKernel.netSetBackend(fd, i, -1));
    return this.onRing(index, 'VHOST_GET_VRING_BASE', (fd, i) => native.vhostKernel.getVringBase(fd, i));
  }

  async setVringAddr(index: number, ring: RingAddresses, memory: GuestMemory, log: boolean): Promise<void> {
    const flags = log ? 1 : 0; // VHOST_VRING_F_LOG
    const [desc, used, avail] = [memory.hostAddr(ring.descGpa), memory.hostAddr(ring.usedGpa), memory.hostAddr(ring.availGpa)];
    const logAddr = log ? BigInt(ring.usedGpa) : 0n;
    this.onRing(index, 'VHOST_SET_VRING_ADDR', (fd, i) => native.vhostKernel.setVringAddr(fd, i, flags, desc, used, avail, logAddr));
  }

  async setVringKick(index: number, fd: number): Promise<void> {
    this.onRing(index, 'VHOST_SET_VRING_KICK', (dev, i) => native.vhostKernel.setVringKick(dev, i, fd));
  }

  async setVringCall(index: number, fd: number): Promise<void> {
    this.onRing(index, 'VHOST_SET_VRING_CALL', (dev, i) => native.vhostKernel.setVringCall(dev, i, fd));
  }

  async setVringErr(index: number, fd: number): Promise<void> {
    this.onRing(index, 'VHOST_SET_VRING_ERR', (dev, i) => native.vhostKernel.setVringErr(dev, i, fd));
  }

  /** The net back-end: the pair's tap queue behind the ring (after the busy-poll time, if asked). */
  async enableRing(index: number): Promise<void> {
    const busyloop = this.opts.busyloopUs;
    if (busyloop !== undefined)
      this.onRing(index, 'VHOST_SET_VRING_BUSYLOOP_TIMEOUT', (fd, i) => native.vhostKernel.setBusyloopTimeout(fd, i, busyloop));
    const tap = this.taps[index >> 1];
    this.onRing(index, 'VHOST_NET_SET_BACKEND', (fd, i) => native.vhostKernel.netSetBackend(fd, i, tap));
  }

  async driverOk(): Promise<void> {}

  /** Closes every vhost device (the kernel drops the rings and its worker) and then the tap queues. */
  close(): void {
    for (const fd of this.devices.splice(0)) native.close(fd);
    for (const fd of this.taps.splice(0)) native.close(fd);
    if (!this.open) return;
    this.open = false;
    for (const l of this.listeners) l();
  }

  /** Runs `op` on the device of ring `index` with its index there (pair p's RX is 0, its TX 1). */
  private onRing<T>(index: number, name: string, op: (fd: number, local: number) => T): T {
    const fd = this.devices[index >> 1];
    if (fd === undefined) throw new VhostUserError('EINVAL', `${name}: ring ${index} is outside the ${this.devices.length} pair(s) opened`);
    return this.ioctl(name, () => op(fd, index & 1));
  }

  /** An ioctl's failure as one line that names it (the native error carries errno and the call). */
  private ioctl<T>(name: string, op: () => T): T {
    if (!this.open) throw new VhostUserError('EBADF', `${name}: the vhost-net transport is closed`);
    try {
      return op();
    } catch (err) {
      const e = err as VhostUserError; // its message starts with the ioctl's name
      throw new VhostUserError(e.code ?? 'EIO', `the kernel's vhost-net refused ${e.message}`, { errno: e.errno, op: name });
    }
  }
}
