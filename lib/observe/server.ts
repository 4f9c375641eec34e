/**
 * The metrics server: a small node:http server over back-ends, for Prometheus and for people.
 *   /metrics     Prometheus text format (BackendMetrics)
 *   /stats.json  every queue's counters now, for the live page
 *   /            the live page (page.ts)
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { VhostUserBackend } from '../backend';
import { VhostUserError } from '../errors';
import { DEFAULT_METRICS_HOST } from './address';
import type { BackendMetrics } from './metrics';
import { LIVE_PAGE, LIVE_PAGE_POLICY } from './page';
import { asSource, type MetricsSource } from './readings';

export interface MetricsServerOptions {
  /** Address to bind. Default 127.0.0.1: only this machine may read the counters. */
  host?: string;
  /** TCP port; 0 picks a free one (see `port` of the result). */
  port: number;
}

export interface MetricsServer {
  readonly host: string;
  /** The port bound (the one picked when asked for 0). */
  readonly port: number;
  /** `http://HOST:PORT/`, the live page; /metrics below it. */
  readonly url: string;
  readonly metrics: BackendMetrics;
  /** Stops listening and ends open connections. */
  close(): Promise<void>;
}

/** The counters of every back-end as JSON numbers, with the server's clock for the page's rates. */
function statsJson(source: MetricsSource): string {
  const devices = source.devices();
  return JSON.stringify({ time: Date.now(), devices }, (_, v) => (typeof v === 'bigint' ? Number(v) : v));
}

interface Served {
  source: MetricsSource;
  metrics: BackendMetrics;
  /** Bound to a loopback address: requests must name one (see LOOPBACK_HOST_HEADER). */
  loopback: boolean;
}

/**
 * Host headers a loopback-bound server answers. Any other name is refused, so that a web page whose
 * own DNS name was re-pointed at 127.0.0.1 (DNS rebinding) cannot read the counters and socket paths.
 */
const LOOPBACK_HOST_HEADER = /^(localhost|127(\.[0-9]{1,3}){3}|\[::1\])(:[0-9]+)?$/i;
const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host);

async function respond(req: http.IncomingMessage, res: http.ServerResponse, { source, metrics, loopback }: Served) {
  const send = (status: number, type: string, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'only GET and HEAD\n', { Allow: 'GET, HEAD' });
  if (loopback && !LOOPBACK_HOST_HEADER.test(req.headers.host ?? '')) {
    return send(403, 'text/plain', 'this server answers requests for 127.0.0.1 or localhost only\n');
  }
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  try {
    if (path === '/metrics') return send(200, metrics.registry.contentType, await metrics.text());
    if (path === '/stats.json') return send(200, 'application/json', statsJson(source));
    if (path === '/') return send(200, 'text/html; charset=utf-8', LIVE_PAGE, { 'Content-Security-Policy': LIVE_PAGE_POLICY });
    return send(404, 'text/plain', 'not found: the live page is /, the Prometheus metrics /metrics\n');
  } catch (err) {
    return send(500, 'text/plain', `${err instanceof Error ? err.message : String(err)}\n`);
  }
}

/** A listen failure in one line that says what to do. */
function listenError(err: NodeJS.ErrnoException, where: string, host: string): VhostUserError {
  const code = err.code ?? 'EIO';
  const why: Record<string, string> = {
    EADDRINUSE: `${where} is already in use: choose another port`,
    EACCES: `no permission to listen on ${where}: ports below 1024 need root, choose another`,
    EADDRNOTAVAIL: `${host} is not an address of this machine`,
    ENOTFOUND: `cannot resolve the host '${host}'`,
    EAI_AGAIN: `cannot resolve the host '${host}'`,
  };
  return new VhostUserError(code, why[code] ?? `cannot listen on ${where}: ${err.message}`, { op: 'listen' });
}

const hostPort = (host: string, port: number) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/**
 * Serves /metrics, /stats.json and the live page for `backends` (read at every request, so back-ends
 * added to the array later appear), or for another source (a switch: switchMetrics in
 * lib/observe/switch_metrics.ts). Resolves once listening; rejects with a VhostUserError (code
 * EADDRINUSE, EACCES, ...) whose message says what to do.
 */
export async function serveMetrics(
  backends: readonly VhostUserBackend[] | MetricsSource,
  opts: MetricsServerOptions,
): Promise<MetricsServer> {
  const host = opts.host ?? DEFAULT_METRICS_HOST;
  // Loaded here, not on import: prom-client adds ~40 ms to every start of the package and the CLI.
  const source = asSource(backends);
  const metrics = new (await import('./metrics')).BackendMetrics(source);
  const served: Served = { source, metrics, loopback: isLoopback(host) };
  const server = http.createServer((req, res) => void respond(req, res, served));
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, hostPort(host, opts.port), host)));
    server.listen(opts.port, host, () => {
      const port = (server.address() as AddressInfo).port;
      const close = () =>
        new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        });
      resolve({ host, port, url: `http://${hostPort(host, port)}/`, metrics, close });
    });
  });
}
