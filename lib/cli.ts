#!/usr/bin/env node
/**
 * The command line: `vhost-user net --socket PATH` serves a virtio-net device on PATH until
 * interrupted. Options are checked here and passed on as plain values.
 */
import { parseArgs } from 'node:util';
import { VhostUserBackend } from './backend';
import { VhostUserError } from './errors';
import { DEFAULT_POLL_US, MAX_POLL_US, MAX_QUEUE_PAIRS } from './net/device';
import { PORT_KINDS, type PortKind } from './net/ports/resolve';
import { DEFAULT_SOURCE_FRAME, MAX_SOURCE_FRAME, MIN_SOURCE_FRAME } from './net/ports/source';
import { formatStats } from './net/stats';
import type { LogLevel } from './protocol/session';

const HELP = `Usage: vhost-user net --socket PATH [options]
       vhost-user bench [options]      (measure against DPDK's vhost PMD: vhost-user bench --help)

Serves a virtio-net device over vhost-user on a unix socket. A VM (QEMU -netdev vhost-user),
DPDK's virtio-user or any other vhost-user front-end connects to it.

Options:
  --socket PATH        unix socket to serve (required). Repeat it to serve several devices, one
                       per socket, from one process.
  --client             connect to PATH (a front-end listening, e.g. QEMU -chardev socket,server=on)
                       instead of listening, and reconnect whenever the connection drops.
  --port KIND          where the device's frames go (default: loopback):
                         loopback  returns every frame the guest sends with its MAC addresses swapped;
                         tap       a Linux tap interface (see --tap);
                         sink      takes every frame the guest sends and discards it;
                         source    fills every receive buffer the guest posts with a generated frame
                                   (broadcast, EtherType 0x88b5, a sequence number after the Ethernet
                                   header) as fast as buffers come, and discards what the guest sends.
                       sink and source are for measuring a guest's virtio-net driver.
  --frame-size N       size of the frames the source port generates, bytes without FCS
                       (${MIN_SOURCE_FRAME}..${MAX_SOURCE_FRAME}, default ${DEFAULT_SOURCE_FRAME}).
  --tap NAME           connect the device to the Linux tap interface NAME (implies --port tap),
                       creating it if absent (needs root or CAP_NET_ADMIN). Checksum and TSO offloads
                       the guest negotiates are passed to the host kernel. Bring the interface up and
                       address it on the host side as usual (ip link set NAME up). One --socket only.
  --queues N           queue pairs the device reports (1..${MAX_QUEUE_PAIRS}, default 1).
  --mtu N              offer VIRTIO_NET_F_MTU and accept NET_SET_MTU up to N (68..65535).
  --poll-us N          busy-poll budget of the data path, microseconds (default ${DEFAULT_POLL_US}): while traffic
                       flows the worker polls the rings with guest kicks suppressed, and sleeps once N µs
                       pass without work. 0: purely event-driven (lowest idle cost, one wake-up per burst).
  --socket-mode MODE   permissions of the socket file, octal (default 0600: only this user).
  --stats-interval S   print per-queue statistics every S seconds (default: only on SIGUSR1 and exit).
  --quiet              log warnings only.
  -h, --help           show this help.

Statistics (packets, bytes, drops, errors, kicks, calls per queue) are printed on SIGUSR1 and on exit.

QEMU example (guest memory must be shared with the back-end):
  qemu-system-x86_64 -m 256M \\
    -object memory-backend-memfd,id=mem,size=256M,share=on -machine q35,memory-backend=mem \\
    -chardev socket,id=c0,path=PATH -netdev vhost-user,id=n0,chardev=c0 \\
    -device virtio-net-pci,netdev=n0 ...
`;

function fail(message: string): never {
  process.stderr.write(`vhost-user: ${message}\nTry 'vhost-user --help'.\n`);
  process.exit(2);
}

function intOption(name: string, value: string | undefined, min: number, max: number, radix = 10): number | undefined {
  if (value === undefined) return undefined;
  const n = Number.parseInt(value, radix);
  if (!/^[0-9]+$/.test(value) || !Number.isInteger(n) || n < min || n > max) {
    fail(`--${name} must be an integer in ${min}..${max}${radix === 8 ? ' (octal)' : ''}, got '${value}'`);
  }
  return n;
}

