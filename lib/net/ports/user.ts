/**
 * The user port: a user-mode network for the guest, with no root (native/net/ports/user.cc over
 * libslirp, loaded at run time: Debian's libslirp0). The guest gets DHCP (10.0.2.15, gateway 10.0.2.2,
 * DNS 10.0.2.3 on the default --net), ARP, and TCP, UDP and ICMP echo to what the host reaches, through
 * host sockets; --forward opens host ports into the guest. One libslirp stack per device: one queue
 * pair; checksums and TCP segmentation done in software for the guest (libslirp takes and makes whole
 * frames with valid checksums); a large --mtu makes it faster still.
 */
import { bit } from '../../protocol/constants';
import { VirtioNetFeature } from '../features';
import type { DeviceContext, PortValues } from './port';
import { definePort } from './port';

/**
 * Offloads the port does in software (native/net/software_offload.h): the guest leaves its checksums
 * and TCP segmentation to us and takes libslirp's frames as checked. Under emulation that work is far
 * cheaper here than in the guest; libslirp itself only takes and makes whole, checksummed frames.
 */
const USER_OFFLOADS =
  bit(VirtioNetFeature.CSUM) |
  bit(VirtioNetFeature.GUEST_CSUM) |
  bit(VirtioNetFeature.HOST_TSO4) |
  bit(VirtioNetFeature.HOST_TSO6) |
  bit(VirtioNetFeature.HOST_ECN);

/** libslirp's IF_MTU_MAX is 65521. */
export const MAX_USER_MTU = 65520;
export const DEFAULT_USER_NET = '10.0.2.0/24';
/** QEMU's addresses inside the network: gateway (the host) .2, DNS .3, leases from .15. */
const DHCP_START = 15;

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** An IPv4 address as a number, or undefined. */
function ipv4(text: string): number | undefined {
  const m = IPV4.exec(text);
  if (!m) return undefined;
  const octets = m.slice(1).map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  return octets.reduce((a, o) => a * 256 + o, 0);
}

