/**
 * A hostile front-end on the control channel: the same fd-carrying message 200 times (every old fd
 * and mapping must be released), regions that lie about their fd, overlap or are misaligned, a
 * peer that never reads its replies, and the memory table replaced while traffic flows.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { VhostUserBackend } from '../../lib/backend';
import { native } from '../../lib/binding';
import { GuestMemory } from '../../lib/frontend/guest_memory';
import { VhostUserFrontend } from '../../lib/frontend/frontend';
import { VirtioNetDriver } from '../../lib/frontend/net_driver';
import { encodeRequest } from '../../lib/protocol/codec';
import { ProtocolFeature, Request, bit } from '../../lib/protocol/constants';
import { useBackendFixture } from '../helpers/fixture';
import { countGuestMappings, fdKinds, macSwapped, makeFrame } from '../helpers/frames';

const PROTOCOL = bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIGURE_MEM_SLOTS);

let backend: VhostUserBackend;
let memory: GuestMemory;
let warnings: string[];
const frontends: VhostUserFrontend[] = [];

const fx = useBackendFixture();

beforeEach(() => {
  backend = fx.start();
  ({ memory, warnings } = fx);
});

afterEach(() => {
  for (const fe of frontends.splice(0)) fe.close();
});

async function negotiated(): Promise<VhostUserFrontend> {
  const fe = new VhostUserFrontend(backend.socketPath);
  frontends.push(fe);
  await fe.requestU64({ request: Request.GET_FEATURES });
  await fe.request({ request: Request.SET_PROTOCOL_FEATURES, value: PROTOCOL });
  fe.protocolFeatures = PROTOCOL;
  await fe.requestU64({ request: Request.GET_FEATURES });
  return fe;
}

async function nacked(p: Promise<unknown>): Promise<void> {
  await expect(p).rejects.toMatchObject({ code: 'EREMOTE' });
}

describe('repeated fd-carrying messages release what they replace', () => {
  it('200 × SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR, SET_MEM_TABLE and (refused) SET_LOG_FD', async () => {
    const fe = await negotiated();
    const round = async () => {
      for (const request of [Request.SET_VRING_KICK, Request.SET_VRING_CALL, Request.SET_VRING_ERR] as const) {
        const fd = native.eventfd();
        await fe.request({ request, index: 0, fd }, { needReply: true });
        native.close(fd);
      }
      await fe.request({ request: Request.SET_MEM_TABLE, regions: memory.table() }, { needReply: true });
      const logFd = native.eventfd();
      await nacked(fe.request({ request: Request.SET_LOG_FD, fd: logFd }, { needReply: true }));
      native.close(logFd);
    };
    await round();
    const fds = fdKinds();
    const mappings = countGuestMappings();
    expect(mappings).toBe(3); // ours + the back-end's two regions
    for (let i = 0; i < 199; i++) await round();
    expect(fdKinds()).toEqual(fds);
    expect(countGuestMappings()).toBe(mappings);
    expect(fe.isOpen).toBe(true);
  });
});

describe('memory regions that lie', () => {
  it('refuses regions beyond their fd, overlapping ones and too many slots, mapping nothing', async () => {
    const fe = await negotiated();
    const mappings = countGuestMappings();
    const [r0, r1] = memory.table();
    // mmap_offset + size beyond the file: mapping it would fault on first touch.
    await nacked(
      fe.request({ request: Request.SET_MEM_TABLE, regions: [{ ...r1, mmapOffset: r1.mmapOffset + 4096n }] }, { needReply: true }),
    );
    await nacked(fe.request({ request: Request.SET_MEM_TABLE, regions: [r0, { ...r1, size: r1.size * 4n }] }, { needReply: true }));
    // Two regions over the same guest-physical range.
    await nacked(fe.request({ request: Request.SET_MEM_TABLE, regions: [r0, { ...r1, guestPhysAddr: 4096n }] }, { needReply: true }));
    // The same front-end range twice.
    await nacked(fe.request({ request: Request.SET_MEM_TABLE, regions: [r0, { ...r1, userAddr: r0.userAddr }] }, { needReply: true }));
    expect(countGuestMappings()).toBe(mappings);
    expect(warnings.filter((w) => w.includes('SET_MEM_TABLE failed')).length).toBe(4);
  });

  it('refuses ring addresses outside memory or misaligned', async () => {
    const fe = await negotiated();
    await fe.request({ request: Request.SET_MEM_TABLE, regions: memory.table() }, { needReply: true });
    await fe.request({ request: Request.SET_VRING_NUM, index: 0, num: 256 }, { needReply: true });
    const desc = memory.alloc(4096, 4096);
    const avail = memory.alloc(1024, 64);
    const used = memory.alloc(4096, 64);
    const addr = (d: bigint, a: bigint, u: bigint) =>
      fe.request(
        { request: Request.SET_VRING_ADDR, index: 0, flags: 0, descUserAddr: d, availUserAddr: a, usedUserAddr: u, logGuestAddr: 0n },
        { needReply: true },
      );
    const ua = (gpa: number) => memory.userAddr(gpa);
    await nacked(addr(ua(desc) + 8n, ua(avail), ua(used))); // descriptor table not 16-aligned
    await nacked(addr(ua(desc), ua(avail) + 1n, ua(used))); // avail not 2-aligned
    await nacked(addr(ua(desc), ua(avail), ua(used) + 2n)); // used not 4-aligned
    await nacked(addr(0x1000n, ua(avail), ua(used))); // outside every region
    const end = memory.table()[0];
    await nacked(addr(end.userAddr + end.size - 16n, ua(avail), ua(used))); // runs off the region's end
    await addr(ua(desc), ua(avail), ua(used)); // and the right one is accepted
  });
});

describe('a peer that misbehaves on the socket', () => {
  it('never reads its replies: the back-end gives up on it, and serves the next front-end', async () => {
    const accepted = once(backend, 'connect');
    const fd = native.connect(backend.socketPath);
    await accepted;
    const gone = once(backend, 'disconnect');
    const req = encodeRequest({ request: Request.GET_FEATURES }, false).bytes;
    let sent = 0;
    try {
      // Each request earns a 20-byte reply that is never read, until the back-end's writes would block.
      for (; sent < 200_000; sent++) {
        if (native.sendmsg(fd, req, []) < 0) await new Promise((r) => setTimeout(r, 1));
        if (!backend.connected) break;
      }
    } catch {
      // EPIPE/ECONNRESET: it closed on us
    }
    const [reason] = (await gone) as [Error | undefined];
    expect(reason?.message).toMatch(/does not read|short write/);
    native.close(fd);
    const fe = await negotiated();
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBeGreaterThan(0n);
  });

  it('sends ring setup out of order (kick before memory and address): refused or held, never a crash', async () => {
    const fe = await negotiated();
    const kick = native.eventfd();
    await fe.request({ request: Request.SET_VRING_KICK, index: 1, fd: kick }, { needReply: true });
    await fe.request({ request: Request.SET_VRING_ENABLE, index: 1, num: 1 }, { needReply: true });
    native.eventfdWrite(kick); // a kick for a ring with no memory and no address
    native.close(kick);
    await nacked(
      fe.request(
        { request: Request.SET_VRING_ADDR, index: 1, flags: 0, descUserAddr: 0n, availUserAddr: 0n, usedUserAddr: 0n, logGuestAddr: 0n },
        { needReply: true },
      ),
    );
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBeGreaterThan(0n);
  });
});

describe('an fd the front-end turns against the worker', () => {
  it('a call eventfd it filled to the brim and made blocking cannot hang the back-end', async () => {
    let got = 0;
    const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory, onFrames: (f) => (got += f.length) });
    const hostile = native.eventfd();
    await driver.control.request({ request: Request.SET_VRING_CALL, index: 0, fd: hostile }, { needReply: true });
    native.eventfdWrite(hostile, 0xffff_ffff_ffff_fffen); // the counter's maximum: the next write blocks
    native.setBlocking(hostile, true); // and our copy shares the file description: it blocks too
    for (let i = 0; i < 8; i++) driver.send(makeFrame(i));
    driver.flush();
    await new Promise((r) => setTimeout(r, 200)); // the worker is now stuck calling the guest
    const t0 = Date.now();
    await driver.resendMemTable(); // needs the worker stopped: it must be interrupted
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await driver.control.requestU64({ request: Request.GET_FEATURES })).toBeGreaterThan(0n);
    const gone = once(backend, 'disconnect');
    driver.close();
    await gone;
    native.close(hostile);
  });
});

describe('the memory table replaced while traffic flows', () => {
  it('quiesces and resumes the worker each time; every frame comes back intact', async () => {
    let next = 0;
    let bad = 0;
    const driver = await VirtioNetDriver.start({
      socketPath: backend.socketPath,
      memory,
      onFrames: (frames) => {
        for (const f of frames) if (!f.equals(macSwapped(makeFrame(next++)))) bad++;
      },
    });
    const total = 30_000;
    let sent = 0;
    let remaps = 0;
    for (let round = 0; sent < total; round++) {
      while (sent < total && driver.txSpace > 0) driver.send(makeFrame(sent++));
      driver.flush();
      if (round % 4 === 0) {
        await driver.resendMemTable();
        remaps++;
      }
      await driver.waitTxSpace();
    }
    for (let t = 0; t < 2000 && next < total; t++) await new Promise((r) => setTimeout(r, 2));
    driver.close();
    expect(remaps).toBeGreaterThan(20);
    expect(next).toBe(total);
    expect(bad).toBe(0);
    expect(warnings).toEqual([]);
  });
});
