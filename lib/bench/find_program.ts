/** Finding the peer programs (testpmd, QEMU, ip) and libraries (libslirp) the benchmark and the tests run. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The absolute path of executable `name` on PATH (plus the sbin folders a non-root PATH may lack). */
export function findProgram(name: string): string | null {
  const dirs = (process.env.PATH ?? '').split(':').filter(Boolean);
  for (const extra of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(extra)) dirs.push(extra);
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** A shared library the dynamic loader finds by its soname (ldconfig's cache). */
export function hasLibrary(soname: string): boolean {
  const ldconfig = findProgram('ldconfig');
  return ldconfig !== null && spawnSync(ldconfig, ['-p'], { encoding: 'utf8' }).stdout.includes(soname);
}
