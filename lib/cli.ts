#!/usr/bin/env node
/**
 * The command line: `vhost-user net --socket PATH` serves a virtio-net device on PATH until
 * interrupted. Options are checked here and passed on as plain values.
 */
import { parseArgs } from 'node:util';
import { VhostUserBackend } from './backend';
import {
  captureLine,
  die,
  fail,
  intOption,
  integer,
  messageTimeoutOption,
  metricsOption,
  serveMetricsAt,
  socketLogger,
  stopOnSignals,
} from './cli_common';
import { VhostUserError } from './errors';
import { DEFAULT_POLL_US, MAX_QUEUE_PAIRS, checkDeviceOptions, type NetDeviceOptions } from './net/device';
import { CLI_WORDING } from './net/ports/port';
import { CLI_PORT_OPTIONS, PORTS } from './net/ports/resolve';
import { formatStats } from './net/stats';
import { MAX_SNAPLEN, type PcapCapture } from './observe/pcap';

/** An option's --help entry: the flag column, then its text with continuation lines aligned. */
function helpEntry(flag: string, text: string): string {
  const [first, ...rest] = text.split('\n');
  return [`  ${flag.padEnd(20)} ${first}`, ...rest.map((line) => `${' '.repeat(23)}${line}`)].join('\n');
}

/** The --port entry and each port's own options, from the port registry. */
function portHelp(): string {
  const kinds = PORTS.map((p) => {
    const [first, ...rest] = p.help.split('\n');
    return [`${' '.repeat(25)}${p.name.padEnd(10)}${first}`, ...rest.map((line) => `${' '.repeat(35)}${line}`)].join('\n');
  });
  const options = CLI_PORT_OPTIONS.map((o) => helpEntry(o.type === 'flag' ? `--${o.flag}` : `--${o.flag} ${o.metavar}`, o.help));
  return [helpEntry('--port KIND', `where the device's frames go (default: ${PORTS[0].name}):`), ...kinds, ...options].join('\n');
}

const HELP = `Usage: vhost-user net --socket PATH [options]
       vhost-user switch --socket PATH[,vlan=N] --socket ... [options]
                                       (one switch between several devices: vhost-user switch --help)
       vhost-user bench [options]      (measure against DPDK's vhost PMD, or --user-net against QEMU's
                                        user network and passt: vhost-user bench --help)

Serves a virtio-net device over vhost-user on a unix socket. A VM (QEMU -netdev vhost-user),
DPDK's virtio-user or any other vhost-user front-end connects to it.

Options:
  --socket PATH        unix socket to serve (required). Repeat it to serve several devices, one
                       per socket, from one process.
  --client             connect to PATH (a front-end listening, e.g. QEMU -chardev socket,server=on)
                       instead of listening, and reconnect whenever the connection drops.
${portHelp()}
  --queues N           queue pairs the device reports (1..${MAX_QUEUE_PAIRS}, default 1); with --tap, one tap queue each.
  --workers N          worker threads serving the queue pairs (1..queues, default: one per pair);
                       pair p is served by worker p % N. Threads are named vhu-<device>-w<k>.
  --mtu N              offer VIRTIO_NET_F_MTU and accept NET_SET_MTU up to N (68..65535).
  --poll-us N          busy-poll budget of the data path, microseconds (default ${DEFAULT_POLL_US}): while traffic
                       flows the worker polls the rings with guest kicks suppressed, and sleeps once N µs
                       pass without work. 0: purely event-driven (lowest idle cost, one wake-up per burst).
  --socket-mode MODE   permissions of the socket file, octal (default 0600: only this user).
  --message-timeout S  a front-end that leaves a message half-sent for S seconds is disconnected, with
                       the reason logged, so that the next can connect (default 5; 0: wait for ever).
  --pcap FILE          write every frame of the device, both directions, to FILE (pcap, nanosecond
                       timestamps; tcpdump -r FILE reads it). Frames the writer cannot keep up with are
                       not captured and counted (printed with the statistics). One --socket only.
  --snaplen N          bytes kept of each captured frame (1..${MAX_SNAPLEN}, default ${MAX_SNAPLEN}: whole frames).
  --stats-interval S   print per-queue statistics every S seconds (default: only on SIGUSR1 and exit).
  --metrics HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics and a live page of
                       per-queue rates at /. HOST may be left out: 127.0.0.1 (0.0.0.0: every
                       interface); PORT 0 picks a free one.
  --quiet              log warnings only.
  -h, --help           show this help.

Statistics per queue (packets, bytes, drops, errors, multicast, broadcast, size bins, kicks, guest
notifications made and suppressed; DPDK's vhost names in the README) are printed on SIGUSR1 and on exit.

QEMU example (guest memory must be shared with the back-end):
  qemu-system-x86_64 -m 256M \\
    -object memory-backend-memfd,id=mem,size=256M,share=on -machine q35,memory-backend=mem \\
    -chardev socket,id=c0,path=PATH -netdev vhost-user,id=n0,chardev=c0 \\
    -device virtio-net-pci,netdev=n0 ...
`;

/** The device options the flags give, checked once by the device's own checks, in the CLI's words. */
function deviceOptions(values: Record<string, string | boolean | string[] | undefined>) {
  const opts: Record<string, unknown> = {
    port: values.port,
    queuePairs: integer(values.queues as string | undefined),
    mtu: integer(values.mtu as string | undefined),
    pollUs: integer(values['poll-us'] as string | undefined),
    workers: integer(values.workers as string | undefined),
  };
  for (const o of CLI_PORT_OPTIONS) {
    const raw = values[o.flag];
    opts[o.key] = o.type === 'integer' ? integer(raw as string | undefined) : raw;
  }
  const device = opts as NetDeviceOptions;
  try {
    return { device, checked: checkDeviceOptions(device, CLI_WORDING) };
  } catch (err) {
    fail(err instanceof VhostUserError ? err.message : String(err));
  }
}

