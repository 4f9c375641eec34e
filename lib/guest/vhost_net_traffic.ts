/**
 * A program run by Node inside the test guest (init.sh's `node` scenario; test/e2e/qemu-vhost-net.test.ts):
 * our VirtioNetDriver with a tap behind it, once over the kernel's /dev/vhost-net and once over our own
 * vhost-user back-end (the tap port), the same way both times. The driver's tap is bridged to a second
 * tap this program reads and writes itself, so every frame is checked byte for byte at the far side:
 * frames the driver sends must come out of the reader tap, frames written into it must reach the
 * driver's RX ring; the kernel once more on two queue pairs. Prints one `VHU-RESULT vhost-net-<run> ...`
 * line per run (scenarios.ts).
 *
 * Parameters (kernel command line): vhu.frames=N frames each way (default 10000).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { VhostUserBackend } from '../backend';
import { native } from '../binding';
import { GuestMemory } from '../frontend/guest_memory';
import { VirtioNetDriver } from '../frontend/net_driver';
import { VhostKernelTransport } from '../frontend/vhost_kernel_transport';
import type { VhostUserError } from '../errors';
import { VirtioFeature, bit } from '../protocol/constants';
import { VIRTIO_NET_FEATURE_NAMES } from './scenarios';

const HDR = 12; // the virtio-net header on the reader tap (VERSION_1)
const DRIVER_MAC = Buffer.from([0x02, 0, 0, 0, 0, 0x01]);
const READER_MAC = Buffer.from([0x02, 0, 0, 0, 0, 0x02]);
const ETHERTYPE = 0x88b5; // IEEE local experimental: nothing else in the guest sends it
/** Frames in flight at most: below the tap's queue (500) and the driver's RX ring (256). */
const WINDOW = 128;

export const param = (key: string, dflt: string): string =>
  fs
    .readFileSync('/proc/cmdline', 'utf8')
    .split(/\s+/)
    .find((w) => w.startsWith(`vhu.${key}=`))
    ?.slice(key.length + 5) ?? dflt;

const ip = (...args: string[]): void => void execFileSync('ip', args, { stdio: 'inherit' });

/** Frame `seq` from `src` to `dst`: 60..1514 bytes, its length and bytes derived from seq. */
function frame(seq: number, dst: Buffer, src: Buffer): Buffer {
  const len = 60 + ((seq * 7919) % 1455);
  const f = Buffer.alloc(len);
  dst.copy(f, 0);
  src.copy(f, 6);
  f.writeUInt16BE(ETHERTYPE, 12);
  f.writeUInt32BE(seq, 14);
  for (let i = 18; i < len; i++) f[i] = (seq + i * 31) & 0xff;
  return f;
}

const seqOf = (f: Buffer): number => (f.length >= 18 && f.readUInt16BE(12) === ETHERTYPE ? f.readUInt32BE(14) : -1);

