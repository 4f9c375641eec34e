/**
 * The driver's side of a split virtqueue (virtio 1.x 2.6), in guest memory shared with the
 * back-end: what a guest's virtio driver does, written so that tests and benchmarks can drive a
 * back-end without a VM. It trusts nothing the device writes either: used ids are checked.
 */
import { native } from '../binding';
import { VhostUserError } from '../errors';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, INDIRECT_MAX, type BufferSpec, type DriverRing, type UsedElem } from './driver_ring';
import type { GuestMemory } from './guest_memory';

const USED_F_NO_NOTIFY = 1;
const AVAIL_F_NO_INTERRUPT = 1;

export class SplitDriverRing implements DriverRing {
  readonly descGpa: number;
  readonly availGpa: number;
  readonly usedGpa: number;
  private readonly desc: Buffer;
  /**
   * The shared indexes and flags are read and written through 16/32-bit typed arrays: one load or
   * store each, as a real driver does. Buffer's readUInt16LE/writeUInt16LE go byte by byte, and the
   * device could see half an index (0x69ff -> 0x6900 -> 0x6a00) and rightly call the ring broken.
   */
  private readonly avail: Uint16Array; // flags, idx, ring[size], used_event
  private readonly usedFlagsIdx: Uint16Array; // flags, idx
  private readonly usedElems: Uint32Array; // {id, len}[size]
  private readonly availEvent: Uint16Array;
  private readonly indirectGpa: number;
  private readonly free: number[] = [];
  /** Descriptors of each outstanding chain, by head; undefined when the head is not outstanding. */
  private readonly chains: (number[] | undefined)[];
  private availIdx = 0;
  private kickedAvail = 0;
  private lastUsed = 0;

  constructor(
    private readonly mem: GuestMemory,
    readonly size: number,
    private readonly eventIdx: boolean,
  ) {
    this.descGpa = mem.alloc(16 * size, 16);
    this.availGpa = mem.alloc(6 + 2 * size, 2);
    this.usedGpa = mem.alloc(6 + 8 * size, 4);
    this.indirectGpa = mem.alloc(16 * INDIRECT_MAX * size, 16);
    this.desc = mem.view(this.descGpa, 16 * size);
    const avail = mem.view(this.availGpa, 6 + 2 * size);
    const used = mem.view(this.usedGpa, 6 + 8 * size);
    this.desc.fill(0);
    avail.fill(0);
    used.fill(0);
    this.avail = new Uint16Array(avail.buffer, avail.byteOffset, 3 + size);
    this.usedFlagsIdx = new Uint16Array(used.buffer, used.byteOffset, 2);
    this.usedElems = new Uint32Array(used.buffer, used.byteOffset + 4, 2 * size);
    this.availEvent = new Uint16Array(used.buffer, used.byteOffset + 4 + 8 * size, 1);
    for (let i = size - 1; i >= 0; i--) this.free.push(i);
    this.chains = new Array(size).fill(undefined);
  }

  /** A split ring starts at avail index 0 (SET_VRING_BASE). */
  get base(): number {
    return 0;
  }

  get freeDescriptors(): number {
    return this.free.length;
  }

  get outstanding(): number {
    return (this.availIdx - this.lastUsed) & 0xffff;
  }

  /**
   * Makes a buffer chain available (not yet visible: see publish). With `indirect`, the chain goes
   * into an indirect table and takes one ring descriptor. Returns the head, or null when the ring
   * has too few free descriptors.
   */
  add(bufs: BufferSpec[], indirect = false): number | null {
    if (bufs.length === 0) throw new VhostUserError('EINVAL', 'a chain needs at least one buffer');
    if (indirect && bufs.length > INDIRECT_MAX) throw new VhostUserError('EINVAL', `indirect chains hold at most ${INDIRECT_MAX}`);
    const count = indirect ? 1 : bufs.length;
    if (this.free.length < count) return null;
    const ids: number[] = [];
    for (let i = 0; i < count; i++) ids.push(this.free.pop()!);
    const head = ids[0];
    if (indirect) {
      const tableGpa = this.indirectGpa + 16 * INDIRECT_MAX * head;
      const table = this.mem.view(tableGpa, 16 * bufs.length);
      bufs.forEach((b, i) =>
        writeDesc(table, i, b.gpa, b.len, (b.write ? DESC_F_WRITE : 0) | (i + 1 < bufs.length ? DESC_F_NEXT : 0), i + 1),
      );
      writeDesc(this.desc, head, tableGpa, 16 * bufs.length, DESC_F_INDIRECT, 0);
    } else {
      bufs.forEach((b, i) => {
        const last = i + 1 === bufs.length;
        writeDesc(this.desc, ids[i], b.gpa, b.len, (b.write ? DESC_F_WRITE : 0) | (last ? 0 : DESC_F_NEXT), last ? 0 : ids[i + 1]);
      });
    }
    this.chains[head] = ids;
    this.avail[2 + (this.availIdx % this.size)] = head;
    this.availIdx = (this.availIdx + 1) & 0xffff;
    return head;
  }

