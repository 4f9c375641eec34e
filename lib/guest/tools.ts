/**
 * What booting a guest needs installed, and the Debian package of each piece. The callers decide what a
 * missing piece means: the benchmark fails in one line, the tests skip (or fail under CI=true, in
 * test/e2e/qemu/tools.ts).
 *
 * Facts the harness relies on (see the project's PEERS.md): no usable KVM, so TCG with `-cpu max`; QEMU
 * 7.2 under TCG crashes when a vhost-user NIC uses MSI-X, so `vectors=0`; guest memory must be shared
 * (memfd, share=on); the uncompressed vmlinux boots (PVH) about 2 s faster than the bzImage.
 */
import * as fs from 'node:fs';
import { findProgram } from '../bench/find_program';
import { findKernel } from './kernel';

/** The Debian package that provides each program the harness runs. */
export const DEBIAN_PACKAGE: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  busybox: 'busybox-static',
  cpio: 'cpio',
  ip: 'iproute2',
  xz: 'xz-utils',
  zstd: 'zstd',
  passt: 'passt',
  ping: 'iputils-ping',
};

/** The absolute path of program `name` on PATH (sbin included), or null. */
export function findTool(name: string): string | null {
  return findProgram(name);
}

/** The path of program `name`, or an error naming the Debian package to install. */
export function toolOrThrow(name: string): string {
  const found = findProgram(name);
  if (!found) throw new Error(`${name} is not installed (Debian package ${DEBIAN_PACKAGE[name] ?? name})`);
  return found;
}

/** Whether the ELF file at `file` is statically linked (has no PT_INTERP program header). */
function isStaticElf(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(64 * 1024);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    if (n < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2) return false; // ELF64 only
    const phoff = Number(head.readBigUInt64LE(0x20));
    const phentsize = head.readUInt16LE(0x36);
    const phnum = head.readUInt16LE(0x38);
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      if (at + 4 > n) return false;
      if (head.readUInt32LE(at) === 3 /* PT_INTERP */) return false;
    }
    return true;
  } finally {
    fs.closeSync(fd);
  }
}

/** What is missing to boot a guest here, with the Debian package that brings it; null when nothing is. */
export interface GuestGap {
  what: string;
  /** The Debian package to install. */
  pkg: string;
}

/** The first missing piece for booting a guest (QEMU, busybox-static, cpio, a kernel with modules), or null. */
export function guestGap(): GuestGap | null {
  for (const tool of ['qemu-system-x86_64', 'busybox', 'cpio']) {
    if (!findProgram(tool)) return { what: `${tool} is not installed`, pkg: DEBIAN_PACKAGE[tool] };
  }
  if (!findKernel()) return { what: 'no readable kernel in /boot with modules in /lib/modules', pkg: 'linux-image-amd64' };
  const busybox = fs.realpathSync(findProgram('busybox') as string);
  if (!isStaticElf(busybox)) return { what: `${busybox} is dynamically linked`, pkg: 'busybox-static' };
  return null;
}
