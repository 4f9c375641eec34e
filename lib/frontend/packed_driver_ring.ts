/**
 * The driver's side of a packed virtqueue (virtio 1.1+ 2.8): one ring of 16-byte descriptors
 * {addr u64, len u32, id u16, flags u16} that the driver makes available and the device overwrites
 * as used, told apart by the AVAIL/USED flag bits against each side's wrap counter. Like the split
 * ring it trusts nothing the device writes: used ids are checked.
 */
import { native } from '../binding';
import { VhostUserError } from '../errors';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, INDIRECT_MAX, type BufferSpec, type DriverRing, type UsedElem } from './driver_ring';
import type { GuestMemory } from './guest_memory';

export const DESC_F_AVAIL = 1 << 7;
export const DESC_F_USED = 1 << 15;
/** Event suppression flags (driver and device areas). */
export const EVENT_ENABLE = 0;
export const EVENT_DISABLE = 1;
export const EVENT_DESC = 2;
/** The largest packed ring (2^15: indexes are 15 bits beside a wrap bit). */
export const PACKED_MAX_SIZE = 32768;

/** Where each side stands: SET_VRING_BASE / GET_VRING_BASE of a packed ring, decoded. */
export interface PackedPosition {
  availIdx: number;
  availWrap: number;
  usedIdx: number;
  usedWrap: number;
}

/** Bits 0-14 next avail index, 15 avail wrap counter, 16-30 used index, 31 used wrap counter. */
export function encodePackedBase(p: PackedPosition): number {
  return ((p.availIdx & 0x7fff) | ((p.availWrap & 1) << 15) | ((p.usedIdx & 0x7fff) << 16) | ((p.usedWrap & 1) << 31)) >>> 0;
}

export function decodePackedBase(base: number): PackedPosition {
  return { availIdx: base & 0x7fff, availWrap: (base >>> 15) & 1, usedIdx: (base >>> 16) & 0x7fff, usedWrap: base >>> 31 };
}

/** Both wrap counters start at 1, both indexes at 0. */
export const PACKED_BASE_START = 0x80008000;

/** The AVAIL/USED bits that mark a descriptor available in the lap of wrap counter `wrap`. */
export const availBits = (wrap: number): number => (wrap ? DESC_F_AVAIL : DESC_F_USED);
/** The AVAIL/USED bits the device writes on a used descriptor in the lap of `wrap`. */
export const usedBits = (wrap: number): number => (wrap ? DESC_F_AVAIL | DESC_F_USED : 0);

export interface PackedRingOptions {
  eventIdx: boolean;
  /** VIRTIO_F_IN_ORDER: the device may return one used descriptor for a batch (its last buffer). */
  inOrder?: boolean;
  /** SET_VRING_BASE to start from (default PACKED_BASE_START); nothing may be outstanding there. */
  base?: number;
}

/** A descriptor for the raw hooks; `flags` without AVAIL/USED unless `exact`. */
export interface RawDescriptor {
  addr: bigint | number;
  len: number;
  flags: number;
  id: number;
}

export class PackedDriverRing implements DriverRing {
  readonly descGpa: number;
  /** The driver event suppression area. */
  readonly availGpa: number;
  /** The device event suppression area. */
  readonly usedGpa: number;
  readonly base: number;
  private readonly desc: Buffer;
  /** Every descriptor's flags (element 8i+7): one 16-bit store makes a chain visible, as a real driver does. */
  private readonly flags: Uint16Array;
  /** off_wrap | flags << 16 of each area, read and written as one 32-bit access. */
  private readonly driverArea: Uint32Array;
  private readonly deviceArea: Uint32Array;
  private readonly indirectGpa: number;
  private readonly eventIdx: boolean;
  private readonly inOrder: boolean;
  private readonly freeIds: number[] = [];
  /** Descriptors each outstanding buffer took, by id; undefined when the id is free. */
  private readonly counts: (number | undefined)[];
  /** Outstanding ids in the order they were made available (IN_ORDER retires them so). */
  private readonly order: number[] = [];
  /** Head flags not yet written (publish writes them, in order). */
  private readonly pendingHeads: { pos: number; flags: number }[] = [];
  private freeDesc: number;
  private nextAvail: number;
  private availWrap: number;
  private nextUsed: number;
  private usedWrap: number;
  /** Descriptors made available since the last kick decision. */
  private added = 0;
  private outstandingBuffers = 0;
  /** Used descriptors read (with IN_ORDER one may stand for several buffers). */
  usedRead = 0;

