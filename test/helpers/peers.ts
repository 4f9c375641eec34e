/**
 * Real peers (root, tap, QEMU, DPDK) are required in CI, where CI=true: a missing one fails the
 * test with what to install. Elsewhere the test is skipped, with the same reason printed.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { findProgram, hasLibrary } from '../../lib/bench/find_program';

export const IN_CI = process.env.CI === 'true';

/** null when everything is there, else what is missing and how to get it. */
export function missing(checks: [ok: boolean, what: string][]): string | null {
  const absent = checks.filter(([ok]) => !ok).map(([, what]) => what);
  return absent.length ? absent.join('; ') : null;
}

export { findProgram, hasLibrary };

export const hasProgram = (name: string): boolean => findProgram(name) !== null;

export const isRoot = () => process.getuid?.() === 0;
export const hasTun = () => fs.existsSync('/dev/net/tun');

/**
 * Returns true when the test should be skipped (outside CI, with the reason logged); throws in CI.
 */
export function skipUnless(reason: string | null, suite: string): boolean {
  if (!reason) return false;
  if (IN_CI) throw new Error(`${suite} cannot run in CI: ${reason}`);
  console.warn(`skipping ${suite}: ${reason}`);
  return true;
}

/** Runs a command and throws with its output when it fails. */
export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr || r.stdout}`);
  return r.stdout;
}
