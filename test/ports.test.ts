/**
 * The sink and source ports, driven by our front-end over a real socket: the sink takes every frame
 * the guest sends and gives its buffers back; the source fills every receive buffer the guest posts
 * with a numbered frame of the configured size.
 */
import { describe, expect, it } from 'vitest';
import { VirtioNetDriver, type NetDriverOptions } from '../lib/frontend/net_driver';
import { NetDevice, type PortKind } from '../lib/net/device';
import { PORTS } from '../lib/net/ports/resolve';
import { makeFrame } from './helpers/frames';
import { hasLibrary } from './helpers/peers';
import { useBackendFixture } from './helpers/fixture';
import { until } from './helpers/until';

const fx = useBackendFixture();

describe('sink port', () => {
  for (const pollUs of [undefined, 0]) {
    it(`takes 50,000 frames, returns every buffer and delivers nothing (poll-us ${pollUs ?? 'default'})`, async () => {
      const backend = fx.start({ port: 'sink', pollUs });
      const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory });
      const ringSpace = driver.txSpace;
      let sent = 0;
      let bytes = 0;
      while (sent < 50_000) {
        while (sent < 50_000 && driver.txSpace > 0) {
          const f = makeFrame(sent++);
          bytes += f.length;
          driver.send(f, (['single', 'split-header', 'indirect'] as const)[sent % 3]);
        }
        driver.flush();
        await driver.waitTxSpace();
      }
      expect(await until(() => driver.txSpace === ringSpace)).toBe(true);
      const [rx, tx] = backend.device.stats();
      expect(tx.packets).toBe(50_000n);
      expect(tx.bytes).toBe(BigInt(bytes));
      expect(rx.packets).toBe(0n);
      expect(driver.received).toBe(0);
      expect(tx.drops + tx.errors + rx.drops + rx.errors).toBe(0n);
      expect(fx.warnings).toEqual([]);
      driver.close();
    });
  }
});

const SOURCE_MODES: { name: string; frameSize?: number; pollUs?: number; opts: Partial<NetDriverOptions> }[] = [
  { name: 'default 64 B, EVENT_IDX + MRG_RXBUF', opts: {} },
  { name: '60 B, no EVENT_IDX, no MRG_RXBUF', frameSize: 60, opts: { eventIdx: false, mrgRxbuf: false } },
  { name: '1518 B over 256-byte mergeable buffers', frameSize: 1518, opts: { rxBufferSize: 256 } },
  { name: '512 B, event-driven worker', frameSize: 512, pollUs: 0, opts: { eventIdx: true } },
];