  // --- Hostile-guest hooks: tests write what no correct driver would (test/hostile/). ---

  /** Takes n descriptors out of the free list for raw writes; they are never reused. */
  reserveDescriptors(n: number): number[] {
    if (this.free.length < n) throw new VhostUserError('ENOSPC', `only ${this.free.length} free descriptors`);
    return this.free.splice(this.free.length - n, n);
  }

  /** Writes descriptor i (of this ring's table, or of a table at `tableGpa`) exactly as given; `next` is its link. */
  writeRawDescriptor(i: number, addr: bigint | number, len: number, flags: number, next: number, tableGpa?: number): void {
    const table = tableGpa === undefined ? this.desc : this.mem.view(tableGpa, 16 * (i + 1));
    const o = 16 * i;
    table.writeBigUInt64LE(BigInt(addr), o);
    table.writeUInt32LE(len >>> 0, o + 8);
    table.writeUInt16LE(flags, o + 12);
    table.writeUInt16LE(next, o + 14);
  }

  /** Puts `head` in the available ring, valid or not; a valid head may come back as used. */
  pushRawHead(head: number): void {
    if (head < this.size) this.chains[head] = [];
    this.avail[2 + (this.availIdx % this.size)] = head & 0xffff;
    this.availIdx = (this.availIdx + 1) & 0xffff;
  }

  /** Writes the available index directly (e.g. far beyond what the ring holds). */
  writeRawAvailIdx(idx: number): void {
    this.avail[1] = idx & 0xffff;
  }

  get availIndex(): number {
    return this.availIdx;
  }

  /** Makes the chains added so far visible to the device. Returns whether it must be kicked. */
  publish(): boolean {
    this.avail[1] = this.availIdx;
    native.memoryFence(); // the device's event index must be read after our index is visible
    const old = this.kickedAvail;
    this.kickedAvail = this.availIdx;
    if (old === this.availIdx) return false;
    if (this.eventIdx) {
      const availEvent = this.availEvent[0];
      return ((this.availIdx - availEvent - 1) & 0xffff) < ((this.availIdx - old) & 0xffff);
    }
    return (this.usedFlagsIdx[0] & USED_F_NO_NOTIFY) === 0;
  }

  /** Used buffers returned by the device since the last call; their descriptors are free again. */
  takeUsed(): UsedElem[] {
    const out: UsedElem[] = [];
    const idx = this.usedFlagsIdx[1];
    if (((idx - this.lastUsed) & 0xffff) > this.outstanding) {
      throw new VhostUserError('EPROTO', `device used index ${idx} ran past what was made available`);
    }
    while (this.lastUsed !== idx) {
      const at = 2 * (this.lastUsed % this.size);
      const id = this.usedElems[at];
      const len = this.usedElems[at + 1];
      const ids = id < this.size ? this.chains[id] : undefined;
      if (!ids) throw new VhostUserError('EPROTO', `device returned id ${id}, which is not outstanding`);
      this.chains[id] = undefined;
      for (let i = ids.length - 1; i >= 0; i--) this.free.push(ids[i]);
      out.push({ id, len });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** Asks for a call on the next used buffer. Returns true if one is already there (the race). */
  armCall(): boolean {
    if (this.eventIdx) this.avail[2 + this.size] = this.lastUsed;
    else this.avail[0] = 0;
    native.memoryFence();
    return this.usedFlagsIdx[1] !== this.lastUsed;
  }

  /** Asks the device not to call (without EVENT_IDX; with it, simply not re-arming does that). */
  suppressCalls(): void {
    if (!this.eventIdx) this.avail[0] = AVAIL_F_NO_INTERRUPT;
  }
}

function writeDesc(table: Buffer, i: number, gpa: number, len: number, flags: number, next: number): void {
  const o = 16 * i;
  table.writeBigUInt64LE(BigInt(gpa), o);
  table.writeUInt32LE(len, o + 8);
  table.writeUInt16LE(flags, o + 12);
  table.writeUInt16LE(next, o + 14);
}
