/**
 * Connections come and go: a front-end that vanishes mid-traffic, a new one that takes over, and a
 * thousand cycles that must leave no fd and no mapping behind.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { VhostUserBackend } from '../lib/backend';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { useBackendFixture } from './helpers/fixture';
import { countGuestMappings, fdKinds, macSwapped, makeFrame } from './helpers/frames';

let backend: VhostUserBackend;
let memory: GuestMemory;

const fx = useBackendFixture();

beforeEach(() => {
  backend = fx.start();
  memory = fx.memory;
});

/** Connects a fresh driver on the shared memory; `onFrames` checks each frame against `state.next`. */
async function connect(state: { next: number; bad: number }) {
  memory.resetAllocator();
  const driver = await VirtioNetDriver.start({
    socketPath: backend.socketPath,
    memory,
    onFrames: (frames) => {
      for (const f of frames) {
        if (!f.equals(macSwapped(makeFrame(state.next)))) state.bad++;
        state.next++;
      }
    },
  });
  return driver;
}

async function disconnect(driver: VirtioNetDriver) {
  const gone = once(backend, 'disconnect');
  driver.close();
  await gone;
}

/** Sends frames first..first+count-1 as fast as the ring allows; stops early if `stop()` says so. */
async function send(driver: VirtioNetDriver, first: number, count: number, stop: () => boolean = () => false) {
  let i = first;
  while (i < first + count && driver.isOpen && !stop()) {
    while (i < first + count && driver.txSpace > 0) driver.send(makeFrame(i++));
    driver.flush();
    await driver.waitTxSpace();
  }
  return i - first;
}

async function waitFor(cond: () => boolean, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  return cond();
}

describe('connection lifecycle', () => {
  it('survives a front-end leaving mid-traffic and serves the next one', async () => {
    const first = { next: 0, bad: 0 };
    const d1 = await connect(first);
    await send(d1, 0, 1_000_000, () => first.next >= 20_000);
    expect(first.next).toBeGreaterThanOrEqual(20_000);
    await disconnect(d1); // frames are still in flight in both rings

    const second = { next: 0, bad: 0 };
    const d2 = await connect(second);
    await send(d2, 0, 20_000);
    expect(await waitFor(() => second.next === 20_000)).toBe(true);
    expect(second.bad).toBe(0);
    expect(first.bad).toBe(0);
    await disconnect(d2);
  });

  it('leaks no fd and no mapping over 1,000 connect/disconnect cycles', async () => {
    const cycle = async (i: number) => {
      const state = { next: 0, bad: 0 };
      const d = await connect(state);
      // Traffic on some cycles, so that workers run when the connection drops.
      if (i % 10 === 0) await send(d, 0, 64);
      if (i === 1) expect(countGuestMappings()).toBe(3); // ours + the back-end's two regions
      await disconnect(d);
      expect(state.bad).toBe(0);
    };
    await cycle(0); // warm-up: lazily created fds (epoll, libuv) exist from here on
    const fdsBefore = fdKinds();
    const mapsBefore = countGuestMappings();
    expect(mapsBefore).toBe(1); // the front-end's own
    for (let i = 1; i <= 1000; i++) await cycle(i);
    expect(fdKinds()).toEqual(fdsBefore);
    expect(countGuestMappings()).toBe(mapsBefore);
  }, 120_000);
});
