/**
 * What the QEMU harness needs installed, and the CI rule for a missing piece: in CI (CI=true, where the
 * e2e tests must run) it throws, naming the Debian package; elsewhere the tests skip.
 *
 * Facts the harness relies on (see the project's PEERS.md): no usable KVM, so TCG with `-cpu max`; QEMU
 * 7.2 under TCG crashes when a vhost-user NIC uses MSI-X, so `vectors=0`; guest memory must be shared
 * (memfd, share=on); the uncompressed vmlinux boots (PVH) about 2 s faster than the bzImage.
 */
import * as fs from 'node:fs';
import { IN_CI, findProgram } from '../../helpers/peers';
import { findKernel } from './kernel';

/** The Debian package that provides each program the harness runs. */
export const DEBIAN_PACKAGE: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  busybox: 'busybox-static',
  cpio: 'cpio',
  ip: 'iproute2',
  xz: 'xz-utils',
  zstd: 'zstd',
};

/** Fails in CI (where the e2e tests must run), returns null elsewhere (where they may be skipped). */
export function requiredInCi(what: string, fix: string): null {
  if (IN_CI) throw new Error(`QEMU e2e tests: ${what}; ${fix}`);
  return null;
}

/**
 * The absolute path of program `name` on PATH. When it is missing: in CI (CI=true) throws, naming the
 * Debian package to install; elsewhere returns null so that the test can skip.
 */
export function requireTool(name: string): string | null {
  const found = findProgram(name);
  if (found) return found;
  const pkg = DEBIAN_PACKAGE[name] ?? name;
  return requiredInCi(`${name} is not on PATH`, `install it: apt-get install -y ${pkg}`);
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

/**
 * Why the QEMU e2e tests cannot run here, or null if they can. In CI a missing piece throws instead
 * (naming the Debian package), so that the tests fail loudly rather than skip.
 */
export function qemuMissing(): string | null {
  for (const tool of ['qemu-system-x86_64', 'busybox', 'cpio']) {
    if (!requireTool(tool)) return `${tool} is not installed (Debian package ${DEBIAN_PACKAGE[tool]})`;
  }
  if (!findKernel()) {
    requiredInCi('no readable kernel in /boot with modules in /lib/modules', 'install it: apt-get install -y linux-image-amd64');
    return 'no readable kernel in /boot with its modules in /lib/modules (Debian package linux-image-amd64)';
  }
  const busybox = fs.realpathSync(requireTool('busybox') as string);
  if (!isStaticElf(busybox)) {
    requiredInCi(`${busybox} is dynamically linked`, 'install the static one: apt-get install -y busybox-static');
    return `${busybox} is not statically linked (Debian package busybox-static)`;
  }
  return null;
}

/** True when the QEMU e2e tests can run; throws in CI when they cannot (see qemuMissing). */
export function qemuAvailable(): boolean {
  const why = qemuMissing();
  if (why) console.warn(`skipping QEMU e2e tests: ${why}`);
  return why === null;
}
