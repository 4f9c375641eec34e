/**
 * The host side of a suite that moves traffic between a guest and a network namespace: whether such a
 * suite can run here, and what it sets up before its tests (boot files, a scratch directory, a fresh
 * namespace) and tears down after them (every helper process, the namespace, the directory).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildInitramfs } from '../../../lib/guest/initramfs';
import { createNetns, deleteNetns, netnsMissing } from './netns';
import { killAll } from '../../../lib/guest/processes';
import { qemuAvailable } from './tools';

/** True when QEMU and network namespaces can be used; throws in CI when they cannot. */
export function trafficTestsAvailable(): boolean {
  return qemuAvailable() && netnsMissing() === null;
}

export class HostSide {
  /** The scratch directory, once setUp has made it. */
  dir = '';

  constructor(readonly netns: string) {}

  /** Builds the boot files (the first build takes a few seconds), makes the directory and the namespace. */
  async setUp(): Promise<void> {
    await buildInitramfs();
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-e2e-'));
    await createNetns(this.netns);
  }

  /** Kills what the suite left running, then removes the namespace (with its interfaces) and the directory. */
  async tearDown(): Promise<void> {
    await killAll();
    await deleteNetns(this.netns);
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
