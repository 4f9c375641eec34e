/**
 * End to end with DPDK through the switch (issue #13's acceptance): ONE testpmd with two virtio-user
 * ports, each on a socket of a switch in this process (lib/net/switch.ts), in `io` mode with
 * `start tx_first`: what port 0 receives goes out of port 1 and back, so every frame crosses the
 * switch again and again. >= 1,000,000 frames, counts exact on both sides; split and packed rings.
 *
 * What a learning switch does with this traffic: `tx_first` sends on each port frames from that
 * port's own MAC to testpmd's peer address (02:00:00:00:00:0N), which never sends: unknown unicast,
 * flooded to the only other port of the VLAN. testpmd forwards each frame unchanged out of the other
 * port, which is the port the frame came from on the switch's side: a frame from port 0's MAC always
 * enters through socket A, one from port 1's MAC through B. So each MAC is learnt once, behind its own
 * port, and never moves; every frame is flooded exactly once; nothing is dropped.
 *
 * Exactness: testpmd's io engine forwards within one burst (no queue of its own) and drops nothing
 * (checked), so once it stops, each direction's injected frames all end up in the RX ring of the port
 * they were going to: our device's RX count minus testpmd's RX count is the injected population,
 * exactly, on each port.
 *
 * Skips when DPDK is not installed, except in CI (CI=true), where dpdkAvailable() throws.
 */
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VhostUserBackend } from '../../lib/backend';
import { Switch } from '../../lib/net/switch';
import type { QueueStats } from '../../lib/net/stats';
import { expectRingNegotiated } from './features';
import { describeRun, dpdkAvailable, expectNoDropsNorErrors, killAllTestpmd, runTestpmd, txRate, RX, TX } from './dpdk';
import type { PortStats } from './dpdk';

const HAVE_DPDK = dpdkAvailable();

const QUEUE_SIZE = 256;
/** `start tx_first 4` with 32-frame bursts: 128 frames injected per port, half a ring. */
const TX_FIRST_BURSTS = 4;
const POPULATION = TX_FIRST_BURSTS * 32;
const FRAMES = 1_000_000;

let dir = '';
let sw: Switch;
let sides: VhostUserBackend[] = [];
let logs: string[] = [];
const rates: string[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-dpdk-switch-'));
  logs = [];
  sw = new Switch();
  sides = ['a', 'b'].map((name) => {
    const backend = new VhostUserBackend({
      socketPath: path.join(dir, `${name}.sock`),
      device: { port: 'switch' },
      log: (level, message) => logs.push(`${name} ${level}: ${message}`),
    });
    sw.attach(backend, { name });
    backend.start();
    return backend;
  });
});
afterEach(() => {
  killAllTestpmd();
  for (const b of sides) b.close();
  sw.close();
  fs.rmSync(dir, { recursive: true, force: true });
});
afterAll(() => {
  if (rates.length > 0) console.log(`DPDK testpmd (two virtio-user ports) through the switch:\n${rates.join('\n')}`);
});

/** Device i's pair 0: RX (to its guest) and TX (from it). */
const pair = (stats: QueueStats[]) => ({ rx: stats[RX], tx: stats[TX] });

/**
 * After testpmd's `stop` (connection still up): waits until each device's TX took every frame its
 * port sent and the switch has delivered each of them to the other device's RX.
 */
async function settle(ports: PortStats[]): Promise<void> {
  const deadline = Date.now() + 3_000;
  const done = () => {
    const [a, b] = sides.map((s) => pair(s.device.stats()));
    return (
      a.tx.packets === BigInt(ports[0]?.txPackets ?? -1) &&
      b.tx.packets === BigInt(ports[1]?.txPackets ?? -1) &&
      b.rx.packets === a.tx.packets &&
      a.rx.packets === b.tx.packets
    );
  };
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}

/** testpmd's MAC of port `p`, from its start-up line `Port p: AA:BB:...`. */
function portMac(output: string, p: number): string {
  const m = new RegExp(`^Port ${p}: ([0-9A-Fa-f:]{17})`, 'm').exec(output);
  if (!m) throw new Error(`testpmd printed no MAC for port ${p}`);
  return m[1].toLowerCase();
}

