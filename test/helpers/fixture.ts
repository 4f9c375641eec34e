/**
 * The set-up most suites share: a temporary directory for the socket, our front-end's guest memory,
 * and a back-end started on demand whose warnings are collected. Call at the top of a suite; each
 * test gets fresh ones and everything is closed after it.
 */
import { afterEach, beforeEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VhostUserBackend } from '../../lib/backend';
import { GuestMemory } from '../../lib/frontend/guest_memory';
import type { NetDeviceOptions } from '../../lib/net/device';

export interface BackendFixture {
  readonly dir: string;
  readonly memory: GuestMemory;
  /** The back-end of the last start() in this test. */
  readonly backend: VhostUserBackend;
  /** Warnings the back-end logged in this test. */
  readonly warnings: string[];
  start(device?: NetDeviceOptions): VhostUserBackend;
}

export function useBackendFixture(): BackendFixture {
  let dir = '';
  let memory: GuestMemory | undefined;
  let backend: VhostUserBackend | undefined;
  let warnings: string[] = [];
  const fixture: BackendFixture = {
    get dir() {
      return dir;
    },
    get memory() {
      if (!memory) throw new Error('fixture used outside a test');
      return memory;
    },
    get backend() {
      if (!backend) throw new Error('no back-end started in this test');
      return backend;
    },
    get warnings() {
      return warnings;
    },
    start(device?: NetDeviceOptions) {
      backend?.close();
      backend = new VhostUserBackend({
        socketPath: path.join(dir, 'net.sock'),
        // The suites that use this fixture test the device and its rings: loopback unless they name a port.
        device: { port: 'loopback', ...device },
        log: (level, msg) => {
          if (level === 'warn') warnings.push(msg);
        },
      });
      backend.start();
      return backend;
    },
  };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-test-'));
    memory = new GuestMemory();
    warnings = [];
  });
  afterEach(() => {
    backend?.close();
    backend = undefined;
    memory?.close();
    memory = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return fixture;
}