function main(argv: string[]): void {
  if (argv[0] === 'bench') {
    // Loaded only when asked for: the benchmark pulls in the DPDK and /proc tooling.
    (require('./bench/run') as typeof import('./bench/run')).benchMain(argv.slice(1));
    return;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        socket: { type: 'string', multiple: true },
        client: { type: 'boolean' },
        port: { type: 'string' },
        tap: { type: 'string' },
        'frame-size': { type: 'string' },
        queues: { type: 'string' },
        mtu: { type: 'string' },
        'socket-mode': { type: 'string' },
        'poll-us': { type: 'string' },
        'stats-interval': { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    fail((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) {
    process.stdout.write(HELP);
    process.exit(values.help ? 0 : 2);
  }
  if (positionals[0] !== 'net' || positionals.length > 1) fail(`unknown command '${positionals.join(' ')}' (available: net, bench)`);
  const sockets = values.socket ?? [];
  if (sockets.length === 0) fail('--socket PATH is required');
  if (new Set(sockets).size !== sockets.length) fail('each --socket must be a different path');
  const port = (values.port ?? (values.tap !== undefined ? 'tap' : 'loopback')) as PortKind;
  if (values.tap !== undefined && sockets.length > 1) fail('--tap serves one device: give one --socket');
  if (port === 'tap' && values.tap === undefined) fail('--port tap needs --tap NAME');
  if (!PORT_KINDS.includes(port)) fail(`--port must be one of ${PORT_KINDS.join(', ')}, got '${values.port}'`);
  if (values['frame-size'] !== undefined && port !== 'source') fail('--frame-size needs --port source');
  const frameSize = intOption('frame-size', values['frame-size'], MIN_SOURCE_FRAME, MAX_SOURCE_FRAME);
  const queuePairs = intOption('queues', values.queues, 1, MAX_QUEUE_PAIRS) ?? 1;
  const mtu = intOption('mtu', values.mtu, 68, 65535);
  const pollUs = intOption('poll-us', values['poll-us'], 0, MAX_POLL_US);
  const socketMode = intOption('socket-mode', values['socket-mode'], 0, 0o777, 8) ?? 0o600;
  const statsInterval = intOption('stats-interval', values['stats-interval'], 1, 86400);

  const backends: VhostUserBackend[] = [];
  for (const socketPath of sockets) {
    const log = (level: LogLevel, message: string) => {
      if (level === 'info' && values.quiet) return;
      const line = `${new Date().toISOString()} ${level === 'warn' ? 'WARN ' : ''}[${socketPath}] ${message}\n`;
      (level === 'warn' ? process.stderr : process.stdout).write(line);
    };
    const backend = new VhostUserBackend({ socketPath, client: values.client, socketMode, log, device: { queuePairs, port, tap: values.tap, frameSize, mtu, pollUs } });
    try {
      backend.start();
    } catch (err) {
      for (const b of backends) b.close();
      fail(err instanceof VhostUserError ? err.message : String(err));
    }
    backends.push(backend);
  }
  process.stdout.write(
    `vhost-user: serving virtio-net (${port} port${values.tap ? ` ${values.tap}` : ''}${port === 'source' ? ` of ${frameSize ?? DEFAULT_SOURCE_FRAME}-byte frames` : ''}, ${queuePairs} queue pair${queuePairs > 1 ? 's' : ''}) on ${sockets.join(', ')}; ` +
      `Ctrl-C to stop, SIGUSR1 for statistics\n`,
  );

  const printStats = () => {
    for (const b of backends) process.stdout.write(`statistics for ${b.socketPath}:\n${formatStats(b.device.stats())}\n`);
  };
  process.on('SIGUSR1', printStats);
  if (statsInterval) setInterval(printStats, statsInterval * 1000);
  const stop = (signal: string) => {
    process.stdout.write(`vhost-user: ${signal}, stopping\n`);
    printStats();
    for (const b of backends) b.close();
    process.exit(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main(process.argv.slice(2));
