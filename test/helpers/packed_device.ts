/**
 * The device's side of a packed ring, written from the spec (virtio 1.1+ 2.8) and nothing else:
 * enough to check our PackedDriverRing without the native back-end. It reads available chains at
 * its position and writes used descriptors at its own, with its own wrap counters.
 */
import type { GuestMemory } from '../../lib/frontend/guest_memory';
import { DESC_F_AVAIL, DESC_F_USED, type PackedDriverRing } from '../../lib/frontend/packed_driver_ring';

const F_NEXT = 1;
const F_WRITE = 2;
const F_INDIRECT = 4;

export interface DeviceDesc {
  addr: bigint;
  len: number;
  flags: number;
}

export interface DeviceChain {
  id: number;
  /** Ring descriptors the chain took (1 for an indirect one). */
  count: number;
  descs: DeviceDesc[];
}

export class PackedDevice {
  availIdx = 0;
  availWrap = 1;
  usedIdx = 0;
  usedWrap = 1;
  private readonly desc: Buffer;
  private readonly deviceArea: Buffer;
  private readonly driverArea: Buffer;

  constructor(
    private readonly mem: GuestMemory,
    private readonly ring: PackedDriverRing,
  ) {
    this.desc = mem.view(ring.descGpa, 16 * ring.size);
    this.deviceArea = mem.view(ring.usedGpa, 4);
    this.driverArea = mem.view(ring.availGpa, 4);
  }

  /** The next available chain, or null (its head not available in this lap). */
  pop(): DeviceChain | null {
    const f = this.flagsAt(this.availIdx);
    const avail = (f & DESC_F_AVAIL) !== 0;
    const used = (f & DESC_F_USED) !== 0;
    if (avail !== (this.availWrap === 1) || used === (this.availWrap === 1)) return null;
    const descs: DeviceDesc[] = [];
    let id = 0;
    let count = 0;
    for (;;) {
      const o = 16 * this.availIdx;
      const d = { addr: this.desc.readBigUInt64LE(o), len: this.desc.readUInt32LE(o + 8), flags: this.desc.readUInt16LE(o + 14) };
      id = this.desc.readUInt16LE(o + 12);
      count++;
      this.advanceAvail();
      if (d.flags & F_INDIRECT) descs.push(...this.table(d));
      else descs.push(d);
      if (!(d.flags & F_NEXT)) break;
      if (count > this.ring.size) throw new Error('chain longer than the ring');
    }
    return { id, count, descs };
  }

  /** Writes one used descriptor for `id` at the used position, then skips `count` descriptors. */
  pushUsed(id: number, len: number, count: number): void {
    const o = 16 * this.usedIdx;
    this.desc.writeUInt16LE(id, o + 12);
    this.desc.writeUInt32LE(len, o + 8);
    const bits = this.usedWrap ? DESC_F_AVAIL | DESC_F_USED : 0;
    this.desc.writeUInt16LE(bits | (len > 0 ? F_WRITE : 0), o + 14);
    this.usedIdx += count;
    if (this.usedIdx >= this.ring.size) {
      this.usedIdx -= this.ring.size;
      this.usedWrap ^= 1;
    }
  }

  /** IN_ORDER: one used descriptor (the last buffer's id) for a whole batch, at the first's position. */
  pushUsedBatch(chains: DeviceChain[], lastLen: number): void {
    const total = chains.reduce((n, c) => n + c.count, 0);
    this.pushUsed(chains[chains.length - 1].id, lastLen, total);
  }

  /** The device event suppression area: flags and off_wrap. */
  setEvent(flags: number, offWrap = 0): void {
    this.deviceArea.writeUInt16LE(offWrap, 0);
    this.deviceArea.writeUInt16LE(flags, 2);
  }

  /** What the driver wrote in its area. */
  get driverEvent(): { flags: number; offWrap: number } {
    return { offWrap: this.driverArea.readUInt16LE(0), flags: this.driverArea.readUInt16LE(2) };
  }

  flagsAt(pos: number): number {
    return this.desc.readUInt16LE(16 * pos + 14);
  }

  private table(d: DeviceDesc): DeviceDesc[] {
    const t = this.mem.view(Number(d.addr), d.len);
    const out: DeviceDesc[] = [];
    for (let o = 0; o < d.len; o += 16) out.push({ addr: t.readBigUInt64LE(o), len: t.readUInt32LE(o + 8), flags: t.readUInt16LE(o + 14) });
    return out;
  }

  private advanceAvail(): void {
    if (++this.availIdx === this.ring.size) {
      this.availIdx = 0;
      this.availWrap ^= 1;
    }
  }
}
