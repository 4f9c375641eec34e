/**
 * Prometheus export: /metrics scraped during traffic through several devices parses as strict
 * Prometheus text, and once traffic stops its counters equal device.stats() read at the same moment;
 * new counters of the stats record are exported without code for them; the server's own edges.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { VhostUserBackend } from '../lib/backend';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { serveMetrics, type MetricsServer } from '../lib/index';
import { parseListenAddress } from '../lib/observe/address';
import { counterHelp, metricName } from '../lib/observe/counter_help';
import { queueOf } from '../lib/observe/readings';
import { parsePrometheusText, type Family } from './helpers/prom_text';
import { startTraffic, type Traffic } from './helpers/traffic';
import { sleep } from './helpers/until';

let dir = '';
let closers: (() => unknown)[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-metrics-'));
  closers = [];
});
afterEach(async () => {
  for (const close of closers.reverse()) await close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function backend(name: string, queuePairs: number): VhostUserBackend {
  const b = new VhostUserBackend({ socketPath: path.join(dir, name), device: { port: 'loopback', queuePairs } });
  b.start();
  closers.push(() => b.close());
  return b;
}

async function driver(b: VhostUserBackend, queuePairs: number, packed: boolean): Promise<VirtioNetDriver> {
  const memory = new GuestMemory();
  closers.push(() => memory.close());
  const d = await VirtioNetDriver.start({ socketPath: b.socketPath, memory, queuePairs, packed });
  closers.push(() => d.close());
  return d;
}

async function serve(backends: VhostUserBackend[], port = 0): Promise<MetricsServer> {
  const server = await serveMetrics(backends, { port });
  closers.push(() => server.close());
  return server;
}

async function scrape(server: MetricsServer): Promise<Map<string, Family>> {
  const res = await fetch(`${server.url}metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

/** Waits until every device's counters read the same twice in a row, 50 ms apart. */
async function quiescent(backends: VhostUserBackend[]): Promise<void> {
  const read = () =>
    JSON.stringify(
      backends.map((b) => b.device.stats()),
      (_, v) => (typeof v === 'bigint' ? String(v) : v),
    );
  for (let last = read(), tries = 0; tries < 100; tries++) {
    await sleep(50);
    const now = read();
    if (now === last) return;
    last = now;
  }
  throw new Error('the counters never settled');
}

