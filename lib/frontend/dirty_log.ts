/**
 * The front-end's dirty-page log, as QEMU keeps one while it migrates a guest: a memfd sealed against
 * shrinking (the back-end refuses one that is not), one bit per 4 KiB page of guest-physical memory
 * up to the end of the memory table, handed to the back-end with SET_LOG_BASE. take() reads the bits
 * and clears them, as QEMU's sync does; read it when the back-end is idle (JS has no atomic
 * exchange on this mapping).
 */
import { native, type NativeMapping } from '../binding';
import type { GuestMemory } from './guest_memory';

export const LOG_PAGE = 4096;

export class FrontendDirtyLog {
  readonly fd: number;
  /** Bytes of bits (a multiple of 8, as QEMU sizes it). */
  readonly size: number;
  private readonly mapping: NativeMapping;

  /** A log covering guest-physical [0, endGpa). */
  constructor(endGpa: number) {
    this.size = Math.max(8, Math.ceil(endGpa / LOG_PAGE / 64) * 8);
    this.fd = native.memfdCreate('vhost-user-log', this.size, true);
    this.mapping = new native.Mapping(this.fd, this.size);
  }

  /** A log over the whole of `memory`'s table, as QEMU sizes it (vhost_get_log_size). */
  static over(memory: GuestMemory): FrontendDirtyLog {
    return new FrontendDirtyLog(Math.max(...memory.table().map((r) => Number(r.guestPhysAddr + r.size))));
  }

  /** The guest-physical page numbers marked since the last take(), in order; their bits cleared. */
  take(): number[] {
    const bytes = new Uint8Array(this.mapping.buffer);
    const pages: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] === 0) continue;
      for (let b = 0; b < 8; b++) if (bytes[i] & (1 << b)) pages.push(i * 8 + b);
      bytes[i] = 0;
    }
    return pages;
  }

  close(): void {
    this.mapping.unmap();
    native.close(this.fd);
  }
}
