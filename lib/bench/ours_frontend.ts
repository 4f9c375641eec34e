/**
 * Our own front-end (VirtioNetDriver, event-driven: it sleeps on the call eventfds and is woken by
 * the back-end) as a child program of the benchmark, so that it runs pinned to its own CPU and its
 * event loop is not shared with the harness:
 *
 *   node dist/bench/ours_frontend.js --socket SOCK --mode latency|tx|rx|io --size N
 *        [--queue-size Q] [--count N] [--seconds S] [--warmup S] [--population N] [--src MAC] [--dst MAC]
 *
 *  - latency: ping-pong. Sends one frame, waits until it comes back, repeats `count` times; the
 *    round trip of each is timed with process.hrtime. Nothing else is in flight.
 *  - tx: guest TX with the RX side drained: sends as fast as the TX ring takes frames; every frame
 *    the back-end returns is received (and dropped). The frame rate is that of frames sent.
 *  - rx: guest RX only: sends nothing, receives what the back-end generates (its source port, or
 *    DPDK's txonly engine). Against a loopback it measures an idle connected device.
 *  - io: a population of frames circulates: every frame received is sent again.
 *
 * --src and --dst set the frames' MACs (for a switch; default dst 52:54:00:12:34:56, src
 * 02:00:00:be:4c:01); in rx mode, --src sends one frame first so that a switch learns where it is.
 *
 * Lines on stdout: `MEASURE_START` and `MEASURE_END` when the measured interval starts and ends
 * (the harness reads the back-end's CPU time at both), then one JSON line with the result.
 */
import { parseArgs } from 'node:util';
import { GuestMemory } from '../frontend/guest_memory';
import { VirtioNetDriver } from '../frontend/net_driver';

export interface LatencyResult {
  mode: 'latency';
  count: number;
  lost: number;
  /** Round-trip times in microseconds. */
  minUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
  features: string;
}

export interface ThroughputResult {
  mode: 'tx' | 'rx' | 'io';
  seconds: number;
  txFrames: number;
  rxFrames: number;
  txBytes: number;
  rxBytes: number;
  features: string;
}

export type FrontendResult = LatencyResult | ThroughputResult;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The frames' MACs; `announce`: rx mode sends one frame first (--src given). */
const macs = { dst: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56], src: [0x02, 0x00, 0x00, 0xbe, 0x4c, 0x01], announce: false };

function parseMac(text: string): number[] {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(text)) throw new Error(`not a MAC address: ${text}`);
  return text.split(':').map((h) => Number.parseInt(h, 16));
}

