/**
 * `vhost-user switch --socket PATH[,vlan=N] ... [--tap NAME[,vlan=N]]`: one device per socket, all of
 * them ports of one switch in this process (lib/net/switch.ts), and tap interfaces as further ports. Options are checked here, each in one line, before
 * anything is built; statistics on SIGUSR1 and on exit, as `vhost-user net` prints them.
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
import { DEFAULT_POLL_US, checkDeviceOptions, type NetDeviceOptions } from './net/device';
import { CLI_WORDING, integerProblem } from './net/ports/port';
import { formatStats } from './net/stats';
import { MAX_SNAPLEN, type PcapCapture } from './observe/pcap';
import { portLabel, switchMetrics } from './observe/switch_metrics';
import {
  DEFAULT_AGEING_SECONDS,
  DEFAULT_MAX_MACS,
  DEFAULT_VLAN,
  Switch,
  VLAN_OPTION,
  checkSwitchOptions,
  vxlanDropsTotal,
  type SwitchOptions,
} from './net/switch';
import { VXLAN_OVERHEAD_V4, VXLAN_PORT, checkVxlanOptions, parseEndpoint, type Endpoint, type VxlanOptions } from './net/vxlan';

const HELP_POINTER = 'vhost-user switch --help';

const HELP = `Usage: vhost-user switch --socket PATH[,vlan=N] --socket PATH[,vlan=N] ... [--tap NAME[,vlan=N]]
                          [--vxlan REMOTE[:PORT] ... --vni N[,vlan=N] [--local ADDR[:PORT]]] [options]

Serves one virtio-net device per socket, each a port of one MAC-learning switch in this process:
VMs (QEMU -netdev vhost-user) or other vhost-user front-ends on the sockets talk to each other. Frames
go from guest to guest by destination MAC on the switch's thread, copied once; broadcast, multicast
and unknown unicast reach every other port of the same VLAN. A receiver with no free buffers loses
the copy (counted in its drops); the sender's other frames go on. One queue pair per device, no
offloads.

Options:
  --socket PATH[,vlan=N]  a device and its port (repeat for each port). vlan=N (1..4094, default
                       ${DEFAULT_VLAN}) is the port's access VLAN: frames of different VLANs never meet.
  --tap NAME[,vlan=N]  the tap interface NAME (created if absent: root, or a tap made for this user) as
                       a port: joins the switch to the host. Its access VLAN as a socket's. No offloads.
  --vxlan REMOTE[:PORT] joins the switch to another host over VXLAN (RFC 7348, UDP; PORT default ${VXLAN_PORT};
                       [IPv6]:PORT), e.g. a Linux vxlan device (ip link add vx0 type vxlan id N remote
                       <this host> dstport ${VXLAN_PORT}). Repeat for each remote: each is a port, the MAC table
                       learns which remote a MAC is behind, floods go to every remote, and nothing is
                       forwarded from one remote to another. The MTU offered to the guests defaults to the
                       underlay's toward the remotes minus ${VXLAN_OVERHEAD_V4} (IPv6: 70); a larger --mtu is refused.
                       QEMU shows it to the guest only with host_mtu=N on -device virtio-net-pci.
  --vni N[,vlan=N]     the VXLAN network identifier (0..16777215), needed with --vxlan; vlan=N: the access
                       VLAN of the VXLAN ports.
  --local ADDR[:PORT]  the address (and UDP port, default ${VXLAN_PORT}) VXLAN is sent from and received on
                       (default: every address, port ${VXLAN_PORT}).
  --pcap FILE          write every frame entering the switch (from a guest or a tap) to FILE once, as it
                       leaves its source port (pcap, nanosecond timestamps); what the writer cannot keep up
                       with is not captured and counted (printed with the statistics).
  --snaplen N          bytes kept of each captured frame (1..${MAX_SNAPLEN}, default ${MAX_SNAPLEN}: whole frames).
  --metrics HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics (every port's counters under
                       the device's names, its socket label the port's name; the switch's MACs, refused,
                       moved, flooded) and the live page at /. HOST as for vhost-user net (default
                       127.0.0.1); PORT 0 picks a free one.
  --client             connect to each PATH (front-ends listening) instead of listening, and reconnect.
  --ageing S           seconds a MAC is remembered without a frame from it (default ${DEFAULT_AGEING_SECONDS}).
  --mac-table N        MACs remembered at most (default ${DEFAULT_MAX_MACS}); beyond, new ones are refused
                       (counted) and their frames flooded.
  --mtu N              offer VIRTIO_NET_F_MTU and accept NET_SET_MTU up to N (68..65535) on every port.
  --poll-us N          busy-poll budget of the switch's thread, microseconds (default ${DEFAULT_POLL_US}); 0: event-driven.
  --socket-mode MODE   permissions of the socket files, octal (default 0600: only this user).
  --message-timeout S  a front-end that leaves a message half-sent for S seconds is disconnected, with
                       the reason logged, so that the next can connect (default 5; 0: wait for ever).
  --stats-interval S   print statistics every S seconds (default: only on SIGUSR1 and exit).
  --quiet              log warnings only.
  -h, --help           show this help.

Statistics per port are its device's queue counters (as vhost-user net prints them: queue 0 is what
the port delivered to its guest, with the copies it had no room for as drops; queue 1 what its guest
sent), then the switch's: MACs learnt, refused (table full), moved, frames flooded, the MAC table.
`;

interface PortSpec {
  /** The socket's path, or the tap's name. */
  name: string;
  vlan: number;
}