/** Counts each sequence number's first arrival, and whether every frame so far was byte-identical. */
class Tally {
  seen = new Set<number>();
  bad = 0;
  constructor(
    private readonly dst: Buffer,
    private readonly src: Buffer,
  ) {}
  take(f: Buffer): void {
    const seq = seqOf(f);
    if (seq < 0) return; // not ours
    if (!f.equals(frame(seq, this.dst, this.src)) || this.seen.has(seq)) this.bad++;
    this.seen.add(seq);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `send(seq)` for 0..n-1, never more than WINDOW ahead of `tally`; gives up after 5 s without progress. */
async function pump(n: number, tally: Tally, send: (seq: number) => boolean, flush: () => void): Promise<void> {
  let next = 0;
  let last = 0;
  let idle = 0;
  while (tally.seen.size < n && idle < 500) {
    while (next < n && next - tally.seen.size < WINDOW && send(next)) next++;
    flush();
    await sleep(tally.seen.size === last ? 10 : 0);
    idle = tally.seen.size === last ? idle + 1 : 0;
    last = tally.seen.size;
  }
}

/** One run: which back-end serves the driver, on how many queue pairs; `index` keeps its interfaces apart. */
export interface RunSpec {
  name: string;
  back: 'kernel' | 'user';
  pairs: number;
  index: number;
  /** The kernel's busy-poll time per ring (VHOST_SET_VRING_BUSYLOOP_TIMEOUT). */
  busyloopUs?: number;
}

/** The driver on the tap `tap`: over /dev/vhost-net, or over our back-end's tap port through a socket. */
export async function startDriver(
  spec: RunSpec,
  tap: string,
  memory: GuestMemory,
  onFrames: (frames: Buffer[], pair: number) => void,
): Promise<{ driver: VirtioNetDriver; backend: VhostUserBackend | null }> {
  const queuePairs = spec.pairs;
  if (spec.back === 'kernel') {
    const vhostNet = { tap, busyloopUs: spec.busyloopUs };
    return { driver: await VirtioNetDriver.start({ vhostNet, memory, onFrames, queuePairs }), backend: null };
  }
  const socketPath = `/tmp/vhu-${spec.index}.sock`;
  const backend = new VhostUserBackend({ socketPath, device: { port: 'tap', tap, queuePairs }, log: () => {} });
  backend.start();
  return { driver: await VirtioNetDriver.start({ socketPath, memory, onFrames, queuePairs }), backend };
}

/** What the driver negotiated, and with the kernel what it offered and was given, as a VHU-INFO line. */
export function logFeatures(name: string, driver: VirtioNetDriver): string {
  const features = names(driver.features);
  const t = driver.transport;
  const kernel =
    t instanceof VhostKernelTransport
      ? ` kernel_offered=0x${t.kernelOffered.toString(16)} kernel_acked=0x${t.kernelAcked.toString(16)}`
      : '';
  console.log(`VHU-INFO ${name} features=0x${driver.features.toString(16)} names=${features}${kernel}`);
  return features;
}

async function run(spec: RunSpec, n: number): Promise<void> {
  const [tap, reader, bridge] = [`vhn${spec.index}`, `vhr${spec.index}`, `br${spec.index}`];
  const memory = new GuestMemory();
  const toReader = new Tally(READER_MAC, DRIVER_MAC);
  const toDriver = new Tally(DRIVER_MAC, READER_MAC);
  const rxPerPair = new Array<number>(spec.pairs).fill(0);
  const { driver, backend } = await startDriver(spec, tap, memory, (frames, pair) => {
    rxPerPair[pair] += frames.length;
    frames.forEach((f) => toDriver.take(f));
  });
  const readerFd = native.vhostKernel.tapOpenQueue(reader, HDR);
  ip('link', 'add', bridge, 'type', 'bridge');
  for (const dev of [tap, reader]) ip('link', 'set', dev, 'master', bridge);
  for (const dev of [bridge, tap, reader]) ip('link', 'set', dev, 'up');
  const poller = new native.Poller(readerFd, () => {
    for (let f = native.readFd(readerFd, 65536); f && f.length; f = native.readFd(readerFd, 65536)) toReader.take(f.subarray(HDR));
  });
  const features = logFeatures(spec.name, driver);

  // send() spreads frames over the pairs in turn: every frame seen means every pair's device moved its share.
  const t0 = Date.now();
  await pump(
    n,
    toReader,
    (seq) => driver.send(frame(seq, READER_MAC, DRIVER_MAC)),
    () => driver.flush(),
  );
  const t1 = Date.now();
  const zeroHeader = Buffer.alloc(HDR);
  await pump(
    n,
    toDriver,
    (seq) => native.writeFd(readerFd, Buffer.concat([zeroHeader, frame(seq, DRIVER_MAC, READER_MAC)]), 0) > 0,
    () => {},
  );
  const t2 = Date.now();
  console.log(
    `VHU-RESULT ${spec.name} tx=${n} tx_seen=${toReader.seen.size} tx_bad=${toReader.bad} rx=${n}` +
      ` rx_seen=${toDriver.seen.size} rx_bad=${toDriver.bad} rx_per_pair=${rxPerPair.join(',')}` +
      ` tx_ms=${t1 - t0} rx_ms=${t2 - t1} features=${features}`,
  );
  poller.stop();
  driver.close();
  backend?.close();
  native.close(readerFd);
  ip('link', 'del', bridge);
  memory.close();
}

const names = (features: bigint): string =>
  Object.entries(VIRTIO_NET_FEATURE_NAMES)
    .filter(([bit]) => (features >> BigInt(bit)) & 1n)
    .map(([, name]) => name)
    .join(',');

/** A feature the kernel does not offer (the packed ring, which vhost-net lacks), asked for all the same. */
async function refusal(): Promise<void> {
  const transport = new VhostKernelTransport({ tap: 'vhn9' }, 1);
  try {
    const offered = await transport.getFeatures();
    await transport.setOwner();
    await transport.setFeatures(offered | bit(VirtioFeature.RING_PACKED));
    console.log('VHU-RESULT vhost-net-refusal error=none');
  } catch (err) {
    console.log(`VHU-RESULT vhost-net-refusal code=${(err as VhostUserError).code} message=${(err as Error).message.replace(/\s+/g, '_')}`);
  } finally {
    transport.close();
  }
}

/** No IPv6: the bridges and taps would send router solicitations and MLD reports of their own. */
export function quietIpv6(): void {
  for (const conf of ['all', 'default']) {
    const knob = `/proc/sys/net/ipv6/conf/${conf}/disable_ipv6`;
    if (fs.existsSync(knob)) fs.writeFileSync(knob, '1');
  }
}

async function main(): Promise<void> {
  quietIpv6();
  const n = Number(param('frames', '10000'));
  const runs: RunSpec[] = [
    { name: 'vhost-net-kernel', back: 'kernel', pairs: 1, index: 0 },
    { name: 'vhost-net-user', back: 'user', pairs: 1, index: 1 },
    // One /dev/vhost-net per pair on two queues of one tap, the kernel busy-polling each ring 50 us.
    { name: 'vhost-net-kernel-2pairs', back: 'kernel', pairs: 2, index: 2, busyloopUs: 50 },
  ];
  for (const spec of runs) {
    try {
      await run(spec, n);
    } catch (err) {
      console.log(`VHU-RESULT ${spec.name} error=${String((err as Error).message).replace(/\s+/g, '_')}`);
    }
  }
  await refusal();
}

// Run by Node in the guest; vhost_net_bench.ts imports the helpers above without running it.
if (require.main === module) void main();
