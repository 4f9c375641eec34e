/**
 * A front-end that shrinks its guest memory file after the back-end mapped it: the next touch of
 * the lost pages raises SIGBUS in the back-end's worker thread. The worker survives it, the device
 * stops its data path with a logged reason until a new memory table arrives, and the process and
 * its other devices go on. (QEMU seals its memfds against this; DPDK's and file-backed memory cannot
 * be sealed, so the back-end cannot rely on seals.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { VhostUserBackend } from '../../lib/backend';
import { native } from '../../lib/binding';
import { GuestMemory } from '../../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../../lib/frontend/net_driver';
import { macSwapped, makeFrame } from '../helpers/frames';
import { until as waitUntil } from '../helpers/until';

const REGION = 16 << 20;
const REGION1_GPA = 0x1_0000_0000;

/** This suite's deadline: 5000 ms. */
const until = (cond: () => boolean, ms = 5000) => waitUntil(cond, ms);

describe('guest memory shrunk under the back-end', () => {
  let dir: string;
  const warnings: string[] = [];
  let victim: VhostUserBackend;
  let bystander: VhostUserBackend;
  let bystanderMemory: GuestMemory;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-shrink-'));
    victim = new VhostUserBackend({
      socketPath: path.join(dir, 'victim.sock'),
      device: { port: 'loopback' },
      log: (l, m) => l === 'warn' && warnings.push(m),
    });
    victim.start();
    bystander = new VhostUserBackend({ socketPath: path.join(dir, 'bystander.sock'), device: { port: 'loopback' } });
    bystander.start();
    bystanderMemory = new GuestMemory();
  });

  afterAll(() => {
    victim.close();
    bystander.close();
    bystanderMemory.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('survives SIGBUS in its worker, says why, and serves again after a new memory table', async () => {
    // Our driver keeps its rings and buffers in region 0; region 1 is what gets cut off.
    const memory = new GuestMemory({ sealed: false });
    const received: Buffer[] = [];
    const driver = await VirtioNetDriver.start({ socketPath: victim.socketPath, memory, onFrames: (f) => received.push(...f) });
    driver.send(makeFrame(1));
    driver.flush();
    expect(await until(() => received.length === 1)).toBe(true);

    native.ftruncate(memory.fd, REGION); // region 1 (file offset 16 MiB on) is gone
    const tx = driver.rings.tx;
    const [d] = tx.reserveDescriptors(1);
    tx.writeRawDescriptor(d, REGION1_GPA + 4096, 200, 0, 0); // a frame in the lost pages
    tx.pushRawHead(d);
    driver.flush();
    driver.kickTx();
    expect(await until(() => warnings.some((w) => /guest memory faulted \(SIGBUS\)/.test(w)))).toBe(true);

    // The process goes on, and so does another device.
    let got = 0;
    const other = await VirtioNetDriver.start({
      socketPath: bystander.socketPath,
      memory: bystanderMemory,
      onFrames: (f) => (got += f.length),
    });
    for (let i = 0; i < 100; i++) other.send(makeFrame(i));
    other.flush();
    expect(await until(() => got === 100)).toBe(true);
    other.close();

    // A new memory table (the file grown back) brings the victim's data path back.
    native.ftruncate(memory.fd, 2 * REGION);
    driver.close();
    memory.resetAllocator();
    const again: Buffer[] = [];
    const driver2 = await VirtioNetDriver.start({ socketPath: victim.socketPath, memory, onFrames: (f) => again.push(...f) });
    driver2.send(makeFrame(7));
    driver2.flush();
    expect(await until(() => again.length === 1)).toBe(true);
    expect(again[0].equals(macSwapped(makeFrame(7)))).toBe(true);
    driver2.close();
    memory.close();
  });
});
