/**
 * The benchmark Node runs inside the guest for `vhost-user bench --vhost-net` (lib/bench/vhostnet/):
 * the same driver and the same kind of tap, served by the kernel's vhost-net or by our back-end's tap
 * port, the order alternating every round. Guest TX: the driver sends `frames` frames of `size` bytes as
 * fast as the back-end takes them into the tap (the guest's stack drops them: nobody listens), timed to
 * the last buffer back. Guest RX: the kernel's pktgen transmits on the tap, so each frame reaches the
 * back-end as from a host; counted as they arrive in the driver's RX ring, over pktgen's run.
 * One `VHU-RESULT vhost-net-bench back=... round=...` line per run; the host makes the ratios.
 *
 * Parameters (kernel command line): vhu.frames (default 200000), vhu.rounds (3), vhu.size (60).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { GuestMemory } from '../frontend/guest_memory';
import type { VirtioNetDriver } from '../frontend/net_driver';
import { logFeatures, param, quietIpv6, startDriver, type RunSpec } from './vhost_net_traffic';

const PKTGEN = '/proc/net/pktgen';
const DRIVER_MAC = '02:00:00:00:00:01';

const ip = (...args: string[]): Promise<void> =>
  new Promise((resolve, reject) =>
    spawn('ip', args, { stdio: 'inherit' }).on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`ip ${args.join(' ')}: ${c}`)))),
  );

/** Seconds for `frames` frames sent back to back, until every buffer came back. */
async function guestTx(driver: VirtioNetDriver, frames: number, size: number): Promise<number> {
  const frame = Buffer.alloc(size);
  Buffer.from('020000000002020000000001', 'hex').copy(frame); // to nobody, from the driver
  frame.writeUInt16BE(0x88b5, 12);
  const room = driver.txSpace;
  const t0 = process.hrtime.bigint();
  let sent = 0;
  while (sent < frames) {
    while (sent < frames && driver.send(frame)) sent++;
    driver.flush();
    await driver.waitTxSpace();
  }
  while (driver.txSpace < room) await driver.waitTxSpace();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/**
 * pktgen on `tap` for `frames` frames: its kernel thread writes them into the tap as fast as it can; the
 * write of "start" returns when it is done, so it runs in a child (the driver's JS must keep posting buffers).
 */
async function guestRx(tap: string, frames: number, size: number, received: () => number): Promise<{ frames: number; seconds: number }> {
  const put = (file: string, line: string) => fs.writeFileSync(`${PKTGEN}/${file}`, `${line}\n`);
  put('kpktgend_0', 'rem_device_all');
  put('kpktgend_0', `add_device ${tap}`);
  for (const line of [`count ${frames}`, `pkt_size ${size + 4}`, 'delay 0', 'clone_skb 0', `dst_mac ${DRIVER_MAC}`]) put(tap, line);
  const before = received();
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) =>
    spawn('sh', ['-c', `echo start > ${PKTGEN}/pgctrl`], { stdio: 'inherit' }).on('exit', (c) =>
      c === 0 ? resolve() : reject(new Error(`pktgen start: ${c}`)),
    ),
  );
  await new Promise((r) => setTimeout(r, 200)); // the last frames' calls
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9 - 0.2;
  put('kpktgend_0', 'rem_device_all');
  return { frames: received() - before, seconds };
}

async function measure(spec: RunSpec, round: number, frames: number, size: number): Promise<void> {
  const tap = `vhb${spec.index}`;
  const memory = new GuestMemory();
  let received = 0;
  const { driver, backend } = await startDriver(spec, tap, memory, (f) => (received += f.length));
  try {
    await ip('link', 'set', tap, 'up');
    logFeatures(spec.name, driver);
    const tx = await guestTx(driver, frames, size);
    const rx = await guestRx(tap, frames, size, () => received);
    console.log(
      `VHU-RESULT vhost-net-bench back=${spec.back} round=${round} size=${size} tx_frames=${frames} tx_s=${tx.toFixed(4)}` +
        ` rx_frames=${rx.frames} rx_s=${rx.seconds.toFixed(4)} rx_offered=${frames}`,
    );
  } finally {
    driver.close();
    backend?.close();
    memory.close();
  }
}

async function main(): Promise<void> {
  const frames = Number(param('frames', '200000'));
  const rounds = Number(param('rounds', '3'));
  const size = Number(param('size', '60'));
  quietIpv6();
  let index = 0;
  for (let round = 0; round < rounds; round++) {
    const backs = round % 2 === 0 ? (['kernel', 'user'] as const) : (['user', 'kernel'] as const);
    for (const back of backs) {
      const spec: RunSpec = { name: `vhost-net-bench-${back}`, back, pairs: 1, index: index++ };
      try {
        await measure(spec, round, frames, size);
      } catch (err) {
        console.log(`VHU-RESULT vhost-net-bench back=${back} round=${round} error=${(err as Error).message.replace(/\s+/g, '_')}`);
      }
    }
  }
  console.log('VHU-RESULT vhost-net-bench-done');
}

void main();