describe('/metrics', () => {
  it('parses during traffic on several sockets and N pairs, and matches device.stats() once traffic stops', async () => {
    const one = backend('one.sock', 1);
    const two = backend('two.sock', 2);
    const server = await serve([one, two]);
    // The families exist before any scrape, for a program that merges the registry into its own.
    expect(server.metrics.registry.getSingleMetric('vhost_user_queue_packets_total')).toBeDefined();
    const traffic: Traffic[] = [startTraffic(await driver(one, 1, false)), startTraffic(await driver(two, 2, true))];
    await sleep(300);

    // During traffic: strict grammar, every queue of every socket present, counters moving.
    const during = await scrape(server);
    const packets = during.get('vhost_user_queue_packets_total');
    expect(packets?.type).toBe('counter');
    expect(packets?.samples).toHaveLength(2 + 4);
    for (const s of packets!.samples) expect(s.value, JSON.stringify(s.labels)).toBeGreaterThan(0);
    const later = await scrape(server);
    const total = (f: Map<string, Family>) => f.get('vhost_user_queue_packets_total')!.samples.reduce((n, s) => n + s.value, 0);
    expect(total(later)).toBeGreaterThan(total(during));

    for (const t of traffic) await t.stop();
    await quiescent([one, two]);
    const families = await scrape(server);
    for (const b of [one, two]) {
      b.device.stats().forEach((record, virtqueue) => {
        const queue = queueOf(virtqueue);
        const labels = { socket: b.socketPath, queue: queue.name, direction: queue.direction, pair: String(queue.pair) };
        for (const [counter, value] of Object.entries(record)) {
          const family = families.get(metricName(counter));
          expect(family?.type, counter).toBe('counter');
          expect(family?.help, counter).toBe(counterHelp(counter));
          const sample = family!.samples.find((s) => JSON.stringify(s.labels) === JSON.stringify(labels));
          expect(sample?.value, `${counter} ${JSON.stringify(labels)}`).toBe(Number(value));
        }
      });
    }
    // Loopback: what a pair's guest sent (rx_qP) is what it was given back (tx_qP).
    const byQueue = new Map(
      families.get('vhost_user_queue_packets_total')!.samples.map((s) => [`${s.labels.socket} ${s.labels.queue}`, s.value]),
    );
    expect(byQueue.get(`${two.socketPath} rx_q1`)).toBe(byQueue.get(`${two.socketPath} tx_q1`));
    expect(byQueue.get(`${two.socketPath} rx_q1`)).toBeGreaterThan(0);

    const gauge = (name: string, socket: string) => families.get(name)?.samples.find((s) => s.labels.socket === socket)?.value;
    expect(families.get('vhost_user_connected')?.type).toBe('gauge');
    expect(gauge('vhost_user_connected', one.socketPath)).toBe(1);
    expect(gauge('vhost_user_queue_pairs', two.socketPath)).toBe(2);

    // /stats.json, what the live page reads, says the same.
    const json = (await (await fetch(`${server.url}stats.json`)).json()) as {
      devices: { socket: string; queues: { name: string; counters: Record<string, number> }[] }[];
    };
    const tx1 = json.devices.find((d) => d.socket === two.socketPath)!.queues.find((q) => q.name === 'tx_q1')!;
    expect(tx1.counters.packets).toBe(Number(two.device.stats()[2].packets));
  });

  it('exports every bigint field of the stats record, a new one included, and drops a removed back-end', async () => {
    const fake = (socketPath: string, extra: bigint) =>
      ({
        socketPath,
        connected: false,
        device: {
          port: 'loopback',
          queuePairs: 1,
          stats: () => [0, 1].map((q) => ({ packets: 5n, guestNotificationsSuppressed: extra + BigInt(q) })),
        },
      }) as unknown as VhostUserBackend;
    const backends = [fake('/run/a "quoted"\\path', 7n)];
    const server = await serve(backends);
    let families = await scrape(server);
    const suppressed = families.get('vhost_user_queue_guest_notifications_suppressed_total');
    expect(suppressed?.help).toMatch(/asked not to be/);
    expect(suppressed?.samples.map((s) => [s.labels.socket, s.labels.queue, s.value])).toEqual([
      ['/run/a "quoted"\\path', 'tx_q0', 7],
      ['/run/a "quoted"\\path', 'rx_q0', 8],
    ]);
    backends.splice(0, 1, fake('/run/b', 1n));
    families = await scrape(server);
    expect(families.get('vhost_user_queue_packets_total')?.samples.map((s) => s.labels.socket)).toEqual(['/run/b', '/run/b']);
  });

  it('names counters and explains them, known or not', () => {
    expect(metricName('packets')).toBe('vhost_user_queue_packets_total');
    expect(metricName('size65To127')).toBe('vhost_user_queue_size_65_to_127_total');
    expect(metricName('size_1519_max_packets')).toBe('vhost_user_queue_size_1519_max_packets_total');
    expect(counterHelp('size_65_127_packets')).toBe('Frames moved of 65 to 127 bytes (without the virtio-net header).');
    expect(counterHelp('size_1519_max_packets')).toBe('Frames moved of 1519 bytes or more (without the virtio-net header).');
    expect(counterHelp('someNewThing')).toMatch(/'someNewThing'/);
    expect([0, 1, 2, 3].map((q) => queueOf(q).name)).toEqual(['tx_q0', 'rx_q0', 'tx_q1', 'rx_q1']);
  });
});

