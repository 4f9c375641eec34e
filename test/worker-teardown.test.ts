/**
 * The addon in a worker thread that is terminated while its device's native worker (or the
 * switch's thread) is busy:
 * the env cleanup hooks must stop and join native threads and close poll handles, or the whole
 * process aborts (this is what vitest's `threads` pool and Worker.terminate() do).
 */
import { describe, expect, it } from 'vitest';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';

const DIST = path.resolve(__dirname, '../dist/index.js');

const SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads');
const { VhostUserBackend, GuestMemory, VirtioNetDriver, Switch } = require(workerData.dist);
(async () => {
  const backend = new VhostUserBackend({ socketPath: workerData.socket, device: { port: workerData.port } });
  backend.start();
  if (workerData.port === 'switch') {
    // A second port receiving every frame (multicast): the switch's thread copies mid-traffic.
    const sw = new Switch();
    const other = new VhostUserBackend({ socketPath: workerData.socket + '-2', device: { port: 'switch' } });
    sw.attach(backend);
    sw.attach(other);
    other.start();
    await VirtioNetDriver.start({ socketPath: other.socketPath, memory: new GuestMemory(), onFrames() {} });
  }
  if (workerData.port === 'js') {
    // A JS echo, its loop alive (views, a doorbell wait) when the thread is terminated.
    (async () => {
      for await (const batch of backend.device.frames()) await backend.device.send(batch);
    })().catch(() => {});
  }
  const memory = new GuestMemory();
  const driver = await VirtioNetDriver.start({ socketPath: workerData.socket, memory, onFrames() {} });
  const frame = Buffer.alloc(600, 7);
  let told = false;
  for (;;) {
    while (driver.txSpace > 0) driver.send(frame);
    driver.flush();
    await driver.waitTxSpace();
    if (!told && backend.device.stats()[1].packets > 10000n) { parentPort.postMessage('busy'); told = true; }
  }
})().catch((e) => parentPort.postMessage('error: ' + e.message));
`;

describe('teardown of a Node worker thread', () => {
  for (const port of ['loopback', 'js', 'switch']) {
    it(`terminates a worker mid-traffic without aborting the process (${port} port)`, async () => {
      await terminateMidTraffic(port);
    });
  }
});

async function terminateMidTraffic(port: string): Promise<void> {
  expect(fs.existsSync(DIST), 'dist/ is built by `npm test` (tsc) before vitest runs').toBe(true);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-test-'));
  for (let round = 0; round < 3; round++) {
    const w = new Worker(SCRIPT, { eval: true, workerData: { dist: DIST, port, socket: path.join(dir, `w${round}.sock`) } });
    const msg = await new Promise<string>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    expect(msg).toBe('busy');
    const code = await w.terminate();
    expect(code).toBe(1);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
