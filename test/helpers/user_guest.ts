/**
 * A guest on the user port for the suites that run without a VM (user-port, user-offloads): our
 * front-end as the guest, sending hand-built frames (test/helpers/ip_frames.ts) and waiting for the
 * first received frame a reader accepts.
 */
import { expect } from 'vitest';
import { VirtioNetDriver, type NetDriverOptions } from '../../lib/frontend/net_driver';
import type { NetDeviceOptions } from '../../lib/net/device';
import type { BackendFixture } from './fixture';
import { dhcpDiscover, readDhcpReply } from './ip_frames';
import { until } from './until';

export type UserGuest = Awaited<ReturnType<typeof userGuest>>;

/** A back-end on the user port with `device`'s options and our driver (with `driver`'s) connected to it. */
export async function userGuest(fx: BackendFixture, device: NetDeviceOptions, driver: Partial<NetDriverOptions> = {}) {
  const backend = fx.start({ port: 'user', ...device });
  const inbox: Buffer[] = [];
  const drv = await VirtioNetDriver.start({
    socketPath: backend.socketPath,
    memory: fx.memory,
    ...driver,
    onFrames: (f) => inbox.push(...f),
  });
  return {
    backend,
    driver: drv,
    /** Sends one frame now, after `header` (the first bytes of its virtio-net header) if given. */
    send(frame: Buffer, header?: Buffer) {
      expect(drv.send(frame, 'single', undefined, header)).toBe(true);
      drv.flush();
    },
    async receive<T>(read: (f: Buffer) => T | undefined, what: string): Promise<T> {
      let found: T | undefined;
      // until() asks once more after it held: the frame found stays found.
      const look = () => {
        if (found !== undefined) return true;
        const i = inbox.findIndex((f) => (found = read(f)) !== undefined);
        if (i >= 0) inbox.splice(i, 1);
        return i >= 0;
      };
      if (!(await until(look, 10_000))) throw new Error(`no ${what} among ${inbox.length} frames received`);
      return found as T;
    },
  };
}

/** DHCPDISCOVER -> DHCPOFFER (libslirp learns the guest's MAC from it); returns the lease offered. */
export async function lease(g: UserGuest) {
  g.send(dhcpDiscover(0x1234abcd));
  return g.receive((f) => readDhcpReply(f), 'DHCPOFFER');
}