describe('source port', () => {
  for (const mode of SOURCE_MODES) {
    it(`fills receive buffers with numbered frames in order (${mode.name})`, async () => {
      const size = mode.frameSize ?? 64;
      const backend = fx.start({ port: 'source', frameSize: mode.frameSize, pollUs: mode.pollUs });
      let next = 0n;
      let firstBad = '';
      const expectBody = Buffer.alloc(size);
      expectBody.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5]);
      for (let i = 22; i < size; i++) expectBody[i] = i & 0xff;
      const driver = await VirtioNetDriver.start({
        socketPath: backend.socketPath,
        memory: fx.memory,
        ...mode.opts,
        onFrames: (frames) => {
          for (const f of frames) {
            if (!firstBad) {
              const seq = f.length === size ? f.readBigUInt64LE(14) : -1n;
              expectBody.writeBigUInt64LE(next, 14);
              if (seq !== next || !f.equals(expectBody)) firstBad = `frame ${next}: ${f.length} bytes, sequence ${seq}`;
            }
            next++;
          }
        },
      });
      expect(await until(() => next >= 20_000n || firstBad !== '')).toBe(true);
      driver.close();
      expect(firstBad).toBe('');
      const [rx, tx] = backend.device.stats();
      expect(rx.packets).toBeGreaterThanOrEqual(next);
      expect(rx.bytes).toBe(rx.packets * BigInt(size));
      expect(tx.packets + rx.drops + rx.errors).toBe(0n);
      expect(fx.warnings).toEqual([]);
    });
  }

  it('discards what the guest sends while it generates', async () => {
    const backend = fx.start({ port: 'source' });
    const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory });
    for (let i = 0; i < 100; i++) driver.send(makeFrame(i));
    driver.flush();
    expect(await until(() => backend.device.stats()[1].packets === 100n && driver.received > 1000)).toBe(true);
    driver.close();
  });

  it('says so, counts a drop and waits when the guest buffers cannot hold its frames', async () => {
    // No MRG_RXBUF: each receive buffer is 2048 bytes, a 4000-byte frame never fits.
    const backend = fx.start({ port: 'source', frameSize: 4000, pollUs: 0 });
    const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory, mrgRxbuf: false });
    expect(await until(() => fx.warnings.length > 0)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    const [rx] = backend.device.stats();
    expect(driver.received).toBe(0);
    expect(rx.packets).toBe(0n);
    // It waits for the guest to post more buffers rather than retrying in a loop: one drop per wait.
    expect(rx.drops).toBeGreaterThanOrEqual(1n);
    expect(rx.drops).toBeLessThan(10n);
    expect(fx.warnings).toEqual([
      expect.stringContaining('cannot hold 4000-byte frames (negotiate MRG_RXBUF or use a smaller --frame-size)'),
    ]);
    driver.close();
  });

  it('hands a read-only receive buffer back empty and counted, and goes on generating', async () => {
    const backend = fx.start({ port: 'source' });
    let received = 0;
    // 200 buffers posted: descriptors stay free for a raw one.
    const driver = await VirtioNetDriver.start({
      socketPath: backend.socketPath,
      memory: fx.memory,
      rxBuffers: 200,
      onFrames: (f) => (received += f.length),
    });
    try {
      const rx = driver.rings.rx;
      const [a] = rx.reserveDescriptors(1);
      const gpa = fx.memory.alloc(2048, 64);
      rx.writeRawDescriptor(a, gpa, 2048, 0, 0); // no WRITE flag: the device must not write it
      rx.pushRawHead(a);
      if (rx.publish()) driver.kickRx(); // a kick the device asked for must not be swallowed
      expect(await until(() => backend.device.stats()[0].errors === 1n)).toBe(true);
      expect(fx.memory.view(gpa, 2048).every((b) => b === 0)).toBe(true);
      const after = received;
      expect(await until(() => received > after + 1000)).toBe(true);
      expect(backend.device.stats()[0].errors).toBe(1n);
      expect(fx.warnings).toEqual([]);
    } finally {
      driver.close();
    }
  });

  it('refuses a frame size out of range and a frame size for another port', () => {
    expect(() => fx.start({ port: 'source', frameSize: 59 })).toThrow(/frame size must be an integer in 60..65535/);
    expect(() => fx.start({ port: 'loopback', frameSize: 64 })).toThrow(/--frame-size needs the source port/);
    expect(() => fx.start({ port: 'source', frameSize: 1515, mtu: 1500 })).toThrow(/lower --frame-size or raise --mtu/);
    expect(() => fx.start({ port: 'source', frameSize: 1514, mtu: 1500 })).not.toThrow();
  });
});

describe('port registry', () => {
  it('makes natively every port TypeScript lists that needs no system resource', () => {
    // The user port needs libslirp at run time (user-port.test.ts checks it, and its absence).
    const free = PORTS.filter((p) => !p.options.some((o) => o.required) && (p.name !== 'user' || hasLibrary('libslirp.so.0')));
    expect(free.map((p) => p.name)).toEqual(expect.arrayContaining(['loopback', 'sink', 'source']));
    for (const spec of free) {
      const device = new NetDevice({ port: spec.name as PortKind });
      expect(device.port).toBe(spec.name);
      device.native.close();
    }
  });

  it('checks port options in TypeScript, one line each', () => {
    expect(() => new NetDevice({ tap: 'T', queuePairs: 17 })).toThrow('queue pairs must be an integer in 1..16, got 17');
    expect(() => new NetDevice({ port: 'sink', tap: 'T' })).toThrow("--tap needs the tap port, not 'sink'");
    expect(() => new NetDevice({ port: 'tap' })).toThrow("the tap port needs the tap interface name (option 'tap', --tap NAME)");
    expect(() => new NetDevice({ port: 'nope' as PortKind })).toThrow(
      "port must be one of user, loopback, tap, sink, source, js, switch, got 'nope'",
    );
    const textSize = '64' as unknown as number; // a JS caller's mistake
    expect(() => new NetDevice({ port: 'source', frameSize: textSize })).toThrow(
      "frame size must be an integer in 60..65535 bytes, got '64'",
    );
  });

  it('offers the tap offloads only on the tap port', () => {
    const offloads = PORTS.find((p) => p.name === 'tap')?.features ?? 0n;
    expect(offloads).not.toBe(0n);
    const device = new NetDevice({ port: 'loopback' });
    expect(device.features & offloads).toBe(0n);
    device.native.close();
  });
});
