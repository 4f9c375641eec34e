/**
 * pcap capture of a device: loopback traffic captured in both directions, read back by our own
 * reader and by tcpdump; counts against the statistics; snaplen; a ring too small (drops counted,
 * never waited for); a write error; the CLI's --pcap; capture started and stopped in a loop during
 * traffic leaves no fd or mapping behind.
 */
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { useBackendFixture } from './helpers/fixture';
import { countMappings, fdKinds, macSwapped, makeFrame } from './helpers/frames';
import { readPcap, type PcapRecord } from './helpers/pcap';
import { findProgram, missing, skipUnless } from './helpers/peers';
import { until } from './helpers/until';

const fx = useBackendFixture();
const CLI = path.resolve(__dirname, '../dist/cli.js');

async function pump(driver: VirtioNetDriver, first: number, count: number, received: () => number) {
  const target = received() + count;
  for (let i = first; i < first + count;) {
    while (i < first + count && driver.txSpace > 0) driver.send(makeFrame(i++), i % 2 ? 'single' : 'split-header');
    driver.flush();
    if (i < first + count) await driver.waitTxSpace();
  }
  expect(await until(() => received() === target)).toBe(true);
}

/** Checks every record is frame i as sent (TX) or as the loopback returned it (RX); returns how many of each. */
function classify(records: PcapRecord[], snaplen = Infinity) {
  const seen = { tx: new Set<number>(), rx: new Set<number>() };
  for (const r of records) {
    const i = r.data.readUInt32BE(14);
    const sent = makeFrame(i);
    expect(r.length).toBe(sent.length);
    const cut = (b: Buffer) => b.subarray(0, Math.min(b.length, snaplen));
    const way = r.data.equals(cut(sent)) ? 'tx' : r.data.equals(cut(macSwapped(sent))) ? 'rx' : null;
    expect(way, `record of frame ${i} is neither the frame sent nor its reply`).not.toBeNull();
    expect(seen[way!].has(i), `frame ${i} ${way} recorded twice`).toBe(false);
    seen[way!].add(i);
  }
  return seen;
}

/** Our front-end on the fixture's back-end, counting what comes back; send(first, count) pumps frames and waits for them. */
async function startDriver(queuePairs = 1) {
  let received = 0;
  const driver = await VirtioNetDriver.start({
    socketPath: fx.backend.socketPath,
    memory: fx.memory,
    queuePairs,
    onFrames: (f) => (received += f.length),
  });
  return { driver, received: () => received, send: (first: number, count: number) => pump(driver, first, count, () => received) };
}

const captureMappings = () => countMappings('vhu-capture');