  constructor(
    private readonly mem: GuestMemory,
    readonly size: number,
    opts: PackedRingOptions,
  ) {
    if (!Number.isInteger(size) || size < 1 || size > PACKED_MAX_SIZE)
      throw new VhostUserError('EINVAL', `packed ring size ${size} (1..32768)`);
    this.eventIdx = opts.eventIdx;
    this.inOrder = opts.inOrder ?? false;
    this.base = opts.base ?? PACKED_BASE_START;
    const start = decodePackedBase(this.base);
    if (start.availIdx !== start.usedIdx || start.availWrap !== start.usedWrap || start.availIdx >= size) {
      throw new VhostUserError(
        'EINVAL',
        `packed ring base 0x${this.base.toString(16)} leaves buffers outstanding or lies outside the ring`,
      );
    }
    ({ availIdx: this.nextAvail, availWrap: this.availWrap, usedIdx: this.nextUsed, usedWrap: this.usedWrap } = start);
    this.descGpa = mem.alloc(16 * size, 16);
    this.availGpa = mem.alloc(4, 4);
    this.usedGpa = mem.alloc(4, 4);
    this.indirectGpa = mem.alloc(16 * INDIRECT_MAX * size, 16);
    this.desc = mem.view(this.descGpa, 16 * size);
    this.flags = new Uint16Array(this.desc.buffer, this.desc.byteOffset, 8 * size);
    const drv = mem.view(this.availGpa, 4);
    const dev = mem.view(this.usedGpa, 4);
    this.driverArea = new Uint32Array(drv.buffer, drv.byteOffset, 1);
    this.deviceArea = new Uint32Array(dev.buffer, dev.byteOffset, 1);
    this.desc.fill(0);
    this.driverArea[0] = 0;
    this.deviceArea[0] = 0;
    // As a ring that got here: this lap's descriptors used, the rest used in the previous lap.
    for (let i = 0; i < size; i++) this.flags[8 * i + 7] = usedBits(i < this.nextUsed ? this.usedWrap : this.usedWrap ^ 1);
    for (let i = size - 1; i >= 0; i--) this.freeIds.push(i);
    this.counts = new Array(size).fill(undefined);
    this.freeDesc = size;
  }

  get freeDescriptors(): number {
    return Math.min(this.freeDesc, this.freeIds.length);
  }

  get outstanding(): number {
    return this.outstandingBuffers;
  }

  /** Where the driver stands now, in SET_VRING_BASE's encoding (the device's GET_VRING_BASE once all is used). */
  get position(): PackedPosition {
    return { availIdx: this.nextAvail, availWrap: this.availWrap, usedIdx: this.nextUsed, usedWrap: this.usedWrap };
  }

  add(bufs: BufferSpec[], indirect = false): number | null {
    if (bufs.length === 0) throw new VhostUserError('EINVAL', 'a chain needs at least one buffer');
    if (indirect && bufs.length > INDIRECT_MAX) throw new VhostUserError('EINVAL', `indirect chains hold at most ${INDIRECT_MAX}`);
    const count = indirect ? 1 : bufs.length;
    if (this.freeDesc < count || this.freeIds.length === 0) return null;
    const id = this.freeIds.pop()!;
    const w = (b: BufferSpec) => (b.write ? DESC_F_WRITE : 0);
    if (indirect) {
      // Table entries are used in sequence: no NEXT, and their ids are ignored.
      const tableGpa = this.indirectGpa + 16 * INDIRECT_MAX * id;
      const table = this.mem.view(tableGpa, 16 * bufs.length);
      bufs.forEach((b, i) => writeDesc(table, i, b.gpa, b.len, 0, w(b)));
      this.pushChain([{ addr: tableGpa, len: 16 * bufs.length, id, flags: DESC_F_INDIRECT }]);
    } else {
      this.pushChain(bufs.map((b, i) => ({ addr: b.gpa, len: b.len, id, flags: w(b) | (i + 1 < bufs.length ? DESC_F_NEXT : 0) })));
    }
    this.track(id, count);
    return id;
  }

  publish(): boolean {
    if (this.pendingHeads.length) {
      native.memoryFence(); // every other descriptor of these chains before their heads
      for (const { pos, flags } of this.pendingHeads) this.flags[8 * pos + 7] = flags;
      this.pendingHeads.length = 0;
    }
    native.memoryFence(); // the device's area must be read after our descriptors are visible
    const added = this.added;
    this.added = 0;
    if (added === 0) return false;
    const area = this.deviceArea[0];
    const flags = area >>> 16;
    if (flags !== EVENT_DESC) return flags !== EVENT_DISABLE;
    return this.needEvent(area & 0xffff, added);
  }