describe('the strict Prometheus text reader of these tests', () => {
  it('accepts good text and refuses each kind of bad line', () => {
    const good =
      '# HELP a_total What a counts, with a \\\\ and a \\n.\n# TYPE a_total counter\na_total{x="1\\"2",y="z"} 3\na_total 4e3 1700000000\n\n# TYPE g gauge\ng -Inf\n';
    const families = parsePrometheusText(good);
    expect(families.get('a_total')?.help).toBe('What a counts, with a \\ and a \n.');
    expect(families.get('a_total')?.samples.map((s) => [s.labels, s.value])).toEqual([
      [{ x: '1"2', y: 'z' }, 3],
      [{}, 4000],
    ]);
    const bad: [string, RegExp][] = [
      ['a 1', /newline/],
      ['1a 1\n', /bad metric name/],
      ['a{x="1} 1\n', /unterminated/],
      ['a{x="\\q"} 1\n', /bad escape/],
      ['a{x=1} 1\n', /not quoted/],
      ['a{__x="1"} 1\n', /bad label name/],
      ['a{x="1",x="2"} 1\n', /twice/],
      ['a one\n', /not a float/],
      ['a 1 2 3\n', /VALUE/],
      ['a 1\nb 1\na 2\n', /not in one group/],
      ['a 1\n# TYPE b gauge\na 2\n', /not in one group/],
      ['a{x="1"} 1\na{x="1"} 2\n', /twice/],
      ['a 1\n# TYPE a counter\n', /after its samples/],
      ['# TYPE a counter\n# TYPE a counter\n', /second TYPE/],
      ['# TYPE a meter\n', /unknown type/],
      ['# TYPE a counter\na -1\n', /counter 'a' is -1/],
      ['# HELP a bad \\t\n', /bad escape in HELP/],
    ];
    for (const [text, error] of bad) expect(() => parsePrometheusText(text), text).toThrow(error);
  });
});

describe('metrics server', () => {
  it('binds 127.0.0.1 by default, answers 404 and 405, only to loopback names, and frees its port on close()', async () => {
    const server = await serveMetrics([], { port: 0 });
    expect(server.host).toBe('127.0.0.1');
    expect((await fetch(`${server.url}nope`)).status).toBe(404);
    const post = await fetch(`${server.url}metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    const page = await fetch(server.url);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(await page.text()).toContain('vhost-user: live statistics');
    // DNS rebinding: a page served as evil.example that resolves to 127.0.0.1 gets nothing.
    const status = (host: string) =>
      new Promise<number | undefined>((resolve, reject) =>
        http
          .get({ host: '127.0.0.1', port: server.port, path: '/stats.json', headers: { host } }, (res) => resolve(res.resume().statusCode))
          .on('error', reject),
      );
    expect(await status('evil.example')).toBe(403);
    expect(await status(`evil.example:${server.port}`)).toBe(403);
    expect(await status(`localhost:${server.port}`)).toBe(200);
    expect(await status(`127.0.0.1:${server.port}`)).toBe(200);
    await server.close();
    const again = await serve([], server.port); // the same port, at once
    expect(again.port).toBe(server.port);
  });

  it('rejects a port in use with EADDRINUSE and a message that says what to do', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => holder.close(r)));
    const port = (holder.address() as net.AddressInfo).port;
    await expect(serveMetrics([], { port })).rejects.toMatchObject({
      name: 'VhostUserError',
      code: 'EADDRINUSE',
      message: `127.0.0.1:${port} is already in use: choose another port`,
    });
  });

  it('reads PORT or HOST:PORT, and refuses anything else naming the flag', () => {
    expect(parseListenAddress('9100', '--metrics')).toEqual({ host: '127.0.0.1', port: 9100 });
    expect(parseListenAddress('0.0.0.0:9100', '--metrics')).toEqual({ host: '0.0.0.0', port: 9100 });
    expect(parseListenAddress('localhost:0', '--metrics')).toEqual({ host: 'localhost', port: 0 });
    expect(parseListenAddress('[::1]:9100', '--metrics')).toEqual({ host: '::1', port: 9100 });
    for (const bad of ['', 'x', '70000', ':9100', '1.2.3.4:', 'a b:1', '::1:9100', '9100x', '-1']) {
      expect(() => parseListenAddress(bad, '--metrics'), bad).toThrow(/^--metrics must be PORT or HOST:PORT/);
    }
  });
});