describe('pcap capture', () => {
  it('captures both directions; tcpdump reads the file; counts equal the statistics', async () => {
    const backend = fx.start();
    const file = path.join(fx.dir, 'loop.pcap');
    const capture = backend.device.capture(file);
    const { driver, send } = await startDriver();
    await send(0, 3000);
    const counts = await capture.stop();
    const [rx, tx] = backend.device.stats();
    expect(counts).toEqual({ frames: Number(tx.packets + rx.packets), dropped: 0 });
    expect(tx.packets).toBe(3000n);

    const pcap = readPcap(file);
    expect(pcap).toMatchObject({ nanoseconds: true, version: [2, 4], snaplen: 262144, linktype: 1 });
    expect(pcap.records).toHaveLength(6000);
    const seen = classify(pcap.records);
    expect([seen.tx.size, seen.rx.size]).toEqual([3000, 3000]);
    const now = Date.now() / 1000;
    for (const r of pcap.records) expect(Math.abs(r.seconds - now)).toBeLessThan(60);

    // Stopped: more traffic is not captured, and the file stays as it was.
    await send(3000, 100);
    expect(readPcap(file).records).toHaveLength(6000);
    driver.close();

    const tcpdump = findProgram('tcpdump');
    if (skipUnless(missing([[tcpdump !== null, 'tcpdump (Debian package tcpdump)']]), 'pcap: tcpdump -r')) return;
    const r = spawnSync(tcpdump!, ['-r', file, '-nn', '--time-stamp-precision=nano'], { encoding: 'utf8', maxBuffer: 1 << 28 });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => /^\d/.test(l)); // not the hex dump lines
    expect(lines).toHaveLength(6000);
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{9} .*ethertype Unknown \(0x88b5\)/);
  });

  it('keeps snaplen bytes of each frame and the length on the wire; two pairs into one file', async () => {
    const backend = fx.start({ queuePairs: 2 });
    const file = path.join(fx.dir, 'snap.pcap');
    const capture = backend.device.capture(file, { snaplen: 100 });
    const { driver, send } = await startDriver(2);
    await send(0, 2000);
    const counts = await capture.stop();
    const stats = backend.device.stats();
    expect(stats[3].packets).toBeGreaterThan(0n); // the second pair carried traffic
    expect(counts.frames).toBe(Number(stats.reduce((n, q) => n + q.packets, 0n)));
    const pcap = readPcap(file);
    expect(pcap.snaplen).toBe(100);
    expect(pcap.records).toHaveLength(4000);
    for (const r of pcap.records) expect(r.data.length).toBe(Math.min(100, r.length));
    const seen = classify(pcap.records, 100);
    expect([seen.tx.size, seen.rx.size]).toEqual([2000, 2000]);
    driver.close();
  });

  it('counts the frames a full ring could not take, and never holds up the data path', async () => {
    const backend = fx.start();
    const file = path.join(fx.dir, 'small.pcap');
    // 64 KiB holds ~80 records of these frames; the loopback moves 512 per round of the driver.
    const capture = backend.device.capture(file, { ringBytes: 65536 });
    const { driver, send } = await startDriver();
    await send(0, 5000);
    const counts = await capture.stop();
    const [rx, tx] = backend.device.stats();
    expect(tx.packets).toBe(5000n);
    expect(counts.dropped).toBeGreaterThan(0);
    expect(counts.frames + counts.dropped).toBe(10_000);
    expect(BigInt(counts.dropped)).toBe(rx.captureDrops + tx.captureDrops);
    expect(readPcap(file).records).toHaveLength(counts.frames);
    classify(readPcap(file).records);
    driver.close();
  });

  it('refuses bad options, an unwritable file and a second capture, each in one line', async () => {
    const backend = fx.start();
    expect(() => backend.device.capture(path.join(fx.dir, 'x.pcap'), { snaplen: 0 })).toThrow(
      /^capture: snaplen must be an integer in 1\.\.262144, got 0$/,
    );
    expect(() => backend.device.capture(path.join(fx.dir, 'x.pcap'), { ringBytes: 100000 })).toThrow(/power of two/);
    expect(() => backend.device.capture(path.join(fx.dir, 'nope', 'x.pcap'))).toThrow(
      /^capture: cannot write .*nope\/x\.pcap: no such file or directory$/,
    );
    const first = backend.device.capture(path.join(fx.dir, 'a.pcap'));
    expect(() => backend.device.capture(path.join(fx.dir, 'b.pcap'))).toThrow(
      /a capture to .*a\.pcap is running on this device: stop it first/,
    );
    await first.stop();
    // Every write to /dev/full fails (ENOSPC): the pcap header already, so capture() refuses it.
    expect(() => backend.device.capture('/dev/full')).toThrow(/ENOSPC|no space/i);
    const again = backend.device.capture(path.join(fx.dir, 'c.pcap'));
    expect((await again.stop()).frames).toBe(0);
    expect(readPcap(path.join(fx.dir, 'c.pcap')).records).toHaveLength(0);
  });

  it('survives close() of the device while capturing: stop() still writes everything captured', async () => {
    const backend = fx.start();
    const file = path.join(fx.dir, 'closed.pcap');
    const capture = backend.device.capture(file);
    const { driver, send } = await startDriver();
    await send(0, 500);
    backend.close();
    const counts = await capture.stop();
    expect(counts).toEqual({ frames: 1000, dropped: 0 });
    expect(readPcap(file).records).toHaveLength(1000);
    driver.close();
  });

  it('started and stopped 200 times during traffic: every file whole, no fd or mapping left', async () => {
    const backend = fx.start({ queuePairs: 2 });
    let bad = 0;
    const { driver, send, received } = await startDriver(2);
    await send(0, 100); // connected and warm before the baseline
    const fdsBefore = fdKinds();
    const mapsBefore = captureMappings();
    let stop = false;
    const traffic = (async () => {
      let i = 100;
      while (!stop) {
        await send(i, 200);
        i += 200;
      }
      return i - 100;
    })();
    let captured = 0;
    for (let k = 0; k < 200; k++) {
      const file = path.join(fx.dir, `churn-${k % 4}.pcap`);
      const capture = backend.device.capture(file, { ringBytes: 65536 });
      await new Promise((r) => setTimeout(r, k % 3));
      const counts = await capture.stop();
      const records = readPcap(file).records;
      if (records.length !== counts.frames) bad++;
      classify(records);
      captured += counts.frames;
    }
    stop = true;
    const sent = await traffic;
    expect(bad).toBe(0);
    expect(captured).toBeGreaterThan(0);
    expect(received()).toBe(100 + sent);
    expect(captureMappings()).toBe(mapsBefore);
    expect(fdKinds()).toEqual(fdsBefore);
    driver.close();
  });
});

describe('vhost-user --pcap', () => {
  it('captures the device, reports counts on SIGUSR1 and on exit, and the file is whole', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-pcap-'));
    const socketPath = path.join(dir, 'net.sock');
    const file = path.join(dir, 'cli.pcap');
    const child = spawn(process.execPath, [CLI, 'net', '--socket', socketPath, '--port', 'loopback', '--pcap', file, '--snaplen', '64'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const memory = new GuestMemory();
    try {
      expect(await until(() => out.includes('serving virtio-net'))).toBe(true);
      let received = 0;
      const driver = await VirtioNetDriver.start({ socketPath, memory, onFrames: (f) => (received += f.length) });
      await pump(driver, 0, 1000, () => received);
      child.kill('SIGUSR1');
      expect(await until(() => out.includes(`pcap ${file}: 2000 frames captured, 0 not captured`))).toBe(true);
      driver.close();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toContain(`pcap ${file}: 2000 frames written, 0 not captured`);
      const pcap = readPcap(file);
      expect(pcap.snaplen).toBe(64);
      expect(pcap.records).toHaveLength(2000);
      classify(pcap.records, 64);
    } finally {
      child.kill('SIGKILL');
      memory.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses --snaplen without --pcap, and --pcap with two sockets', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'net', ...args], { encoding: 'utf8' });
    const a = run('--socket', '/tmp/a.sock', '--snaplen', '100');
    expect([a.status, a.stderr.split('\n')[0]]).toEqual([2, 'vhost-user: --snaplen needs --pcap FILE']);
    const b = run('--socket', '/tmp/a.sock', '--socket', '/tmp/b.sock', '--pcap', '/tmp/x.pcap');
    expect([b.status, b.stderr.split('\n')[0]]).toEqual([2, 'vhost-user: --pcap captures one device: give one --socket']);
    const c = run('--socket', '/tmp/a.sock', '--pcap', '/tmp/x.pcap', '--snaplen', '0');
    expect([c.status, c.stderr.split('\n')[0]]).toEqual([2, "vhost-user: --snaplen must be an integer in 1..262144, got '0'"]);
  });
});
