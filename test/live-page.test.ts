/**
 * The live page in a real browser: headless Chromium loads `/` while traffic runs through two sockets
 * (1 and 2 queue pairs) and must show, for every queue, packet and byte rates above zero and a chart
 * with a line on it. The screenshot is kept in artifacts/live-page.png (gitignored).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VhostUserBackend } from '../lib/backend';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { serveMetrics } from '../lib/observe/server';
import { HeadlessChromium } from './helpers/chromium';
import { skipUnless } from './helpers/peers';
import { startTraffic } from './helpers/traffic';
import { sleep } from './helpers/until';

const SCREENSHOT = path.resolve(__dirname, '../artifacts/live-page.png');

const skip = skipUnless(HeadlessChromium.find() ? null : 'chromium not found (Debian: apt-get install chromium)', 'the live page test');

interface Card {
  socket: string;
  queue: string;
  packets: number;
  bytes: number;
  drops: string;
  notifications: string;
  shown: string;
  /** Pixels of the chart in the line's blue: more than a few means a line was drawn. */
  charted: number;
}

/** What the page shows, read from its DOM and canvases. */
const READ_CARDS = `[...document.querySelectorAll('.card')].map((c) => {
  const field = (name) => c.querySelector('[data-field="' + name + '"]');
  const canvas = c.querySelector('canvas');
  const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let charted = 0;
  for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && px[i + 2] > px[i] + 80) charted++;
  return {
    socket: c.dataset.socket, queue: c.dataset.queue,
    packets: Number(field('packets_rate').dataset.value || 0), bytes: Number(field('bytes_rate').dataset.value || 0),
    drops: field('drops_rate').dataset.value, notifications: field('notifications_rate').dataset.value,
    shown: field('packets_rate').textContent, charted,
  };
})`;

const dirs: string[] = [];
let closers: (() => unknown)[] = [];
beforeEach(() => {
  closers = [];
});
afterEach(async () => {
  for (const close of closers.reverse()) await close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe.skipIf(skip)('live page', () => {
  it('shows per-queue rates above zero and a chart while traffic runs, in headless Chromium', async () => {
    const started = Date.now();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-page-'));
    dirs.push(dir);
    const backends = [1, 2].map((queuePairs) => {
      const b = new VhostUserBackend({ socketPath: path.join(dir, `pairs-${queuePairs}.sock`), device: { port: 'loopback', queuePairs } });
      b.start();
      closers.push(() => b.close());
      return b;
    });
    for (const b of backends) {
      const memory = new GuestMemory();
      closers.push(() => memory.close());
      const driver = await VirtioNetDriver.start({ socketPath: b.socketPath, memory, queuePairs: b.device.queuePairs });
      closers.push(() => driver.close());
      const traffic = startTraffic(driver);
      closers.push(() => traffic.stop());
    }
    const server = await serveMetrics(backends, { port: 0 });
    closers.push(() => server.close());
    const browser = await HeadlessChromium.launch();
    closers.push(() => browser.close());

    await browser.navigate(server.url);
    let cards: Card[] = [];
    const ready = () => cards.length === 6 && cards.every((c) => c.packets > 0 && c.bytes > 0 && c.charted > 20);
    for (const deadline = Date.now() + 10_000; !ready() && Date.now() < deadline; await sleep(250)) {
      cards = await browser.evaluate<Card[]>(READ_CARDS);
    }
    const readyMs = Date.now() - started;
    await sleep(2000); // a few more seconds of chart for the screenshot
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    fs.writeFileSync(SCREENSHOT, await browser.screenshot());

    expect(cards.map((c) => `${path.basename(c.socket)} ${c.queue}`)).toEqual([
      'pairs-1.sock rx_q0',
      'pairs-1.sock tx_q0',
      'pairs-2.sock rx_q0',
      'pairs-2.sock tx_q0',
      'pairs-2.sock rx_q1',
      'pairs-2.sock tx_q1',
    ]);
    for (const c of cards) {
      expect(c.packets, `${c.socket} ${c.queue} packets/s`).toBeGreaterThan(0);
      expect(c.bytes, `${c.socket} ${c.queue} bytes/s`).toBeGreaterThan(0);
      expect(c.shown).not.toBe('–');
      expect(c.drops).toBe('0'); // the loopback drops nothing
      expect(Number(c.notifications)).toBeGreaterThanOrEqual(0);
      expect(c.charted, `${c.socket} ${c.queue} chart`).toBeGreaterThan(20);
    }
    const png = fs.readFileSync(SCREENSHOT);
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    console.log(`live page: rates and charts ${readyMs} ms after the test began; screenshot in ${SCREENSHOT}`);
  });
});
