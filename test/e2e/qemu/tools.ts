/**
 * The CI rule for what the QEMU harness (lib/guest/) needs: in CI (CI=true, where the e2e tests must run)
 * a missing piece throws, naming the Debian package; elsewhere the tests skip.
 */
import { IN_CI } from '../../helpers/peers';
import { DEBIAN_PACKAGE, findTool, guestGap } from '../../../lib/guest/tools';

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
  const found = findTool(name);
  if (found) return found;
  const pkg = DEBIAN_PACKAGE[name] ?? name;
  return requiredInCi(`${name} is not on PATH`, `install it: apt-get install -y ${pkg}`);
}

/**
 * Why the QEMU e2e tests cannot run here, or null if they can. In CI a missing piece throws instead
 * (naming the Debian package), so that the tests fail loudly rather than skip.
 */
export function qemuMissing(): string | null {
  const gap = guestGap();
  if (!gap) return null;
  requiredInCi(gap.what, `install it: apt-get install -y ${gap.pkg}`);
  return `${gap.what} (Debian package ${gap.pkg})`;
}

/** True when the QEMU e2e tests can run; throws in CI when they cannot (see qemuMissing). */
export function qemuAvailable(): boolean {
  const why = qemuMissing();
  if (why) console.warn(`skipping QEMU e2e tests: ${why}`);
  return why === null;
}
