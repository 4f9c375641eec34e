/**
 * Several queue pairs: a worker thread per pair by default (fewer with `workers`), each named
 * vhu-<device>-w<k>; traffic on every pair through the loopback port, each pair with its own port
 * instance; SET_VRING_ENABLE honoured per ring (a disabled pair stops, the others go on). The
 * back-end runs in this process, so its threads are in /proc/self/task.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { NetDevice } from '../lib/net/device';
import { Request } from '../lib/protocol/constants';
import { useBackendFixture } from './helpers/fixture';
import { macSwapped, makeFrame } from './helpers/frames';
import { sleep, until } from './helpers/until';

const fx = useBackendFixture();

/** The names of this process's threads (at most 15 characters each, as the kernel keeps them). */
function threadNames(): string[] {
  const out: string[] = [];
  for (const task of fs.readdirSync('/proc/self/task')) {
    try {
      out.push(fs.readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim());
    } catch {} // a thread that ended meanwhile
  }
  return out;
}

/** Threads of this device: its worker names, each counted as often as a thread carries it. */
function deviceThreads(device: NetDevice): string[] {
  const prefix = device.workerNames[0].replace(/w0$/, '');
  return threadNames()
    .filter((n) => n.startsWith(prefix))
    .sort();
}

/** Sends `count` frames on `pair` (frame numbers from `first`), waiting for ring space as needed. */
async function pump(driver: VirtioNetDriver, pair: number, first: number, count: number): Promise<void> {
  let sent = 0;
  while (sent < count) {
    while (sent < count && driver.txSpaceOf(pair) > 0) driver.send(makeFrame(first + sent++), 'single', pair);
    driver.flush();
    if (driver.txSpaceOf(pair) === 0) await driver.waitTxSpace();
  }
}

/** Collects what comes back per pair and checks it is what was sent, in order. */
function receiver(pairs: number, firstOf: (pair: number) => number) {
  const got = Array.from({ length: pairs }, () => 0);
  const bad: string[] = [];
  const onFrames = (frames: Buffer[], pair: number) => {
    for (const f of frames) {
      const i = firstOf(pair) + got[pair]++;
      if (bad.length < 3 && !f.equals(macSwapped(makeFrame(i)))) bad.push(`pair ${pair}: frame ${i} differs`);
    }
  };
  return { got, bad, onFrames };
}

async function enablePair(driver: VirtioNetDriver, pair: number, on: boolean): Promise<void> {
  for (const index of [2 * pair, 2 * pair + 1]) {
    await driver.control.request({ request: Request.SET_VRING_ENABLE, index, num: on ? 1 : 0 }, { needReply: true });
  }
}

