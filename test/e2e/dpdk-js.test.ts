/**
 * End to end with DPDK through the js port (issue #11's acceptance): testpmd's virtio-user PMD is the
 * guest, in `io` mode with `start tx_first`, and our back-end runs the js port with a MAC-swap echo
 * written in JavaScript. Every frame testpmd sends crosses into JS and back: >= 1,000,000 frames,
 * counts exact both ways, no drop or error in our statistics; one and two queue pairs, split and
 * packed rings. The shared fixture and checks are in ./dpdk.ts.
 *
 * The echo runs in this process, not as a child (examples/js-echo.mjs): the counts are then read
 * straight from the device (no statistics over a pipe, no race with a child's exit), and the frames
 * the JS loop handled can be counted and compared with both sides exactly.
 *
 * With two pairs, send() picks the pair by flow hash: testpmd injects many flows (--txonly-multi-flow)
 * so that both pairs carry frames both ways, but a frame injected on one pair may come back on the
 * other, so only the sums over the pairs are compared exactly (./dpdk.ts, `samePair: false`).
 *
 * Skips when DPDK is not installed, except in CI (CI=true), where dpdkAvailable() throws.
 */
import { describe, expect, it } from 'vitest';
import type { NetDevice } from '../../lib/net/device';
import type { QueueStats } from '../../lib/net/stats';
import { VirtioFeature, hasBit as has } from '../../lib/protocol/constants';
import { expectRingNegotiated } from './features';
import { DpdkBackend, checkIoRun, dpdkAvailable, runTestpmd, totals, txRate, type TestpmdResult } from './dpdk';

const HAVE_DPDK = dpdkAvailable();

/** virtio-user ring size (queue_size): every ring. */
const QUEUE_SIZE = 256;
/** `start tx_first 4` with 32-frame bursts: 128 frames circulate per queue, half a ring. */
const TX_FIRST_BURSTS = 4;
const FRAMES = 1_000_000;

const fx = new DpdkBackend('DPDK testpmd through the JS echo (js port)');

interface Variant {
  queues: 1 | 2;
  packed: boolean;
  mrgRxbuf: boolean;
  inOrder: boolean;
}

const label = (v: Variant) => `queues=${v.queues} ${v.packed ? 'packed' : 'split'} mrg_rxbuf=${+v.mrgRxbuf} in_order=${+v.inOrder}`;

/** What the echo did: frames it swapped and sent back, and how its loop ended. */
interface Echo {
  frames: number;
  ended: Promise<string>;
}

/** The MAC-swap echo of examples/js-echo.mjs, counting frames; `ended` says how its loop ended. */
function startEcho(device: NetDevice): Echo {
  const echo = { frames: 0 } as Echo;
  const loop = async (): Promise<string> => {
    try {
      for await (const batch of device.frames()) {
        for (const f of batch) {
          for (let i = 0; i < 6; i++) {
            const b = f[i];
            f[i] = f[i + 6];
            f[i + 6] = b;
          }
        }
        await device.send(batch);
        echo.frames += batch.length;
      }
      return 'done';
    } catch (err) {
      return `send failed: ${(err as Error).message}`;
    }
  };
  echo.ended = loop();
  return echo;
}

/**
 * Runs testpmd io through the echo. After testpmd's `stop` (connection still up) our counters are
 * taken once our TX queues have every frame testpmd sent (fx.settle) and our RX queues have every
 * frame the echo took: nothing is then on its way through JS, and the comparison is exact.
 */
async function runIo(v: Variant, echo: Echo): Promise<{ r: TestpmdResult; ours: QueueStats[]; echoed: number }> {
  let ours: QueueStats[] = [];
  let echoed = -1;
  const r = await runTestpmd({
    socketPath: fx.socketPath,
    forwardMode: 'io',
    txFirstBursts: TX_FIRST_BURSTS,
    queueSize: QUEUE_SIZE,
    queues: v.queues,
    packedVq: v.packed,
    mrgRxbuf: v.mrgRxbuf,
    inOrder: v.inOrder,
    untilTxPackets: FRAMES,
    timeoutMs: 20_000,
    // Many flows (tx_first varies the source address per frame), so send()'s flow hash uses every pair.
    extraAppArgs: ['--txonly-multi-flow'],
    afterPhase: async (phase) => {
      await fx.settle(phase);
      const deadline = Date.now() + 3_000;
      const echoedAll = () => {
        const t = totals(fx.stats());
        return t.rx.packets === t.tx.packets;
      };
      while (!echoedAll() && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
      ours = fx.stats();
      echoed = echo.frames;
    },
  });
  return { r, ours, echoed };
}

describe.skipIf(!HAVE_DPDK)('DPDK testpmd (virtio-user, io --tx-first) through a JS echo on the js port', () => {
  const variants: Variant[] = [
    { queues: 1, packed: false, mrgRxbuf: true, inOrder: false },
    { queues: 2, packed: false, mrgRxbuf: false, inOrder: true },
    { queues: 1, packed: true, mrgRxbuf: true, inOrder: true },
    { queues: 2, packed: true, mrgRxbuf: false, inOrder: false },
  ];
  for (const v of variants) {
    it(`${FRAMES.toLocaleString('en')} frames each way, counts exact, no drops (${label(v)})`, async () => {
      fx.start({ port: 'js', queuePairs: v.queues });
      const echo = startEcho(fx.backend.device);
      const { r, ours, echoed } = await runIo(v, echo);
      const population = TX_FIRST_BURSTS * 32 * v.queues;
      const s = checkIoRun(r, ours, { frames: FRAMES, population, samePair: false });
      await fx.disconnected();
      // The disconnect ends the loop cleanly: frames() finishes, no send was cut short.
      expect(await echo.ended).toBe('done');
      // JS saw each frame testpmd sent exactly once, and sent each back as the view it got (no copy).
      const t = totals(ours);
      expect(BigInt(echoed)).toBe(t.tx.packets);
      expect(echo.frames).toBe(echoed);
      expect(fx.backend.device.sendCounts).toEqual({ referenced: echoed, copied: 0 });
      for (const [p, pair] of t.pairs.entries())
        expect({ p, tx: pair.tx.packets > 0n, rx: pair.rx.packets > 0n }).toEqual({ p, tx: true, rx: true });
      expectRingNegotiated(fx.logs, v.packed);
      const [acked] = fx.ackedFeatures();
      expect(has(acked, VirtioFeature.IN_ORDER)).toBe(v.inOrder && has(fx.backend.device.features, VirtioFeature.IN_ORDER));
      expect(fx.warnings()).toEqual([]);
      fx.rates.push(
        `  io ${label(v)}: ${Math.round(txRate(r) / 1000)} kframes/s each way (${s.txPackets} frames in ${r.forwardingMs} ms, ` +
          `${t.pairs.map((p, i) => `pair ${i}: tx ${p.tx.packets} rx ${p.rx.packets}`).join(', ')})`,
      );
    }, 40_000);
  }
});
