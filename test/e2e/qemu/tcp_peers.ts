/**
 * Host-side TCP peers for the guest's tcp-tx and tcp-rx scenarios (init.sh: tcp-tx connects to
 * host:port, tcp-rx to host:port+1): a sink and a source, each a small node process that serves one
 * connection and reports its progress (each MiB), byte count and md5, the source optionally paced;
 * and the random files and md5s the tests compare.
 */
import type { ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { argvInNetns, spawnTracked } from '../../../lib/guest/processes';

export interface TcpTransfer {
  bytes: number;
  md5: string;
  /** From the connection's accept to its end. */
  ms: number;
  /** sink: 'count' (got the bytes asked for) or 'eof'; source: 'sent'; or 'error:<code>'. */
  how: string;
}

export interface TcpPeer {
  /** Resolves when the peer is listening. */
  readonly ready: Promise<void>;
  /** Resolves when one connection has been served. Rejects if the process ends without serving one. */
  readonly done: Promise<TcpTransfer>;
  readonly process: ChildProcess;
  /** Bytes received (sink) or handed to the socket (source) so far, as last reported (each MiB). */
  progress(): number;
  /**
   * Resolves (with progress()) once `bytes` have been reported, the stream has ended with at least
   * that many, or rejects when it ended short, failed, or after `timeoutMs`.
   */
  waitBytes(bytes: number, timeoutMs: number): Promise<number>;
  kill(): void;
}

// Both peers listen (the guest's nc is the client both ways), serve one connection, print one JSON line
// per event on stdout (written synchronously, so none is lost on exit) and exit.
const PEER_COMMON = `
const net = require('net'), fs = require('fs'), crypto = require('crypto');
const say = (o) => fs.writeSync(1, JSON.stringify(o) + '\\n');
const [host, port, arg, rate] = [process.argv[1], Number(process.argv[2]), process.argv[3], Number(process.argv[4] || 0)];
const MIB = 1 << 20;
let served = false;
function serve(onConn) {
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    server.close();
    if (served) return sock.destroy();
    served = true;
    const t0 = Date.now(), h = crypto.createHash('md5');
    let n = 0, finished = false;
    const finish = (how) => {
      if (finished) return;
      finished = true;
      say({ event: 'done', bytes: n, md5: h.digest('hex'), ms: Date.now() - t0, how });
      sock.end();
      sock.on('close', () => process.exit(0));
      setTimeout(() => process.exit(0), 2000);
    };
    sock.on('error', (e) => finish('error:' + e.code));
    const count = (d) => {
      if (finished) return;
      h.update(d);
      n += d.length;
      if (Math.floor(n / MIB) > Math.floor((n - d.length) / MIB)) say({ event: 'progress', bytes: n });
    };
    onConn(sock, count, () => n, finish);
  });
  server.on('error', (e) => { say({ event: 'error', message: e.message }); process.exit(1); });
  server.listen(port, host, () => say({ event: 'listening', port }));
}
`;

const SINK_SCRIPT = `${PEER_COMMON}
const want = arg ? Number(arg) : Infinity;
serve((sock, count, got, finish) => {
  sock.on('data', (d) => {
    const left = want - got();
    count(d.length > left ? d.subarray(0, left) : d);
    if (got() >= want) finish('count');
  });
  sock.on('end', () => finish('eof'));
});
`;

// Paced (rate bytes/s): never more handed to the socket than rate x the time since the connection.
const SOURCE_SCRIPT = `${PEER_COMMON}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function paced(sock, count, got, finish) {
  const fh = await fs.promises.open(arg);
  const t0 = Date.now();
  for (;;) {
    const chunk = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
    if (bytesRead === 0) break;
    const d = chunk.subarray(0, bytesRead);
    count(d);
    if (!sock.write(d)) await new Promise((r) => sock.once('drain', r));
    const ahead = (got() / rate) * 1000 - (Date.now() - t0);
    if (ahead > 0) await sleep(ahead);
  }
  await fh.close();
  finish('sent');
}
serve((sock, count, got, finish) => {
  if (rate > 0) return void paced(sock, count, got, finish).catch((e) => finish('error:' + e.code));
  const file = fs.createReadStream(arg);
  file.on('data', (d) => count(d));
  file.on('error', (e) => finish('error:' + e.code));
  file.on('end', () => finish('sent'));
  file.pipe(sock, { end: false });
});
`;

type PeerEvent = { event: string } & TcpTransfer & { message?: string };

/** Calls `onEvent` with each JSON line the peer prints on stdout; other lines are not ours. */
function onPeerEvents(child: ChildProcess, onEvent: (ev: PeerEvent) => void): void {
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        onEvent(JSON.parse(line) as PeerEvent);
      } catch {
        // not ours
      }
    }
  });
}