/** The `net` command's flags, parsed; a mistake exits with one line. */
function parseFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        socket: { type: 'string', multiple: true },
        client: { type: 'boolean' },
        port: { type: 'string' },
        ...Object.fromEntries(
          CLI_PORT_OPTIONS.map((o) => [
            o.flag,
            o.type === 'flag' ? { type: 'boolean' as const } : { type: 'string' as const, ...(o.multiple ? { multiple: true } : {}) },
          ]),
        ),
        queues: { type: 'string' },
        workers: { type: 'string' },
        mtu: { type: 'string' },
        'socket-mode': { type: 'string' },
        'message-timeout': { type: 'string' },
        'poll-us': { type: 'string' },
        'stats-interval': { type: 'string' },
        metrics: { type: 'string' },
        pcap: { type: 'string' },
        snaplen: { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    // node:util's messages may run over several lines and explain its own syntax; ours are one line.
    const e = err as Error & { code?: string };
    fail(e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? e.message.replace(/\. To specify.*/s, '') : e.message.replace(/\s*\n\s*/g, ' '));
  }
}

function main(argv: string[]): void {
  if (argv[0] === 'switch') {
    (require('./switch_cli') as typeof import('./switch_cli')).switchMain(argv.slice(1));
    return;
  }
  if (argv[0] === 'bench') {
    // Loaded only when asked for: the benchmark pulls in the DPDK and /proc tooling.
    (require('./bench/run') as typeof import('./bench/run')).benchMain(argv.slice(1));
    return;
  }
  const { values, positionals } = parseFlags(argv);
  if (values.help || positionals.length === 0) {
    process.stdout.write(HELP);
    process.exit(values.help ? 0 : 2);
  }
  if (positionals[0] !== 'net' || positionals.length > 1)
    fail(`unknown command '${positionals.join(' ')}' (available: net, switch, bench)`);
  const sockets = values.socket ?? [];
  if (sockets.length === 0) fail('--socket PATH is required');
  if (new Set(sockets).size !== sockets.length) fail('each --socket must be a different path');
  const { device, checked } = deviceOptions(values);
  const queuePairs = checked.queuePairs;
  const port = checked.port.spec;
  if (port.libraryOnly) fail(`--port ${port.name} is for programs that use the library: see examples/js-echo.mjs`);
  if (port.hosted) fail(`--port ${port.name} belongs to \`vhost-user switch --socket A --socket B\`: see vhost-user switch --help`);
  if (port.singleDevice && sockets.length > 1) fail(`the ${port.name} port serves one device: give one --socket`);
  const held = CLI_PORT_OPTIONS.find((o) => o.oneDevice && (device as Record<string, unknown>)[o.key] !== undefined);
  if (held && sockets.length > 1) fail(`--${held.flag} holds a host port for one device: give one --socket`);
  const socketMode = intOption('socket-mode', values['socket-mode'], 0, 0o777, 8) ?? 0o600;
  const messageTimeoutMs = messageTimeoutOption(values['message-timeout']);
  const statsInterval = intOption('stats-interval', values['stats-interval'], 1, 86400);
  const snaplen = intOption('snaplen', values.snaplen, 1, MAX_SNAPLEN);
  if (snaplen !== undefined && values.pcap === undefined) fail('--snaplen needs --pcap FILE');
  if (values.pcap !== undefined && sockets.length > 1) fail('--pcap captures one device: give one --socket');

  const backends: VhostUserBackend[] = [];
  serveMetricsAt(metricsOption(values.metrics), backends, () => backends.forEach((b) => b.close()));
  let pcap: PcapCapture | undefined;
  for (const socketPath of sockets) {
    const log = socketLogger(socketPath, values.quiet);
    try {
      const backend = new VhostUserBackend({ socketPath, client: values.client, socketMode, messageTimeoutMs, log, device });
      backends.push(backend);
      if (values.pcap !== undefined) pcap = backend.device.capture(values.pcap, { snaplen });
      backend.start();
    } catch (err) {
      for (const b of backends) b.close();
      die(err);
    }
  }
  process.stdout.write(
    `vhost-user: serving virtio-net (${port.name} port${port.describe?.(checked.port.values) ?? ''}, ${queuePairs} queue pair${queuePairs > 1 ? 's' : ''}) on ${sockets.join(', ')}; ` +
      `Ctrl-C to stop, SIGUSR1 for statistics\n`,
  );

  handleSignals(backends, pcap, statsInterval);
}

/**
 * Statistics on SIGUSR1 (and every `statsInterval` seconds); on SIGINT/SIGTERM the statistics, the
 * back-ends closed, the capture's rings written out, then exit.
 */
function handleSignals(backends: VhostUserBackend[], pcap: PcapCapture | undefined, statsInterval?: number): void {
  const printStats = () => {
    for (const b of backends) process.stdout.write(`statistics for ${b.socketPath}:\n${formatStats(b.device.stats())}\n`);
    if (pcap) process.stdout.write(captureLine(pcap, pcap.counts(), 'captured'));
  };
  process.on('SIGUSR1', printStats);
  if (statsInterval) setInterval(printStats, statsInterval * 1000);
  stopOnSignals(() => {
    printStats();
    for (const b of backends) b.close();
  }, pcap);
}

main(process.argv.slice(2));