/** --socket PATH[,vlan=N], --tap NAME[,vlan=N] or --vni N[,vlan=N]: the path, name or number, and the settings after it. */
function parsePort(flag: 'socket' | 'tap' | 'vni', text: string): PortSpec {
  const [name, ...settings] = text.split(',');
  if (!name) fail(`--${flag} ${text}: the ${{ socket: 'path', tap: 'name', vni: 'number' }[flag]} is empty`, HELP_POINTER);
  let vlan = DEFAULT_VLAN;
  for (const s of settings) {
    const [key, value] = s.split('=', 2);
    if (key !== 'vlan' || value === undefined) fail(`--${flag} ${text}: unknown setting '${s}' (only vlan=N)`, HELP_POINTER);
    const parsed = integer(value);
    const problem = integerProblem(VLAN_OPTION, parsed, { ...CLI_WORDING, option: () => 'vlan' });
    if (problem) fail(`--${flag} ${text}: ${problem}`, HELP_POINTER);
    vlan = parsed as number;
  }
  return { name, vlan };
}

function parseFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        socket: { type: 'string', multiple: true },
        tap: { type: 'string', multiple: true },
        vxlan: { type: 'string', multiple: true },
        vni: { type: 'string' },
        local: { type: 'string' },
        pcap: { type: 'string' },
        metrics: { type: 'string' },
        snaplen: { type: 'string' },
        client: { type: 'boolean' },
        ageing: { type: 'string' },
        'mac-table': { type: 'string' },
        mtu: { type: 'string' },
        'poll-us': { type: 'string' },
        'socket-mode': { type: 'string' },
        'message-timeout': { type: 'string' },
        'stats-interval': { type: 'string' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    const e = err as Error & { code?: string };
    fail(
      e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? e.message.replace(/\. To specify.*/s, '') : e.message.replace(/\s*\n\s*/g, ' '),
      HELP_POINTER,
    );
  }
}

