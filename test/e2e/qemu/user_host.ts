/**
 * The host side of the user port's QEMU suite (qemu-user.test.ts): our back-end as a separate
 * `vhost-user net --port user` process, unprivileged when the suite runs as root (setpriv to nobody),
 * and the small host services the guest reaches through the gateway: a DNS server, a TFTP server, a TCP
 * banner (the reader of a forwarded guest port is the benchmark's, lib/bench/usernet/transfer.ts).
 */
import type { ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { findProgram } from '../../helpers/peers';
import { spawnTracked } from '../../../lib/guest/processes';

const CLI = path.resolve(__dirname, '../../../dist/cli.js');
const NOBODY = { uid: 65534, gid: 65534 };

export interface UserBackend {
  readonly socketPath: string;
  readonly process: ChildProcess;
  /** The uid the back-end runs as. */
  readonly uid: number;
  /** Its stdout and stderr so far. */
  output(): string;
  stop(): void;
}

/**
 * argv of `vhost-user net ARGS...`: as root, run as nobody (setpriv), the point of the user port, with
 * `dir` handed to nobody so that the back-end can make its socket there.
 */
export function cliArgv(dir: string, args: readonly string[]): { argv: string[]; uid: number } {
  const argv = [process.execPath, CLI, 'net', ...args];
  if (process.getuid?.() !== 0) return { argv, uid: process.getuid?.() ?? -1 };
  const setpriv = findProgram('setpriv');
  if (!setpriv) throw new Error('setpriv is not installed (Debian package util-linux): the back-end must not run as root');
  fs.chownSync(dir, NOBODY.uid, NOBODY.gid);
  return { argv: [setpriv, `--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', '--', ...argv], uid: NOBODY.uid };
}

/**
 * Starts `vhost-user net --socket DIR/NAME.sock --port user ARGS...` (cliArgv) and resolves once the
 * socket exists. `env` replaces the environment (e.g. VHOST_USER_LIBSLIRP); a later --port wins.
 */
export async function startUserBackend(dir: string, name: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<UserBackend> {
  const socketPath = path.join(dir, `${name}.sock`);
  const { argv, uid } = cliArgv(dir, ['--socket', socketPath, '--port', 'user', ...args]);
  const child = spawnTracked(argv, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 15_000;
  while (!fs.existsSync(socketPath)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the user back-end ended: ${out.trim()}`);
    if (Date.now() > deadline) throw new Error(`no ${socketPath} after 15 s: ${out.trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    socketPath,
    process: child,
    uid,
    output: () => out,
    stop: () => void child.kill('SIGTERM'),
  };
}

/** A host service on 127.0.0.1 and what it has seen. */
export interface HostService {
  readonly port: number;
  /** Queries, datagrams or connections served. */
  readonly served: number;
  close(): void;
}

/** A DNS server answering every A query with `address` (and other types with no records). */
export async function startDnsServer(address: string): Promise<HostService> {
  const socket = dgram.createSocket('udp4');
  let served = 0;
  socket.on('message', (query, from) => {
    const answer = dnsAnswer(query, address);
    if (!answer) return;
    served++;
    socket.send(answer, from.port, from.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const { port } = socket.address();
  return {
    port,
    get served() {
      return served;
    },
    close: () => socket.close(),
  };
}

/** The response to a one-question query, or null for what is not one (RFC 1035 4.1). */
function dnsAnswer(query: Buffer, address: string): Buffer | null {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return null;
  let end = 12;
  while (end < query.length && query[end] !== 0) end += query[end] + 1;
  end += 5; // the root label, QTYPE, QCLASS
  if (end > query.length) return null;
  const isA = query.readUInt16BE(end - 4) === 1;
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // ID
  header.writeUInt16BE(0x8180, 2); // a response, recursion desired and available, no error
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(isA ? 1 : 0, 6);
  const parts = [header, query.subarray(12, end)];
  if (isA) {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    rr.writeUInt16BE(1, 2); // A
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(60, 6);
    rr.writeUInt16BE(4, 10);
    address.split('.').forEach((b, i) => (rr[12 + i] = Number(b)));
    parts.push(rr);
  }
  return Buffer.concat(parts);
}

/**
 * A TFTP server (RFC 1350) of one-block files: a read request for NAME gets `re:NAME` in data block 1,
 * from the port asked (the guest's only UDP client with a reply is busybox tftp). Options (RFC 2347)
 * are ignored, which a client takes as their refusal. `served` counts the acknowledged blocks.
 */
export async function startTftpServer(): Promise<HostService> {
  const socket = dgram.createSocket('udp4');
  let served = 0;
  socket.on('message', (msg, from) => {
    if (msg.length < 4) return;
    const opcode = msg.readUInt16BE(0);
    if (opcode === 4 && msg.readUInt16BE(2) === 1) served++;
    if (opcode !== 1) return;
    const name = msg.subarray(2, Math.max(2, msg.indexOf(0, 2))).toString();
    const data = Buffer.from(`re:${name}\n`);
    const head = Buffer.from([0, 3, 0, 1]);
    socket.send(Buffer.concat([head, data]), from.port, from.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return {
    port: socket.address().port,
    get served() {
      return served;
    },
    close: () => socket.close(),
  };
}

/** Writes `banner` and a newline to each connection, then closes it. */
export async function startTcpBanner(banner: string): Promise<HostService> {
  let served = 0;
  const server = net.createServer((sock) => {
    served++;
    sock.on('error', () => {});
    sock.end(`${banner}\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    get served() {
      return served;
    },
    close: () => void server.close(),
  };
}