function startPeer(script: string, opts: { netns?: string; host?: string; port: number }, arg: string, rate = 0): TcpPeer {
  const args = ['-e', script, opts.host ?? '0.0.0.0', String(opts.port), arg, String(rate)];
  const child = spawnTracked(argvInNetns(opts.netns, [process.execPath, ...args]), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let onReady: () => void = () => {};
  let onDone: (t: TcpTransfer) => void = () => {};
  let failed: (e: Error) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    failed = reject;
  });
  const done = new Promise<TcpTransfer>((resolve, reject) => {
    onDone = resolve;
    const prev = failed;
    failed = (e) => {
      prev(e);
      reject(e);
    };
  });
  done.catch(() => {}); // a caller that only awaits `ready` must not get an unhandled rejection
  ready.catch(() => {});
  let progress = 0;
  let ended: TcpTransfer | Error | null = null;
  const progressed = new Set<() => void>();
  const poke = () => progressed.forEach((f) => f());
  const end = (how: TcpTransfer | Error) => {
    ended = how;
    poke();
  };
  done.then(end, end);
  onPeerEvents(child, (ev) => {
    if (ev.event === 'listening') onReady();
    else if (ev.event === 'progress') {
      progress = ev.bytes;
      poke();
    } else if (ev.event === 'done') onDone({ bytes: ev.bytes, md5: ev.md5, ms: ev.ms, how: ev.how });
    else if (ev.event === 'error') failed(new Error(`tcp peer on port ${opts.port}: ${ev.message}`));
  });
  child.on('close', (code, signal) =>
    failed(new Error(`tcp peer on port ${opts.port} ended (${code ?? signal}) without serving a connection: ${stderr.trim()}`)),
  );
  const waitBytes = (bytes: number, timeoutMs: number) =>
    new Promise<number>((resolve, reject) => {
      const what = `tcp peer on port ${opts.port}: ${bytes} bytes`;
      const check = () => {
        const end = ended as TcpTransfer | Error | null;
        if (progress < bytes && end === null) return;
        progressed.delete(check);
        clearTimeout(timer);
        if (progress >= bytes) resolve(progress);
        else if (end instanceof Error) reject(new Error(`${what}: ${end.message}`));
        else if (end && end.bytes >= bytes) resolve(end.bytes);
        else reject(new Error(`${what}: the stream ended at ${end?.bytes} (${end?.how})`));
      };
      const timer = setTimeout(() => {
        progressed.delete(check);
        reject(new Error(`${what} not reached within ${timeoutMs} ms (at ${progress})`));
      }, timeoutMs);
      progressed.add(check);
      check();
    });
  return { ready, done, process: child, progress: () => progress, waitBytes, kill: () => void child.kill('SIGKILL') };
}

/**
 * Listens on host:port (default 0.0.0.0, in `netns` if given), takes one connection and reads until
 * `bytes` bytes (if given) or EOF; `done` gives the byte count and md5 of what arrived.
 */
export function startTcpSink(opts: { netns?: string; host?: string; port: number; bytes?: number }): TcpPeer {
  return startPeer(SINK_SCRIPT, opts, opts.bytes === undefined ? '' : String(opts.bytes));
}

/**
 * Listens on host:port (in `netns` if given), sends `file` to the first connection and closes it; at
 * `bytesPerSec` at most if given (e.g. so that a stream spans a live migration).
 */
export function startTcpSource(opts: { netns?: string; host?: string; port: number; file: string; bytesPerSec?: number }): TcpPeer {
  return startPeer(SOURCE_SCRIPT, opts, opts.file, opts.bytesPerSec);
}

export interface TcpPeers {
  /** On `port`: takes what the guest's tcp-tx sends. */
  readonly sink: TcpPeer;
  /** On `port + 1`: sends `file` to the guest's tcp-rx. */
  readonly source: TcpPeer;
  kill(): void;
}

/**
 * The host ends of both of the guest's TCP scenarios, in `netns`: a sink of `bytes` on `port` and a
 * source of `file` on `port + 1`. Resolves when both listen.
 */
export async function startTcpPeers(opts: { netns?: string; port: number; bytes: number; file: string }): Promise<TcpPeers> {
  const sink = startTcpSink({ netns: opts.netns, port: opts.port, bytes: opts.bytes });
  const source = startTcpSource({ netns: opts.netns, port: opts.port + 1, file: opts.file });
  await Promise.all([sink.ready, source.ready]);
  return {
    sink,
    source,
    kill: () => {
      sink.kill();
      source.kill();
    },
  };
}

export function md5(data: Buffer | string): string {
  return crypto.createHash('md5').update(data).digest('hex');
}

export function md5File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('md5');
    fs.createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Writes `bytes` random bytes to `file`; returns their md5. */
export async function writeRandomFile(file: string, bytes: number): Promise<string> {
  const h = crypto.createHash('md5');
  const fd = fs.openSync(file, 'w');
  try {
    for (let left = bytes; left > 0;) {
      const chunk = crypto.randomBytes(Math.min(left, 1 << 20));
      h.update(chunk);
      fs.writeSync(fd, chunk);
      left -= chunk.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}