/** Every check of the command line, in the CLI's words; a mistake exits with one line. */
function checkedOptions(values: ReturnType<typeof parseFlags>) {
  const ports = (values.socket ?? []).map((t) => parsePort('socket', t));
  if (ports.length === 0) fail('--socket PATH is required (one per port)', HELP_POINTER);
  if (new Set(ports.map((p) => p.name)).size !== ports.length) fail('each --socket must be a different path', HELP_POINTER);
  const taps = (values.tap ?? []).map((t) => parsePort('tap', t));
  if (new Set(taps.map((p) => p.name)).size !== taps.length) fail('each --tap must be a different interface', HELP_POINTER);
  const switchOptions: SwitchOptions = {
    ageingSeconds: integer(values.ageing) as number | undefined,
    maxMacs: integer(values['mac-table']) as number | undefined,
    pollUs: integer(values['poll-us']) as number | undefined,
  };
  const device: NetDeviceOptions = { port: 'switch', mtu: integer(values.mtu) as number | undefined };
  try {
    checkSwitchOptions(switchOptions, CLI_WORDING);
    checkDeviceOptions(device, CLI_WORDING);
  } catch (err) {
    fail(err instanceof VhostUserError ? err.message : String(err), HELP_POINTER);
  }
  const socketMode = intOption('socket-mode', values['socket-mode'], 0, 0o777, 8, HELP_POINTER) ?? 0o600;
  const messageTimeoutMs = messageTimeoutOption(values['message-timeout'], HELP_POINTER);
  const statsInterval = intOption('stats-interval', values['stats-interval'], 1, 86400, 10, HELP_POINTER);
  const snaplen = intOption('snaplen', values.snaplen, 1, MAX_SNAPLEN, 10, HELP_POINTER);
  if (snaplen !== undefined && values.pcap === undefined) fail('--snaplen needs --pcap FILE', HELP_POINTER);
  const metrics = metricsOption(values.metrics, HELP_POINTER);
  return {
    ports,
    taps,
    vxlan: checkedVxlan(values),
    switchOptions,
    device,
    socketMode,
    messageTimeoutMs,
    statsInterval,
    pcap: values.pcap,
    snaplen,
    metrics,
  };
}

/** --vxlan REMOTE[:PORT] ... --vni N[,vlan=N] [--local ADDR[:PORT]], checked; undefined without --vxlan. */
function checkedVxlan(values: ReturnType<typeof parseFlags>): { opts: VxlanOptions; remotes: Endpoint[] } | undefined {
  if (!values.vxlan) {
    if (values.vni !== undefined || values.local !== undefined)
      fail(`--${values.vni !== undefined ? 'vni' : 'local'} needs --vxlan REMOTE`, HELP_POINTER);
    return undefined;
  }
  if (values.vni === undefined) fail('--vxlan needs --vni N (the VXLAN network identifier, 0..16777215)', HELP_POINTER);
  const { name: vniText, vlan } = parsePort('vni', values.vni);
  const local = values.local === undefined ? undefined : parseEndpoint(values.local, VXLAN_PORT);
  if (typeof local === 'string') fail(`--local ${local}`, HELP_POINTER);
  try {
    const opts = { remotes: values.vxlan, vni: integer(vniText) as number, local: local?.address, port: local?.port, vlan };
    return { opts, remotes: checkVxlanOptions(opts, CLI_WORDING, '--vxlan', '--local').remotes };
  } catch (err) {
    fail(err instanceof VhostUserError ? err.message : String(err), HELP_POINTER);
  }
}

export function switchMain(argv: string[]): void {
  const values = parseFlags(argv);
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const {
    ports,
    taps,
    vxlan,
    switchOptions,
    device,
    socketMode,
    messageTimeoutMs,
    statsInterval,
    pcap: pcapPath,
    snaplen,
    metrics,
  } = checkedOptions(values);
  const sw = new Switch({
    ...switchOptions,
    log: (level, message) => process.stderr.write(`${new Date().toISOString()} WARN ${message}\n`),
  });
  const backends: VhostUserBackend[] = [];
  let pcap: PcapCapture | undefined;
  try {
    if (pcapPath !== undefined) pcap = sw.capture(pcapPath, { snaplen });
    if (vxlan) device.mtu = vxlanMtu(sw, vxlan.opts, device.mtu);
    for (const { name: socketPath, vlan } of ports) {
      const log = socketLogger(socketPath, values.quiet);
      const backend = new VhostUserBackend({ socketPath, client: values.client, socketMode, messageTimeoutMs, log, device });
      backends.push(backend);
      sw.attach(backend, { vlan, name: socketPath });
      backend.start();
    }
    for (const { name, vlan } of taps) sw.attachTap(name, { vlan });
    serveMetricsAt(metrics, switchMetrics(sw, backends), () => closeAll(sw, backends));
  } catch (err) {
    closeAll(sw, backends);
    pcap?.stop().catch(() => {});
    die(err);
  }
  const all = [
    ...ports,
    ...taps.map((t) => ({ name: `tap ${t.name}`, vlan: t.vlan })),
    ...(vxlan?.remotes ?? []).map((r) => ({
      name: `vxlan ${r.address.includes(':') ? `[${r.address}]` : r.address}:${r.port} vni ${vxlan?.opts.vni}`,
      vlan: vxlan?.opts.vlan ?? DEFAULT_VLAN,
    })),
  ];
  const vlans = [...new Set(all.map((p) => p.vlan))].sort((a, b) => a - b);
  const described = vlans.map(
    (v) =>
      `VLAN ${v}: ${all
        .filter((p) => p.vlan === v)
        .map((p) => p.name)
        .join(', ')}`,
  );
  process.stdout.write(
    `vhost-user: switching ${all.length} port${all.length > 1 ? 's' : ''} (${described.join('; ')}); Ctrl-C to stop, SIGUSR1 for statistics\n`,
  );
  handleSignals(sw, backends, pcap, statsInterval);
}