  /**
   * The packed twin of vring_need_event: kick if the event position the device named lies among
   * the `added` descriptors just made available. Positions are counted on one line across laps:
   * an event in the lap before ours (other wrap bit) sits `size` lower (Linux's
   * virtqueue_kick_prepare_packed does the same), and all arithmetic is modulo 2^16.
   */
  private needEvent(offWrap: number, added: number): boolean {
    const newIdx = this.nextAvail;
    const oldIdx = (newIdx - added) & 0xffff;
    let event = offWrap & 0x7fff;
    if (offWrap >>> 15 !== this.availWrap) event -= this.size;
    return ((newIdx - event - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
  }

  takeUsed(): UsedElem[] {
    const out: UsedElem[] = [];
    // Bounded: every step retires at least one outstanding buffer.
    while (this.outstandingBuffers > 0) {
      const f = this.flags[8 * this.nextUsed + 7];
      if (!isUsed(f, this.usedWrap)) break;
      // x86 keeps loads in order (as for the split ring's index, no fence between flags and body).
      const o = 16 * this.nextUsed;
      const len = this.desc.readUInt32LE(o + 8);
      const id = this.desc.readUInt16LE(o + 12);
      if (id >= this.size || this.counts[id] === undefined) {
        throw new VhostUserError('EPROTO', `device returned id ${id}, which is not outstanding`);
      }
      this.usedRead++;
      if (this.inOrder) this.retireInOrder(id, len, out);
      else this.retire(id, len, out);
    }
    return out;
  }

  /** IN_ORDER: one used descriptor may stand for every buffer up to `id`, in the order made available. */
  private retireInOrder(id: number, len: number, out: UsedElem[]): void {
    for (;;) {
      const first = this.order.shift()!;
      const last = first === id;
      this.retire(first, last ? len : 0, out);
      if (last) return;
    }
  }

  private retire(id: number, len: number, out: UsedElem[]): void {
    const count = this.counts[id]!;
    this.counts[id] = undefined;
    this.freeIds.push(id);
    this.freeDesc += count;
    this.outstandingBuffers--;
    this.nextUsed += count;
    if (this.nextUsed >= this.size) {
      this.nextUsed -= this.size;
      this.usedWrap ^= 1;
    }
    out.push({ id, len });
  }

  armCall(): boolean {
    // With EVENT_IDX: call when the descriptor at our used position is used; otherwise on any.
    this.driverArea[0] = this.eventIdx ? (EVENT_DESC << 16) | this.nextUsed | (this.usedWrap << 15) : EVENT_ENABLE << 16;
    native.memoryFence();
    return this.outstandingBuffers > 0 && isUsed(this.flags[8 * this.nextUsed + 7], this.usedWrap);
  }

  suppressCalls(): void {
    this.driverArea[0] = EVENT_DISABLE << 16;
  }

  // --- Hostile-guest hooks: tests write what no correct driver would (test/hostile/). ---

  writeRawDescriptor(i: number, addr: bigint | number, len: number, flags: number, id: number, tableGpa?: number): void {
    const table = tableGpa === undefined ? this.desc : this.mem.view(tableGpa, 16 * (i + 1));
    writeDesc(table, i, addr, len >>> 0, id, flags);
  }

  /** The AVAIL/USED bits that make the next descriptor available in the current lap. */
  get availFlags(): number {
    return availBits(this.availWrap);
  }

  /**
   * Puts descriptors in the ring at the next positions, written as given (AVAIL/USED bits added for
   * each position's lap unless `exact`), head flags last, visible at the next publish. If the
   * head's id is free it becomes outstanding with these descriptors, so that the device may return it.
   */
  pushRaw(descs: RawDescriptor[], exact = false): void {
    if (descs.length > this.freeDesc) throw new VhostUserError('ENOSPC', `only ${this.freeDesc} free descriptors`);
    const id = descs[0].id;
    this.pushChain(descs, exact);
    if (id < this.size && this.counts[id] === undefined) {
      this.freeIds.splice(this.freeIds.indexOf(id), 1);
      this.track(id, descs.length);
    } else {
      this.freeDesc -= descs.length; // never returned: the positions' room is gone for good
    }
  }

  /** Overwrites the flags of ring descriptor `pos` with one 16-bit store, exactly as given. */
  writeRawFlags(pos: number, flags: number): void {
    this.flags[8 * pos + 7] = flags;
  }

  /** Writes a chain at the next positions: every descriptor but the head, then (at publish) the head's flags. */
  private pushChain(descs: RawDescriptor[], exact = false): void {
    const headPos = this.nextAvail;
    let headFlags = 0;
    descs.forEach((d, i) => {
      const flags = exact ? d.flags : d.flags | availBits(this.availWrap);
      if (i === 0) {
        headFlags = flags;
        writeDesc(this.desc, headPos, d.addr, d.len, d.id); // its flags at publish
      } else {
        writeDesc(this.desc, this.nextAvail, d.addr, d.len, d.id, flags);
      }
      if (++this.nextAvail === this.size) {
        this.nextAvail = 0;
        this.availWrap ^= 1;
      }
    });
    this.pendingHeads.push({ pos: headPos, flags: headFlags });
    this.added += descs.length;
  }

  private track(id: number, count: number): void {
    this.counts[id] = count;
    if (this.inOrder) this.order.push(id);
    this.freeDesc -= count;
    this.outstandingBuffers++;
  }
}

const isUsed = (flags: number, wrap: number): boolean =>
  ((flags & DESC_F_AVAIL) !== 0) === (wrap === 1) && ((flags & DESC_F_USED) !== 0) === (wrap === 1);

/** Writes a descriptor; without `flags` its flags are left as they are (a head, made visible later). */
function writeDesc(table: Buffer, i: number, addr: bigint | number, len: number, id: number, flags?: number): void {
  const o = 16 * i;
  table.writeBigUInt64LE(BigInt(addr), o);
  table.writeUInt32LE(len, o + 8);
  table.writeUInt16LE(id, o + 12);
  if (flags !== undefined) table.writeUInt16LE(flags, o + 14);
}
