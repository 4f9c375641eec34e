/**
 * A switch's VXLAN uplink as the control plane sees it (RFC 7348; the data path is
 * native/net/switch/vxlan_uplink.h): its options, checked once here in the library's or the CLI's
 * words, and endpoints (`ADDR`, `ADDR:PORT`, `[V6]`, `[V6]:PORT`) parsed into plain values for native.
 */
import * as net from 'node:net';
import { VhostUserError } from '../errors';
import { integerProblem, type Wording } from './ports/port';

/** IANA's VXLAN port, Linux's `dstport 4789`. */
export const VXLAN_PORT = 4789;
/** Bytes VXLAN adds below a guest's MTU over an IPv4 underlay (inner Ethernet 14, VXLAN 8, UDP 8, IPv4 20). */
export const VXLAN_OVERHEAD_V4 = 50;
export const VXLAN_OVERHEAD_V6 = 70;

export const VNI_OPTION = { key: 'vni', flag: 'vni', label: 'VXLAN network identifier (VNI)', min: 0, max: 0xffffff };
export const UDP_PORT_OPTION = { key: 'port', flag: 'vxlan', label: 'UDP port', min: 1, max: 65535 };

export interface VxlanOptions {
  /** The remote ends (VTEPs): `ADDR`, `ADDR:PORT`, `[V6]` or `[V6]:PORT`; PORT defaults to 4789. One family. */
  remotes: string[];
  /** The VXLAN network identifier, 0..16777215, as the remotes' `ip link add ... type vxlan id N`. */
  vni: number;
  /** The local address the uplink's UDP socket is bound to. Default: any address of the remotes' family. */
  local?: string;
  /** The local UDP port. Default 4789. */
  port?: number;
  /** The access VLAN of the uplink's ports (1..4094). Default 1. */
  vlan?: number;
}

export interface Endpoint {
  address: string;
  port: number;
}

/** What `text` names, or a problem phrase (after the option's name). */
export function parseEndpoint(text: string, defaultPort: number): Endpoint | string {
  let address = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(text);
  if (bracketed) [, address, portText] = bracketed;
  else if (text.split(':').length === 2) [address, portText] = text.split(':');
  const family = net.isIP(address);
  if (family === 0 || (bracketed && family !== 6)) return `'${text}' is not ADDR, ADDR:PORT or [IPv6]:PORT`;
  if (portText === undefined) return { address, port: defaultPort };
  const port = /^\d+$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) return `'${text}': the port must be 1..65535`;
  return { address, port };
}

export interface CheckedVxlan {
  remotes: Endpoint[];
  local: Endpoint;
  vni: number;
}

/** Checks a VXLAN uplink's options; throws VhostUserError EINVAL with one line in the given wording. */
export function checkVxlanOptions(opts: VxlanOptions, w: Wording, remoteName = 'remote', localName = 'local'): CheckedVxlan {
  const bad = (problem: string): never => {
    throw new VhostUserError('EINVAL', problem);
  };
  const vniProblem = integerProblem(VNI_OPTION, opts.vni, w);
  if (vniProblem) bad(opts.vni === undefined ? `a VXLAN uplink needs ${w.missing({ ...VNI_OPTION, metavar: 'N' })}` : vniProblem);
  const localPort = opts.port ?? VXLAN_PORT;
  const portProblem = integerProblem(UDP_PORT_OPTION, localPort, w);
  if (portProblem) bad(portProblem);
  if (!Array.isArray(opts.remotes) || opts.remotes.length === 0) bad(`a VXLAN uplink needs at least one ${remoteName}`);
  const remotes = opts.remotes.map((t) => {
    const e = typeof t === 'string' ? parseEndpoint(t, VXLAN_PORT) : `${String(t)} is not a string`;
    return typeof e === 'string' ? bad(`${remoteName} ${e}`) : e;
  });
  let local: Endpoint = { address: '', port: localPort };
  if (opts.local !== undefined) {
    if (net.isIP(opts.local) === 0) bad(`${localName} '${opts.local}' is not an IPv4 or IPv6 address`);
    local = { address: opts.local, port: localPort };
  }
  const family = net.isIP(local.address || remotes[0].address);
  for (const r of remotes) {
    if (net.isIP(r.address) !== family)
      bad(`${remoteName} ${r.address} is not of the same family (IPv${family}) as the ${local.address ? localName : 'first remote'}`);
  }
  if (new Set(remotes.map((r) => r.address)).size !== remotes.length) bad(`each ${remoteName} must be a different address`);
  return { remotes, local, vni: opts.vni };
}
