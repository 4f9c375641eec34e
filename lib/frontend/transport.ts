/**
 * What a virtio front-end tells a vhost back-end, whatever carries it: the vhost-user socket
 * (frontend.ts) or the kernel's /dev/vhost-net ioctls (vhost_kernel_transport.ts). VirtioNetDriver
 * negotiates and sets up its rings through this alone, so the same driver runs over either, as
 * QEMU's vhost layer and rust-vmm's vhost crate do with one set of operations implemented twice.
 *
 * Queue indexes are the device's: 2p is pair p's RX ring, 2p + 1 its TX ring. Ring addresses are
 * given as guest-physical; each transport turns them into the address space its back-end reads
 * (vhost-user: the front-end's made-up addresses of the memory table; the kernel: this process's
 * own virtual addresses).
 */
import type { GuestMemory } from './guest_memory';

/** Where a ring's three parts lie in guest memory (split: descriptors, avail, used; packed: descriptors and the event areas). */
export interface RingAddresses {
  descGpa: number;
  availGpa: number;
  usedGpa: number;
}

/** What the device offers before the driver owns it. */
export interface DeviceOffer {
  features: bigint;
  /** Queue pairs the back-end can serve. */
  queuePairs: number;
}

export interface VhostTransport {
  /** 'vhost-user' or 'vhost-net' (the kernel), for logs and errors. */
  readonly kind: string;
  readonly isOpen: boolean;
  /** Called once when the back-end goes away (vhost-user: the socket closed; the kernel: close()). */
  onClosed(listener: (reason?: Error) => void): void;
  /** The device's offer, found as QEMU finds it before SET_OWNER (vhost-user: with the protocol features). */
  probe(): Promise<DeviceOffer>;
  setOwner(): Promise<void>;
  getFeatures(): Promise<bigint>;
  setFeatures(features: bigint): Promise<void>;
  /** The whole memory table of `memory`. */
  setMemTable(memory: GuestMemory): Promise<void>;
  setVringNum(index: number, num: number): Promise<void>;
  setVringBase(index: number, num: number): Promise<void>;
  /** Where the device got to on ring `index`; a vhost-user back-end also stops the ring. */
  getVringBase(index: number): Promise<number>;
  /** `log`: VHOST_VRING_F_LOG, the used ring's writes logged at its guest-physical address. */
  setVringAddr(index: number, ring: RingAddresses, memory: GuestMemory, log: boolean): Promise<void>;
  setVringKick(index: number, fd: number): Promise<void>;
  setVringCall(index: number, fd: number): Promise<void>;
  setVringErr(index: number, fd: number): Promise<void>;
  /**
   * Ring `index` set up: the device may use it. vhost-user: SET_VRING_ENABLE (with
   * PROTOCOL_FEATURES); the kernel: the net back-end (VHOST_NET_SET_BACKEND, the pair's tap queue).
   */
  enableRing(index: number): Promise<void>;
  /** Every ring enabled (vhost-user: SET_STATUS DRIVER_OK where negotiated). */
  driverOk(): Promise<void>;
  close(): void;
}