describe('queue pairs and their worker threads', () => {
  it('two pairs get two named worker threads, one pair on each', async () => {
    const backend = fx.start({ queuePairs: 2 });
    const device = backend.device;
    expect(device.workers).toBe(2);
    const [w0, w1] = device.workerNames;
    expect(w0).toMatch(/^vhu-\d+-w0$/);
    expect(w1).toBe(w0.replace(/w0$/, 'w1'));
    const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory, queuePairs: 2 });
    expect(await until(() => deviceThreads(device).length === 2)).toBe(true);
    expect(deviceThreads(device)).toEqual([w0, w1]);
    driver.close();
  });

  it('with workers: 1 both pairs share one thread', async () => {
    const backend = fx.start({ queuePairs: 2, workers: 1 });
    const device = backend.device;
    expect(device.workerNames).toHaveLength(1);
    const r = receiver(2, (p) => p * 1000);
    const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory, queuePairs: 2, onFrames: r.onFrames });
    await Promise.all([pump(driver, 0, 0, 500), pump(driver, 1, 1000, 500)]);
    expect(await until(() => r.got[0] === 500 && r.got[1] === 500)).toBe(true);
    expect(r.bad).toEqual([]);
    expect(deviceThreads(device)).toEqual(device.workerNames);
    driver.close();
  });

  it('carries traffic on both pairs, frames intact, every queue counted', async () => {
    const backend = fx.start({ queuePairs: 2 });
    const r = receiver(2, (p) => p * 100_000);
    const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory, queuePairs: 2, onFrames: r.onFrames });
    await Promise.all([pump(driver, 0, 0, 20_000), pump(driver, 1, 100_000, 20_000)]);
    expect(await until(() => r.got[0] === 20_000 && r.got[1] === 20_000), `received ${r.got}`).toBe(true);
    expect(r.bad).toEqual([]);
    const stats = backend.device.stats();
    for (const q of [0, 1, 2, 3]) expect(stats[q].packets, `queue ${q}`).toBe(20_000n);
    expect(fx.warnings).toEqual([]);
    driver.close();
  });

  it('a pair whose rings are disabled stops while the other goes on; re-enabled, it resumes', async () => {
    const backend = fx.start({ queuePairs: 2 });
    const r = receiver(2, (p) => p * 100_000);
    const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory, queuePairs: 2, onFrames: r.onFrames });
    await Promise.all([pump(driver, 0, 0, 1000), pump(driver, 1, 100_000, 1000)]);
    expect(await until(() => r.got[0] === 1000 && r.got[1] === 1000)).toBe(true);

    // Pair 0 carries traffic while pair 1 is disabled and then offered frames it must not take.
    const pair0 = pump(driver, 0, 1000, 20_000);
    await enablePair(driver, 1, false);
    const stats = () => backend.device.stats();
    const pair1Before = [stats()[2].packets, stats()[3].packets];
    for (let i = 0; i < 50; i++) driver.send(makeFrame(101_000 + i), 'single', 1);
    driver.flush();
    driver.kickTx(1);
    await pair0;
    expect(await until(() => r.got[0] === 21_000), `pair 0 received ${r.got[0]}`).toBe(true);
    await sleep(100);
    expect([stats()[2].packets, stats()[3].packets]).toEqual(pair1Before);
    expect(r.got[1]).toBe(1000);

    await enablePair(driver, 1, true);
    expect(await until(() => r.got[1] === 1050), `pair 1 received ${r.got[1]}`).toBe(true);
    await pump(driver, 1, 101_050, 1000);
    expect(await until(() => r.got[1] === 2050)).toBe(true);
    expect(r.bad).toEqual([]);
    driver.close();
  });

  it('serves 16 pairs on 16 threads', async () => {
    const backend = fx.start({ queuePairs: 16 });
    const r = receiver(16, (p) => p * 1000);
    const driver = await VirtioNetDriver.start({
      socketPath: backend.socketPath,
      memory: fx.memory,
      queuePairs: 16,
      queueSize: 64,
      onFrames: r.onFrames,
    });
    await Promise.all(Array.from({ length: 16 }, (_, p) => pump(driver, p, p * 1000, 300)));
    expect(await until(() => r.got.every((n) => n === 300)), `received ${r.got}`).toBe(true);
    expect(r.bad).toEqual([]);
    expect(backend.device.stats().every((q) => q.packets === 300n)).toBe(true);
    expect(deviceThreads(backend.device)).toHaveLength(16);
    driver.close();
  });
});

describe('the workers option', () => {
  it('is checked once, in the library, with a one-line error', () => {
    expect(() => new NetDevice({ queuePairs: 2, workers: 3 })).toThrow(
      'worker threads must be an integer in 1..2 (at most one per queue pair), got 3',
    );
    expect(() => new NetDevice({ workers: 0 })).toThrow(/^worker threads must be an integer in 1\.\.1/);
    expect(() => new NetDevice({ queuePairs: 4, workers: 1.5 })).toThrow(/got 1\.5$/);
  });

  it('is checked by the CLI, which names the flag', () => {
    const cli = path.join(__dirname, '..', 'dist', 'cli.js');
    let stderr = '';
    try {
      execFileSync(process.execPath, [cli, 'net', '--socket', path.join(fx.dir, 's.sock'), '--queues', '2', '--workers', '4'], {
        stdio: 'pipe',
      });
    } catch (err) {
      stderr = String((err as { stderr: Buffer }).stderr);
    }
    expect(stderr.split('\n')[0]).toBe('vhost-user: --workers must be an integer in 1..2 (at most one per queue pair), got 4');
  });
});
