/**
 * What the protocol needs of a device: the features it offers, and somewhere to put the memory
 * table and the rings the front-end describes. The protocol knows no device kind; a device
 * (NetDevice for virtio-net) implements this and moves the data.
 *
 * Every call comes after the protocol checked the request (sizes, fd counts, ring index in range,
 * negotiated features). A call that takes an fd owns it from then on, also when it throws.
 *
 * There is no config space: CONFIG is not offered (QEMU keeps the virtio-net config itself), so
 * GET_CONFIG and SET_CONFIG are refused before they reach a device.
 */
import type { MemoryRegion, MemoryRegionWithFd } from './codec';

/** The three guest addresses of a split ring, in the front-end's virtual address space. */
export interface VringAddresses {
  desc: bigint;
  avail: bigint;
  used: bigint;
  /** VHOST_VRING_F_LOG: where the ring's own writes are logged while migrating (log_guest_addr). */
  log?: bigint;
}

export interface VhostUserDevice {
  /** Virtio feature bits offered (GET_FEATURES); SET_FEATURES may ack only these. */
  readonly features: bigint;
  /** Protocol feature bits offered (GET_PROTOCOL_FEATURES). */
  readonly protocolFeatures: bigint;
  /** Rings the device serves; ring indices from the front-end are checked against it. */
  readonly queueCount: number;
  /** What GET_QUEUE_NUM reports (the spec leaves the unit to the device kind). */
  readonly queueNum: number;

  /** The features the front-end acked (a subset of `features`, checked). */
  setFeatures(acked: bigint): void;
  /** Names of the bits set in `mask`, for logs. */
  describeFeatures(mask: bigint): string[];

  /** Replaces the whole memory table (SET_MEM_TABLE). */
  setMemTable(regions: MemoryRegionWithFd[]): void;
  /** ADD_MEM_REG: one more region; the device refuses overlaps and a full table. */
  addMemRegion(region: MemoryRegionWithFd): void;
  /** REM_MEM_REG: the region must match one added before. */
  removeMemRegion(region: MemoryRegion): void;

  setVringNum(queue: number, num: number): void;
  setVringAddr(queue: number, addr: VringAddresses): void;
  setVringBase(queue: number, base: number): void;
  /** GET_VRING_BASE: stops the ring and tells where the device got to. */
  getVringBase(queue: number): number;
  setVringKick(queue: number, fd: number): void;
  /** fd -1: no call (the front-end polls the used ring). */
  setVringCall(queue: number, fd: number): void;
  /** fd -1: no error notifications. */
  setVringErr(queue: number, fd: number): void;
  setVringEnable(queue: number, on: boolean): void;

  /** Back to a fresh device: memory, rings and their fds dropped (the connection ended or RESET_OWNER). */
  reset(): void;

  // Hooks for requests that belong to one device kind; a device without the hook does without them.

  /** NET_SET_MTU; throws if the device does not take that MTU. Without it the request is refused. */
  setMtu?(mtu: bigint): void;
  /** SET_LOG_BASE (with LOG_SHMFD offered): the dirty-page log, `size` bytes at `offset` of `fd` (consumed). */
  setLogBase?(fd: number, size: bigint, offset: bigint): void;
  /** SEND_RARP: the guest migrated here with this MAC; returns what was done, for the log. Without it the announcement is only logged. */
  announce?(mac: Buffer): string;

  // DEVICE_STATE (device_state_transfer.ts): a device that offers it has all three.

  /** Whether no ring runs: a state is saved or loaded only then. */
  ringsStopped?(): boolean;
  /** The device's state as an opaque blob of its own format. */
  saveState?(): Buffer;
  /** Takes in a blob (untrusted: it came through the front-end); returns what was loaded, for the log; throws having changed nothing. */
  loadState?(blob: Buffer): string;
}
