/**
 * A switch with several of our own front-ends on it, for the switch suites: each guest is a back-end
 * of port 'switch' on its own socket, attached in its VLAN, and a VirtioNetDriver with its own guest
 * memory and MAC (02:00:00:00:00:0N) that keeps every frame it receives. Frames carry a tag (sender,
 * number) after an experimental ethertype so that every delivery can be told apart and checked.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VhostUserBackend } from '../../lib/backend';
import { GuestMemory, type GuestMemoryOptions } from '../../lib/frontend/guest_memory';
import { VirtioNetDriver, type NetDriverOptions } from '../../lib/frontend/net_driver';
import { Switch, type SwitchOptions } from '../../lib/net/switch';
import { until } from './until';

export const BROADCAST = Buffer.from('ffffffffffff', 'hex');
export const MULTICAST = Buffer.from('01005e000001', 'hex');
const ETHERTYPE = 0x88b5;

export function macOf(n: number): Buffer {
  return Buffer.from([0x02, 0, 0, 0, 0, n]);
}

export interface Guest {
  readonly n: number;
  readonly mac: Buffer;
  readonly backend: VhostUserBackend;
  readonly memory: GuestMemory;
  driver: VirtioNetDriver;
  /** Every frame received, in order. */
  readonly received: Buffer[];
}

/** A frame to `dst` from `src` tagged (from, seq); `len` 60..1514 bytes with a payload derived from the tag. */
export function tagged(dst: Buffer, src: Buffer, from: number, seq: number, len = 60): Buffer {
  const f = Buffer.alloc(len);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(ETHERTYPE, 12);
  f.writeUInt16BE(from, 14);
  f.writeUInt32BE(seq, 16);
  for (let k = 20; k < len; k++) f[k] = (from * 131 + seq * 7 + k) & 0xff;
  return f;
}

/** The tag of a frame made by tagged(): `${from}:${seq}`. */
export function tagOf(f: Buffer): string {
  return `${f.readUInt16BE(14)}:${f.readUInt32BE(16)}`;
}

export interface SwitchRig {
  readonly sw: Switch;
  readonly guests: Guest[];
  readonly warnings: string[];
  /** Connects guest i's driver again (after a close), with its receive list emptied. */
  reconnect(i: number, opts?: Partial<NetDriverOptions>): Promise<void>;
  /** Queues frames on guest i (waiting for room as needed) and flushes. */
  send(i: number, frames: Buffer[]): Promise<void>;
  /** Waits until guest i received a frame with this tag; false after `ms`. */
  waitFor(i: number, tag: string, ms?: number): Promise<boolean>;
  /**
   * Sends a broadcast marker from guest i and waits until every other guest of `vlans` received it:
   * frames i sent before it have then reached wherever they were going (one thread, in order).
   */
  settle(i: number, others: number[]): Promise<void>;
  close(): void;
}

export interface RigOptions {
  /** One entry per guest: its VLAN. */
  vlans: number[];
  switch?: SwitchOptions;
  driver?: Partial<NetDriverOptions>;
  /** Per guest driver options (e.g. rxBuffers for one). */
  drivers?: Partial<NetDriverOptions>[];
  /** Per guest memory options (e.g. unsealed, to shrink it). */
  memories?: GuestMemoryOptions[];
}

let markers = 1_000_000;

export async function startSwitchRig(opts: RigOptions): Promise<SwitchRig> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-switch-'));
  const warnings: string[] = [];
  const sw = new Switch(opts.switch);
  const guests: Guest[] = [];
  const connect = (g: Guest, extra?: Partial<NetDriverOptions>) =>
    VirtioNetDriver.start({
      socketPath: g.backend.socketPath,
      memory: g.memory,
      onFrames: (frames) => g.received.push(...frames),
      ...opts.driver,
      ...opts.drivers?.[g.n - 1],
      ...extra,
    });
  for (const [i, vlan] of opts.vlans.entries()) {
    const n = i + 1;
    const backend = new VhostUserBackend({
      socketPath: path.join(dir, `g${n}.sock`),
      device: { port: 'switch' },
      log: (level, msg) => level === 'warn' && warnings.push(`g${n}: ${msg}`),
    });
    sw.attach(backend, { vlan, name: `g${n}` });
    backend.start();
    const g = { n, mac: macOf(n), backend, memory: new GuestMemory(opts.memories?.[i]), received: [] as Buffer[] } as Guest;
    guests.push(g);
  }
  for (const g of guests) g.driver = await connect(g);
  const rig: SwitchRig = {
    sw,
    guests,
    warnings,
    async reconnect(i, extra) {
      const g = guests[i];
      g.driver.close();
      g.received.length = 0;
      g.memory.resetAllocator();
      g.driver = await connect(g, extra);
    },
    async send(i, frames) {
      const d = guests[i].driver;
      for (const f of frames) {
        while (d.txSpace === 0) {
          d.flush();
          await d.waitTxSpace();
        }
        d.send(f);
      }
      d.flush();
    },
    async waitFor(i, tag, ms = 5000) {
      return until(() => guests[i].received.some((f) => f.length >= 20 && tagOf(f) === tag), ms);
    },
    async settle(i, others) {
      const seq = markers++;
      await rig.send(i, [tagged(BROADCAST, guests[i].mac, guests[i].n, seq)]);
      for (const o of others) {
        if (!(await rig.waitFor(o, `${guests[i].n}:${seq}`))) throw new Error(`g${guests[o].n} never got g${guests[i].n}'s marker ${seq}`);
      }
    },
    close() {
      for (const g of guests) {
        g.driver.close();
        g.backend.close();
        g.memory.close();
      }
      sw.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return rig;
}

/** The tags guest g received, markers (seq >= 1,000,000) left out. */
export function tagsOf(g: Guest): string[] {
  return g.received.filter((f) => f.length >= 20 && f.readUInt32BE(16) < 1_000_000).map(tagOf);
}