function closeAll(sw: Switch, backends: VhostUserBackend[]): void {
  for (const b of backends) b.close();
  sw.close(); // stops the capture: no record is written after this
}

/**
 * Opens the VXLAN uplink; returns the MTU the devices offer: the underlay's allowance by default. A
 * larger --mtu is refused: the guests' full-size frames could not cross (as Linux refuses a vxlan
 * device's MTU above its lower device's minus the overhead).
 */
function vxlanMtu(sw: Switch, vxlan: VxlanOptions, mtu: number | undefined): number {
  const { mtu: fits } = sw.attachVxlan(vxlan);
  const most = Math.min(fits, 65535);
  if (mtu !== undefined && mtu > most)
    throw new VhostUserError(
      'EINVAL',
      `--mtu ${mtu} does not fit VXLAN: the underlay toward the remotes carries guest frames of MTU ${most} at most (its MTU minus the encapsulation); give --mtu ${most} or less, or raise the underlay's MTU`,
    );
  return mtu ?? most;
}

/** The MAC table lines printed with the statistics: at most this many. */
const MAX_PRINTED_MACS = 64;

function printStats(sw: Switch, pcap: PcapCapture | undefined): void {
  const ports = sw.ports();
  for (const p of ports) {
    // A tap's queue 0 is what the switch wrote to it, queue 1 what it read from it.
    process.stdout.write(`statistics for ${portLabel(p)} (vlan ${p.vlan}):\n${formatStats(p.stats)}\n`);
  }
  const drops = vxlanDropsTotal(ports);
  if (drops)
    process.stdout.write(
      `vxlan: datagrams dropped: ${Object.entries(drops)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}\n`,
    );
  const c = sw.counters();
  process.stdout.write(`switch: ${c.macs} MACs learnt, ${c.refused} refused (table full), ${c.moves} moved, ${c.flooded} frames flooded\n`);
  const table = sw.macTable().sort((a, b) => a.vlan - b.vlan || a.mac.localeCompare(b.mac));
  for (const e of table.slice(0, MAX_PRINTED_MACS)) process.stdout.write(`  ${e.mac} vlan ${e.vlan} on ${e.port}, ${e.ageSeconds} s ago\n`);
  if (table.length > MAX_PRINTED_MACS) process.stdout.write(`  ... and ${table.length - MAX_PRINTED_MACS} more\n`);
  if (pcap) process.stdout.write(captureLine(pcap, pcap.counts(), 'captured'));
}

/**
 * Statistics on SIGUSR1 (and every `statsInterval` seconds); on SIGINT/SIGTERM the statistics, then
 * everything closed and the capture's ring written out.
 */
function handleSignals(sw: Switch, backends: VhostUserBackend[], pcap: PcapCapture | undefined, statsInterval?: number): void {
  process.on('SIGUSR1', () => printStats(sw, pcap));
  if (statsInterval) setInterval(() => printStats(sw, pcap), statsInterval * 1000);
  stopOnSignals(() => {
    printStats(sw, pcap);
    closeAll(sw, backends);
  }, pcap);
}