describe.skipIf(!HAVE_DPDK)('DPDK testpmd with two virtio-user ports (io --tx-first) through the switch', () => {
  for (const packed of [false, true]) {
    it(`${FRAMES.toLocaleString('en')} frames, counts exact on both sides, none dropped (${packed ? 'packed' : 'split'})`, async () => {
      let ours: { rx: QueueStats; tx: QueueStats }[] = [];
      let counters = sw.counters();
      let table: string[] = [];
      const r = await runTestpmd({
        socketPath: sides[0].socketPath,
        moreSocketPaths: [sides[1].socketPath],
        forwardMode: 'io',
        txFirstBursts: TX_FIRST_BURSTS,
        queueSize: QUEUE_SIZE,
        packedVq: packed,
        mrgRxbuf: true,
        untilTxPackets: FRAMES,
        timeoutMs: 30_000,
        afterPhase: async (phase) => {
          await settle(phase.ports);
          ours = sides.map((s) => pair(s.device.stats()));
          counters = sw.counters();
          // Read while testpmd is connected: a disconnected port's MACs are forgotten at once.
          table = sw
            .macTable()
            .map((e) => `${e.mac} ${e.vlan} ${e.port}`)
            .sort();
        },
      });
      const why = describeRun(r);
      expect(r.stopReason, why).toBe('count');
      expect(r.exitCode, why).toBe(0);
      expect(r.ports.length, why).toBe(2);
      const [p0, p1] = r.ports;
      expect(p0.txPackets, why).toBeGreaterThanOrEqual(FRAMES);
      for (const [p, s] of r.ports.entries()) {
        expect({ p, missed: s.rxMissed, rxErrors: s.rxErrors, nombuf: s.rxNombuf, txErrors: s.txErrors }, why).toEqual({
          p,
          missed: 0,
          rxErrors: 0,
          nombuf: 0,
          txErrors: 0,
        });
        expect(s.txBytes, why).toBe(s.txPackets * 64);
        expect(r.forwardPorts[p]?.txDropped, why).toBe(0);
      }
      // testpmd's loop is closed: what a port sent is what it was given to inject plus what the other received.
      expect(p0.txPackets - p1.rxPackets, why).toBe(POPULATION);
      expect(p1.txPackets - p0.rxPackets, why).toBe(POPULATION);
      // Each device's TX took exactly what its port sent; the switch gave every frame to the other device.
      const [a, b] = ours;
      expect({ a: a.tx.packets, aBytes: a.tx.bytes, b: b.tx.packets, bBytes: b.tx.bytes }, why).toEqual({
        a: BigInt(p0.txPackets),
        aBytes: BigInt(p0.txBytes),
        b: BigInt(p1.txPackets),
        bBytes: BigInt(p1.txBytes),
      });
      expect({ bRx: b.rx.packets, bRxBytes: b.rx.bytes, aRx: a.rx.packets, aRxBytes: a.rx.bytes }, why).toEqual({
        bRx: a.tx.packets,
        bRxBytes: a.tx.bytes,
        aRx: b.tx.packets,
        aRxBytes: b.tx.bytes,
      });
      // What testpmd has not taken yet is each direction's population, waiting in its RX ring.
      expect({ unreceivedA: a.rx.packets - BigInt(p0.rxPackets), unreceivedB: b.rx.packets - BigInt(p1.rxPackets) }, why).toEqual({
        unreceivedA: BigInt(POPULATION),
        unreceivedB: BigInt(POPULATION),
      });
      for (const [i, s] of sides.entries()) expectNoDropsNorErrors(s.device.stats(), `${'ab'[i]}\n${why}`);
      // Learning: each port's MAC behind its own socket, never moved; every frame flooded once (unknown unicast).
      expect(table, why).toEqual([`${portMac(r.output, 0)} 1 a`, `${portMac(r.output, 1)} 1 b`].sort());
      expect({ macs: counters.macs, moves: counters.moves, refused: counters.refused }).toEqual({ macs: 2, moves: 0n, refused: 0n });
      expect(counters.flooded).toBe(a.tx.packets + b.tx.packets);
      expectRingNegotiated(
        logs.filter((l) => l.startsWith('a ')).map((l) => l.slice(2)),
        packed,
      );
      expectRingNegotiated(
        logs.filter((l) => l.startsWith('b ')).map((l) => l.slice(2)),
        packed,
      );
      expect(logs.filter((l) => !/^[ab] info: /.test(l))).toEqual([]);
      // testpmd's exit disconnected both: their MACs are gone.
      expect(sw.macTable()).toEqual([]);
      rates.push(
        `  ${packed ? 'packed' : 'split'}: ${Math.round(txRate(r) / 1000)} kframes/s out of port 0 ` +
          `(${p0.txPackets} + ${p1.txPackets} frames in ${r.forwardingMs} ms)`,
      );
    }, 60_000);
  }
});
