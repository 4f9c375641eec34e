/**
 * Where the guest's kernel and initramfs are kept between runs: one directory per kernel version under
 * os.tmpdir(), written atomically so that parallel test processes never read half a file.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Bumped when the layout of the cached files changes, so that stale caches are rebuilt. */
export const CACHE_FORMAT = 1;

/** The directory the kernel and initramfs are cached in. */
export function cacheDirFor(version: string): string {
  return path.join(os.tmpdir(), `vhost-user-e2e-${version}`);
}

/** Writes `file` through a temporary name and a rename. */
export function writeAtomic(file: string, data: Buffer | string): void {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}