function frame(size: number, seq: number): Buffer {
  const f = Buffer.alloc(size);
  f.set(macs.dst, 0);
  f.set(macs.src, 6);
  f.writeUInt16BE(0x88b5, 12); // local experimental ethertype
  f.writeUInt32BE(seq >>> 0, 14);
  return f;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** The connected driver, the one receive handler a measurement installs, and whether the back-end hung up. */
interface Session {
  driver: VirtioNetDriver;
  features: string;
  rx: { onFrames: (frames: Buffer[]) => void };
  closed: boolean;
}

const say = (line: string) => process.stdout.write(`${line}\n`);

function readArgs() {
  return parseArgs({
    options: {
      socket: { type: 'string' },
      mode: { type: 'string' },
      size: { type: 'string' },
      'queue-size': { type: 'string' },
      count: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      population: { type: 'string' },
      src: { type: 'string' },
      dst: { type: 'string' },
    },
  }).values;
}

async function main(): Promise<void> {
  const values = readArgs();
  const socketPath = values.socket;
  const mode = values.mode ?? 'latency';
  if (!socketPath || !['latency', 'tx', 'rx', 'io'].includes(mode)) throw new Error('usage: --socket SOCK --mode latency|tx|rx|io');
  // Our driver takes frames of 14..1514 bytes (it adds the 12-byte virtio-net header itself).
  const size = Math.min(1514, Math.max(60, Number(values.size ?? 64)));
  if (values.src) Object.assign(macs, { src: parseMac(values.src), announce: true });
  if (values.dst) macs.dst = parseMac(values.dst);
  const queueSize = Number(values['queue-size'] ?? 256);
  const memory = new GuestMemory({ regionSizes: [32 << 20, 16 << 20] });
  const rx: Session['rx'] = { onFrames: () => {} };
  const driver = await VirtioNetDriver.start({ socketPath, memory, queueSize, onFrames: (f) => rx.onFrames(f) });
  const session: Session = { driver, features: `0x${driver.features.toString(16)}`, rx, closed: false };
  driver.onClosed(() => (session.closed = true));

  try {
    if (mode === 'latency') {
      say(JSON.stringify(await pingPong(session, size, Number(values.count ?? 10_000))));
      return;
    }
    const population = Number(values.population ?? queueSize / 2);
    const result = await throughput(
      session,
      mode as ThroughputResult['mode'],
      size,
      Number(values.seconds ?? 3),
      Number(values.warmup ?? 1),
      population,
    );
    say(JSON.stringify(result));
  } finally {
    driver.close();
    memory.close();
  }
}

/** latency: one frame in flight, each round trip timed, after `count / 10` (at most 1000) untimed ones. */
async function pingPong(session: Session, size: number, count: number): Promise<LatencyResult> {
  const { driver } = session;
  const warm = Math.min(1000, Math.ceil(count / 10));
  const times: number[] = [];
  let lost = 0;
  let want = -1;
  let wake: (() => void) | null = null;
  session.rx.onFrames = (frames) => {
    for (const f of frames) if (f.length >= 18 && f.readUInt32BE(14) === want) wake?.();
  };
  say('MEASURE_START');
  for (let i = 0; i < warm + count && !session.closed; i++) {
    want = i;
    const f = frame(size, i);
    while (!driver.send(f)) await driver.waitTxSpace();
    let timer: NodeJS.Timeout | undefined;
    const t0 = process.hrtime.bigint();
    const back = await new Promise<boolean>((resolve) => {
      wake = () => resolve(true);
      timer = setTimeout(() => resolve(false), 1000);
      driver.flush();
    });
    const t1 = process.hrtime.bigint();
    clearTimeout(timer);
    wake = null;
    if (i < warm) continue;
    if (back) times.push(Number(t1 - t0) / 1000);
    else lost++;
  }
  say('MEASURE_END');
  const sorted = [...times].sort((a, b) => a - b);
  return {
    mode: 'latency',
    count: times.length,
    lost,
    minUs: sorted[0] ?? NaN,
    p50Us: percentile(sorted, 50),
    p90Us: percentile(sorted, 90),
    p99Us: percentile(sorted, 99),
    p999Us: percentile(sorted, 99.9),
    maxUs: sorted[sorted.length - 1] ?? NaN,
    meanUs: times.reduce((a, b) => a + b, 0) / Math.max(1, times.length),
    features: session.features,
  };
}

/** Frame counters of a throughput measurement, shared by the receive handler and the sender. */
interface Counters {
  txFrames: number;
  rxFrames: number;
  rxBytes: number;
  /** io: frames received and not yet sent again. */
  owed: number;
  /** io: wakes the sender when frames came back. */
  kick: (() => void) | null;
  stop: boolean;
}

/** tx, rx and io: traffic through the warm-up, then the frames counted over `seconds`. */
async function throughput(
  session: Session,
  mode: ThroughputResult['mode'],
  size: number,
  seconds: number,
  warmup: number,
  population: number,
): Promise<ThroughputResult> {
  const c: Counters = { txFrames: 0, rxFrames: 0, rxBytes: 0, owed: 0, kick: null, stop: false };
  session.rx.onFrames = (frames) => {
    c.rxFrames += frames.length;
    for (const f of frames) c.rxBytes += f.length;
    if (mode === 'io') {
      c.owed += frames.length;
      c.kick?.();
    }
  };
  const template = frame(size, 0);
  if (mode === 'rx' && macs.announce) {
    session.driver.send(template);
    session.driver.flush();
  }
  const running =
    mode === 'io' ? circulate(session, c, template, population) : mode === 'tx' ? sendAll(session, c, template) : Promise.resolve();
  await sleep(warmup * 1000);
  const tx0 = c.txFrames;
  const rx0 = c.rxFrames;
  const rxb0 = c.rxBytes;
  const t0 = process.hrtime.bigint();
  say('MEASURE_START');
  await sleep(seconds * 1000);
  const t1 = process.hrtime.bigint();
  say('MEASURE_END');
  const result: ThroughputResult = {
    mode,
    seconds: Number(t1 - t0) / 1e9,
    txFrames: c.txFrames - tx0,
    rxFrames: c.rxFrames - rx0,
    txBytes: (c.txFrames - tx0) * size,
    rxBytes: c.rxBytes - rxb0,
    features: session.features,
  };
  c.stop = true;
  c.kick?.();
  session.driver.close(); // resolves a pending waitTxSpace
  await running;
  return result;
}

/** io: a population of frames circulates; every frame received is sent again. */
async function circulate(session: Session, c: Counters, template: Buffer, population: number): Promise<void> {
  const { driver } = session;
  c.owed = population;
  while (!c.stop && !session.closed) {
    let sent = 0;
    while (c.owed > 0 && driver.send(template)) {
      c.owed--;
      sent++;
    }
    c.txFrames += sent;
    if (sent) driver.flush();
    if (c.owed > 0 && driver.txSpace === 0) await driver.waitTxSpace();
    else if (c.owed === 0) await new Promise<void>((r) => ((c.kick = r), setTimeout(r, 50)));
    c.kick = null;
  }
}

/** tx: as many frames as the TX ring takes, again whenever it has room. */
async function sendAll(session: Session, c: Counters, template: Buffer): Promise<void> {
  const { driver } = session;
  while (!c.stop && !session.closed) {
    let sent = 0;
    while (driver.send(template)) sent++;
    c.txFrames += sent;
    driver.flush();
    await driver.waitTxSpace();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`ours_frontend: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
