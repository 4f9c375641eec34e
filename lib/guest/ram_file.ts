/**
 * A migrating guest's RAM kept in files (GuestOptions.ramFile), and the check they allow: once a
 * migration has completed, with the source paused for good and the destination paused before it runs,
 * the two files must be equal page for page. A page that differs is a write the migration lost: one the
 * back-end made without marking it in the dirty log, or one QEMU itself failed to track.
 *
 * QEMU before 9.0 does lose some under TCG: the fast path of its dirty-bitmap sync, taken when a RAM block's
 * length is a multiple of 64 pages, clears the bits without making the vCPU's TLB catch the next write
 * (fixed upstream by "system/physmem: Fix migration dirty bitmap coherency with TCG memory access").
 * Kernel data the guest writes through long-lived TLB entries then stays stale on the destination, and
 * under network load the guest soon panics there. The same happens with QEMU's own user network, without
 * any vhost-user back-end. A RAM size that is not such a multiple keeps QEMU on its per-page path, which
 * does it right: MIGRATABLE_RAM_PAD_KIB more than a whole number of MiB.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** KiB added to a migrating guest's RAM: QEMU rounds RAM to 8 KiB, and 64 pages are 256 KiB. */
export const MIGRATABLE_RAM_PAD_KIB = 8;

const PAGE = 4096;
const CHUNK = 16 << 20;

/** A private directory for RAM files: in /dev/shm when there is one (the files are guest RAM), else the temp dir. */
export function makeRamDir(): string {
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  return fs.mkdtempSync(path.join(base, 'vhost-user-ram-'));
}

/** The byte offsets of the 4 KiB pages that differ between RAM files `a` and `b`, which must be the same size. */
export function differingPages(a: string, b: string): number[] {
  const size = fs.statSync(a).size;
  if (fs.statSync(b).size !== size) throw new Error(`RAM files ${a} and ${b} differ in size`);
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.alloc(CHUNK);
    const bb = Buffer.alloc(CHUNK);
    const pages: number[] = [];
    for (let at = 0; at < size; at += CHUNK) {
      const n = fs.readSync(fa, ba, 0, CHUNK, at);
      if (fs.readSync(fb, bb, 0, CHUNK, at) !== n) throw new Error(`RAM file ${b} changed size while read`);
      for (let off = 0; off < n; off += PAGE) if (ba.compare(bb, off, off + PAGE, off, off + PAGE) !== 0) pages.push(at + off);
    }
    return pages;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}
