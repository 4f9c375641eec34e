/**
 * What a queue pair needs of a virtqueue's driver side, whatever its layout (split, virtio 1.x 2.7;
 * packed, 2.8): add chains, publish them with the kick decision, harvest used buffers, arm or
 * suppress calls, and tell the addresses and base the device is given. The two layouts live in
 * split_driver_ring.ts and packed_driver_ring.ts.
 */

export interface BufferSpec {
  gpa: number;
  len: number;
  /** Device-writable (receive buffers). */
  write: boolean;
}

export interface UsedElem {
  /** The id the buffer was added with (split: its head descriptor; packed: its buffer id). */
  id: number;
  len: number;
}

/** Descriptor flags both layouts share. */
export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;

/** Descriptors an indirect table of ours holds. */
export const INDIRECT_MAX = 8;

export interface DriverRing {
  readonly size: number;
  /** SET_VRING_ADDR: the descriptor table (packed: the descriptor ring). */
  readonly descGpa: number;
  /** SET_VRING_ADDR "avail": the available ring (packed: the driver event suppression area). */
  readonly availGpa: number;
  /** SET_VRING_ADDR "used": the used ring (packed: the device event suppression area). */
  readonly usedGpa: number;
  /** SET_VRING_BASE for this ring as it starts (split: the avail index; packed: indexes and wrap counters). */
  readonly base: number;
  readonly freeDescriptors: number;
  /** Buffers made available and not yet used. */
  readonly outstanding: number;
  /**
   * Adds a buffer chain (not yet visible: see publish). With `indirect`, it takes one ring
   * descriptor pointing to a table. Returns its id, or null when the ring has too few free descriptors.
   */
  add(bufs: BufferSpec[], indirect?: boolean): number | null;
  /** Makes the chains added so far visible to the device. Returns whether it must be kicked. */
  publish(): boolean;
  /** Used buffers returned by the device since the last call; their descriptors are free again. */
  takeUsed(): UsedElem[];
  /** Asks for a call on the next used buffer. Returns true if one is already there (the race). */
  armCall(): boolean;
  /** Asks the device not to call. */
  suppressCalls(): void;
  /**
   * Hostile-guest hook: writes descriptor i of an indirect table at `tableGpa` (or of the ring
   * itself without one) exactly as given, in this layout (`link`: split next, packed buffer id).
   */
  writeRawDescriptor(i: number, addr: bigint | number, len: number, flags: number, link: number, tableGpa?: number): void;
}
