/**
 * The three user-mode networks as the guest's NIC sees them: what each needs installed (one line naming
 * the Debian package), the process it runs beside QEMU (ours, passt) and the QEMU -netdev that reaches it.
 * Each forwards two ports of the host's 127.0.0.1 to the guest, one per direction. (Not the guest
 * connecting out through the gateway: passt 0.0~git20230309, Debian 12's, dies of SIGSEGV on any guest
 * connection to a port the host listens on; see bench/README.md.)
 */
import type { ChildProcess } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { shellQuote } from '../shell_quote';
import { findProgram, hasLibrary } from '../find_program';
import { spawnTracked } from '../../guest/processes';
import type { UserNetConfig, UserNetPeer } from './types';

/** What a run's back-end needs from the harness. */
export interface PeerContext {
  /** node and our CLI (the benchmark's frozen copy) with its environment. */
  cli: string;
  env: NodeJS.ProcessEnv;
  /** A fresh unix socket path for this run. */
  socketPath: string;
  /** Host port -> guest port, for each direction. */
  forwards: { hostPort: number; guestPort: number }[];
}

/** A started back-end: how QEMU reaches it, and its process when it has one of its own. */
export interface RunningPeer {
  /** GuestOptions: either the vhost-user socket or a -netdev replacing it. */
  socketPath?: string;
  netdev?: string;
  /** More virtio-net-pci properties: ours passes its MTU to the guest through QEMU's host_mtu. */
  deviceOptions?: string;
  process: ChildProcess | null;
  commandLine: string | null;
  output(): string;
  /** Resolves when its process is gone (SIGTERM, SIGKILL after 3 s), so that the next run starts on a quiet machine. */
  stop(): Promise<void>;
}

/** Why `peer` cannot run here, in one line naming the Debian package; null when it can. */
export function peerGap(peer: UserNetPeer): string | null {
  if (peer === 'passt' && !findProgram('passt')) return 'passt is not installed (Debian package passt)';
  if (peer === 'ours' && !hasLibrary('libslirp.so.0')) return 'libslirp.so.0 is missing for our user port (Debian package libslirp0)';
  if (peer === 'qemu' && !hasLibrary('libslirp.so.0')) return "QEMU's -netdev user needs libslirp.so.0 (Debian package libslirp0)";
  return null;
}

/** `dpkg-query`'s version of a Debian package, or null. */
export function debianVersion(pkg: string): string | null {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Version}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

/** Spawns argv with its output kept, and resolves once `socketPath` exists (the program serves it). */
async function spawnServing(argv: string[], env: NodeJS.ProcessEnv, socketPath: string, name: string): Promise<RunningPeer> {
  const child = spawnTracked(argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 15_000;
  while (!fs.existsSync(socketPath)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} ended before serving: ${oneLine(out)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name}: no ${socketPath} after 15 s: ${oneLine(out)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    process: child,
    commandLine: shellQuote(argv),
    output: () => out,
    stop: () => stopProcess(child),
  };
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

// passt on a host without syslog prints "Failed to send N bytes to syslog" for each line it logs.
const oneLine = (s: string): string =>
  s
    .split('\n')
    .filter((l) => l.trim() && !/to syslog$/.test(l))
    .join(' | ')
    .slice(0, 400);

/** Starts the back-end of `config` (nothing for QEMU's own -netdev user). */
export async function startPeer(config: UserNetConfig, ctx: PeerContext): Promise<RunningPeer> {
  const { forwards, socketPath } = ctx;
  if (config.peer === 'qemu') {
    return {
      netdev: `user,id=n0${forwards.map((f) => `,hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`).join('')}`,
      process: null,
      commandLine: null,
      output: () => '',
      stop: () => Promise.resolve(),
    };
  }
  if (config.peer === 'ours') {
    // --port always named: the default port of `vhost-user net` is not this benchmark's business.
    const argv = [process.execPath, ctx.cli, 'net', '--socket', socketPath, '--port', 'user'];
    for (const f of forwards) argv.push('--forward', `tcp:127.0.0.1:${f.hostPort}:${f.guestPort}`);
    argv.push('--mtu', String(config.mtu));
    const peer = await spawnServing(argv, ctx.env, socketPath, 'our back-end');
    // QEMU offers the guest VIRTIO_NET_F_MTU (and sends the back-end NET_SET_MTU) only with host_mtu set:
    // that is how a vhost-user back-end's MTU reaches the guest (libvirt: <mtu size='N'/>).
    return { ...peer, socketPath, deviceOptions: `host_mtu=${config.mtu}` };
  }
  return startPasst(config, ctx);
}

/**
 * passt: IPv4 only (the guest uses nothing else). As root it drops to nobody before it binds its socket,
 * so the socket goes in a folder of its own that nobody may write (the benchmark's folder is root's, 0700).
 * (--one-off is not used: this version exits at once with it.)
 */
async function startPasst(config: UserNetConfig, ctx: PeerContext): Promise<RunningPeer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-passt-'));
  // Written to by passt before it drops to nobody (as root without CAP_DAC_OVERRIDE: the log) and after (its socket).
  if (process.getuid?.() === 0) fs.chownSync(dir, 65534, 65534);
  fs.chmodSync(dir, 0o777);
  const socketPath = path.join(dir, path.basename(ctx.socketPath));
  // --log-file: logging to stderr, this version formats a connection flag's name out of its table and
  // dies of SIGSEGV at the first TCP connection (seen with gdb); the file path does not.
  const logFile = path.join(dir, 'passt.log');
  const argv = [findProgram('passt') as string, '--foreground', '--quiet', '--log-file', logFile, '--ipv4-only', '--socket', socketPath];
  for (const f of ctx.forwards) argv.push('--tcp-ports', `127.0.0.1/${f.hostPort}:${f.guestPort}`);
  argv.push('--mtu', String(config.mtu));
  try {
    const peer = await spawnServing(argv, ctx.env, socketPath, 'passt');
    const output = (): string => `${peer.output()}${fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''}`;
    const stop = async (): Promise<void> => {
      await peer.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    };
    return { ...peer, output, stop, netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${socketPath}` };
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