function dotted(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** "A.B.C.D/N" -> network and prefix, or a problem. */
function parseNet(text: string): { net: number; prefix: number } | string {
  const [addr, len, extra] = text.split('/');
  const net = ipv4(addr ?? '');
  const prefix = /^\d{1,2}$/.test(len ?? '') ? Number(len) : NaN;
  if (net === undefined || extra !== undefined || !(prefix >= 8 && prefix <= 27)) {
    return 'must be an IPv4 network A.B.C.D/N with N in 8..27 (room for the gateway, DNS and 16 leases)';
  }
  if (net % 2 ** (32 - prefix) !== 0)
    return `must name the network itself (host bits zero: ${dotted(net - (net % 2 ** (32 - prefix)))}/${prefix})`;
  return { net, prefix };
}

interface Forward {
  proto: 'tcp' | 'udp';
  host: string;
  hostPort: number;
  guestPort: number;
}

function port(text: string | undefined): number | undefined {
  const n = /^\d{1,5}$/.test(text ?? '') ? Number(text) : NaN;
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** One "tcp:[HOSTADDR:]HOSTPORT:GUESTPORT" (or udp:), or a problem. */
function parseForward(spec: string): Forward | string {
  const parts = spec.split(':');
  const proto = parts[0];
  const rest = parts.slice(1);
  const bad = `'${spec}' is not tcp:[HOSTADDR:]HOSTPORT:GUESTPORT or udp:...`;
  if ((proto !== 'tcp' && proto !== 'udp') || rest.length < 2 || rest.length > 3) return bad;
  const host = rest.length === 3 ? rest[0] : '127.0.0.1';
  const hostPort = port(rest[rest.length - 2]);
  const guestPort = port(rest[rest.length - 1]);
  if (ipv4(host) === undefined || hostPort === undefined || guestPort === undefined) return bad;
  return { proto, host, hostPort, guestPort };
}

/** --dns ADDR[:PORT] -> "ADDR:PORT", or a problem. */
function parseResolver(text: string): string | { problem: string } {
  const [addr, portText, extra] = text.split(':');
  const p = portText === undefined ? 53 : port(portText);
  const a = ipv4(addr ?? '');
  if (a === undefined || p === undefined || extra !== undefined) return { problem: 'must be an IPv4 address with an optional :PORT' };
  if (a >>> 24 === 127 && addr !== '127.0.0.1') return { problem: "must be 127.0.0.1 for the host's loopback (the gateway leads there)" };
  return `${addr}:${p}`;
}

/** A forward to close: tcp:[HOSTADDR:]HOSTPORT, or the spec that opened it. */
function parseClosing(spec: string): Omit<Forward, 'guestPort'> | string {
  const opened = parseForward(spec);
  if (typeof opened !== 'string') return opened;
  const [proto, ...rest] = spec.split(':');
  const host = rest.length === 2 ? rest[0] : '127.0.0.1';
  const hostPort = port(rest[rest.length - 1]);
  if ((proto !== 'tcp' && proto !== 'udp') || rest.length > 2 || ipv4(host) === undefined || hostPort === undefined) {
    return `'${spec}' is not tcp:[HOSTADDR:]HOSTPORT or udp:...`;
  }
  return { proto, host, hostPort };
}

/** The guest's address: the first lease of the network. */
function guestAddress(net: PortValues[string]): string {
  const parsed = parseNet(String(net));
  if (typeof parsed === 'string') throw new Error(`unchecked --net: ${parsed}`);
  return dotted(parsed.net + DHCP_START);
}

/** A forward as native/net/ports/user.cc takes it: every part spelled out. */
const spelled = (f: Forward, guest: string) => `${f.proto}:${f.host}:${f.hostPort}:${guest}:${f.guestPort}`;

/** device.addForward/removeForward: one spec, checked and spelled out. */
function runtimeForward(spec: unknown, add: boolean, { net }: PortValues): { native: string } | { problem: string } {
  if (typeof spec !== 'string') return { problem: `a forward must be a string like 'tcp:8080:80', got ${typeof spec}` };
  if (add) {
    const f = parseForward(spec);
    return typeof f === 'string' ? { problem: f } : { native: spelled(f, guestAddress(net)) };
  }
  const f = parseClosing(spec);
  return typeof f === 'string' ? { problem: f } : { native: `${f.proto}:${f.host}:${f.hostPort}` };
}

/** What the native factory gets: every forward spelled out, the guest address being the first lease. */
function nativeValues(values: PortValues, device: DeviceContext) {
  const { net, forward, dns } = values;
  const guest = guestAddress(net);
  const forwards = ((forward ?? []) as string[]).map((spec) => {
    const f = parseForward(spec);
    if (typeof f === 'string') throw new Error(`unchecked --forward: ${f}`);
    return spelled(f, guest);
  });
  return {
    net: String(net),
    forwards: forwards.join(';'),
    dns: dns === undefined ? '' : String(parseResolver(String(dns))),
    mtu: device.mtu ?? 0,
    restrict: values.restrict ? 1 : 0,
    hostLoopback: values.noHostLoopback ? 0 : 1,
    ipv6: values.noIpv6 ? 0 : 1,
  };
}

export const user = definePort({
  name: 'user',
  help:
    'a user-mode network with no root (libslirp): DHCP, DNS, and TCP, UDP and\n' +
    "ICMP echo to what the host reaches (see --net, --forward). Needs Debian's\n" +
    'libslirp0 at run time. One queue pair.',
  options: [
    {
      key: 'net',
      flag: 'net',
      label: 'user network',
      type: 'string',
      metavar: 'CIDR',
      default: DEFAULT_USER_NET,
      check: (value) => {
        const r = parseNet(String(value));
        return typeof r === 'string' ? r : undefined;
      },
      help:
        `the user port's IPv4 network (default ${DEFAULT_USER_NET}): the gateway, which is\n` +
        'the host, is .2, the DNS .3, the guest leases .15.',
    },
    {
      key: 'forward',
      flag: 'forward',
      label: 'forwards',
      type: 'string',
      metavar: 'SPEC',
      multiple: true,
      oneDevice: true,
      check: (value) => {
        const r = parseForward(String(value));
        return typeof r === 'string' ? r : undefined;
      },
      help:
        'a host port forwarded into the guest by the user port: tcp:[HOSTADDR:]HOSTPORT:GUESTPORT\n' +
        'or udp:... (HOSTADDR defaults to 127.0.0.1); repeat it for several.',
    },
    {
      key: 'dns',
      flag: 'dns',
      label: 'DNS resolver',
      type: 'string',
      metavar: 'ADDR[:PORT]',
      check: (value) => {
        const r = parseResolver(String(value));
        return typeof r === 'string' ? undefined : r.problem;
      },
      help:
        "the resolver the user port's guest asks through its DNS address (.3), instead of the\n" +
        "host's /etc/resolv.conf: an IPv4 address (127.0.0.1 is the host's loopback) and a port\n" +
        '(default 53). Frames to and from ADDR:PORT are rewritten to and from .3:53.',
    },
    {
      key: 'restrict',
      flag: 'restrict',
      label: 'restricted user network',
      type: 'flag',
      metavar: '',
      help: "the user port's guest reaches nothing outside (no TCP, UDP or ping through the host);\n--forward still works.",
    },
    {
      key: 'noHostLoopback',
      flag: 'no-host-loopback',
      label: 'no host loopback',
      type: 'flag',
      metavar: '',
      help: "the user port's gateway address does not lead to the host's 127.0.0.1.",
    },
    {
      key: 'noIpv6',
      flag: 'no-ipv6',
      label: 'no IPv6',
      type: 'flag',
      metavar: '',
      help: 'the user port offers IPv4 only (IPv6 is fec0::/64 otherwise: gateway ::2, DNS ::3).',
    },
  ],
  maxQueuePairs: 1,
  features: USER_OFFLOADS,
  check: ({ dns, noHostLoopback }, { mtu }) => {
    if (mtu !== undefined && mtu > MAX_USER_MTU)
      return `the user port's stack (libslirp) takes an MTU of at most ${MAX_USER_MTU}: lower --mtu`;
    if (noHostLoopback && String(dns).startsWith('127.')) return '--dns 127.0.0.1 goes through the host loopback: drop --no-host-loopback';
    return undefined;
  },
  describe: ({ net }) => ` on ${net}`,
  forward: runtimeForward,
  native: nativeValues,
});
