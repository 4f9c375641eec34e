/**
 * Guest memory for our own front-end: one memfd, shared with the back-end the way QEMU shares a
 * guest's RAM — split into regions at distinct guest-physical addresses (below and above a hole),
 * the second region starting at a non-zero offset into the same fd. A bump allocator hands out
 * guest-physical ranges that never straddle a region.
 */
import { native, type NativeMapping } from '../binding';
import { VhostUserError } from '../errors';
import type { MemoryRegionWithFd } from '../protocol/codec';

interface Region {
  gpa: number;
  size: number;
  fileOffset: number;
  /** The front-end "virtual address" the back-end translates ring addresses from. */
  userAddr: bigint;
  next: number; // allocation cursor (gpa)
}

export interface GuestMemoryOptions {
  /** Sizes of the regions, in bytes (multiples of 4096). Default: two regions of 16 MiB. */
  regionSizes?: number[];
  /** Seal the memfd against shrinking, as QEMU does (default true; false for hostile tests). */
  sealed?: boolean;
}

/** Guest-physical base of region i: 0, then 4 GiB and up, like RAM around a PCI hole. */
const REGION_GPA_STRIDE = 0x1_0000_0000;
/** Base of our made-up front-end address space (it only has to be consistent). */
const USER_ADDR_BASE = 0x7f00_0000_0000n;

export class GuestMemory {
  readonly fd: number;
  readonly size: number;
  private readonly mapping: NativeMapping;
  private readonly bytes: Buffer;
  private readonly regions: Region[] = [];
  private closed = false;

  constructor(opts: GuestMemoryOptions = {}) {
    const sizes = opts.regionSizes ?? [16 << 20, 16 << 20];
    this.size = sizes.reduce((a, b) => a + b, 0);
    this.fd = native.memfdCreate('vhost-user-guest', this.size, opts.sealed ?? true);
    try {
      this.mapping = new native.Mapping(this.fd, this.size);
    } catch (err) {
      native.close(this.fd);
      throw err;
    }
    this.bytes = Buffer.from(this.mapping.buffer);
    let offset = 0;
    sizes.forEach((size, i) => {
      const gpa = i * REGION_GPA_STRIDE;
      this.regions.push({ gpa, size, fileOffset: offset, userAddr: USER_ADDR_BASE + BigInt(gpa) + BigInt(offset), next: gpa });
      offset += size;
    });
  }

  /** Guest-physical range of `size` bytes aligned to `align`, inside one region (region `only` if given). */
  alloc(size: number, align = 64, only?: number): number {
    if (only !== undefined && !this.regions[only]) throw new VhostUserError('EINVAL', `guest memory has no region ${only}`);
    for (const r of only === undefined ? this.regions : [this.regions[only]]) {
      const start = Math.ceil(r.next / align) * align;
      if (start + size <= r.gpa + r.size) {
        r.next = start + size;
        return start;
      }
    }
    throw new VhostUserError('ENOMEM', `guest memory exhausted allocating ${size} bytes`);
  }

  /** Frees every allocation (the memory itself stays mapped and shared). */
  resetAllocator(): void {
    for (const r of this.regions) r.next = r.gpa;
  }

  /** Bytes of [gpa, gpa+len): a view, not a copy. */
  view(gpa: number, len: number): Buffer {
    const r = this.regionOf(gpa, len);
    const off = r.fileOffset + (gpa - r.gpa);
    return this.bytes.subarray(off, off + len);
  }

  /** The front-end address of a guest-physical address (what SET_VRING_ADDR carries). */
  userAddr(gpa: number): bigint {
    const r = this.regionOf(gpa, 0);
    return r.userAddr + BigInt(gpa - r.gpa);
  }

  /** This process's address of a guest-physical address: what the kernel's vhost reads rings at. */
  hostAddr(gpa: number): bigint {
    const r = this.regionOf(gpa, 0);
    return this.mapping.address + BigInt(r.fileOffset + (gpa - r.gpa));
  }

  /** The memory table as the kernel's vhost takes it: each region at its address in this process. */
  hostTable(): { guestPhysAddr: bigint; size: bigint; userAddr: bigint }[] {
    return this.regions.map((r) => ({
      guestPhysAddr: BigInt(r.gpa),
      size: BigInt(r.size),
      userAddr: this.mapping.address + BigInt(r.fileOffset),
    }));
  }

  /** The SET_MEM_TABLE payload. The fd is the same for every region; the kernel duplicates it per send. */
  table(): MemoryRegionWithFd[] {
    return this.regions.map((r) => ({
      guestPhysAddr: BigInt(r.gpa),
      size: BigInt(r.size),
      userAddr: r.userAddr,
      mmapOffset: BigInt(r.fileOffset),
      fd: this.fd,
    }));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.mapping.unmap();
    native.close(this.fd);
  }

  private regionOf(gpa: number, len: number): Region {
    for (const r of this.regions) if (gpa >= r.gpa && gpa + len <= r.gpa + r.size) return r;
    throw new VhostUserError('EFAULT', `guest range 0x${gpa.toString(16)}+${len} is not inside one region`);
  }
}
