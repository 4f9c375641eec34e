/**
 * Switch: a MAC-learning switch of several devices in this process. Each device made with
 * `port: 'switch'` that is attached becomes one port of it, in an access VLAN; frames go from guest to
 * guest by destination MAC in native code, on the switch's own thread (native/net/switch/), copied
 * once; broadcast, multicast and unknown unicast reach every other port of the VLAN. Devices attach
 * and detach at run time; a detached or closed device's MACs are forgotten at once, as are those of a
 * device whose front-end disconnected. Per-port statistics are the devices' own queue counters.
 *
 * A tap interface joins the switch to the host (attachTap): a port like any other, in its own
 * access VLAN, served by the same thread (native/net/switch/tap_uplink.h), with counters of its own.
 * A VXLAN uplink joins it to other hosts (attachVxlan, RFC 7348): one port per remote, which the MAC
 * table learns MACs behind; the remotes never forward to each other (split horizon).
 */
import { VhostUserBackend } from '../backend';
import { native, type NativeSwitch } from '../binding';
import { VhostUserError } from '../errors';
import { PcapCapture, type CaptureOptions } from '../observe/pcap';
import { DEFAULT_POLL_US, MAX_POLL_US, type NetDevice } from './device';
import { LIBRARY_WORDING, integerProblem, type Wording } from './ports/port';
import type { QueueStats } from './stats';
import { checkVxlanOptions, type VxlanOptions } from './vxlan';

export const DEFAULT_AGEING_SECONDS = 300;
export const DEFAULT_MAX_MACS = 4096;
export const DEFAULT_VLAN = 1;

/** The switch's options as messages name them (the CLI by flag, the library by label). */
export const AGEING_OPTION = { key: 'ageingSeconds', flag: 'ageing', label: 'MAC ageing time', min: 1, max: 1_000_000, unit: ' s' };
export const MAX_MACS_OPTION = { key: 'maxMacs', flag: 'mac-table', label: 'MAC table size', min: 1, max: 1 << 20 };
export const SWITCH_POLL_OPTION = { key: 'pollUs', flag: 'poll-us', label: 'poll budget', min: 0, max: MAX_POLL_US, unit: ' µs' };
export const VLAN_OPTION = { key: 'vlan', flag: 'vlan', label: 'VLAN', min: 1, max: 4094 };

export interface SwitchOptions {
  /** Seconds a MAC is remembered without a frame from it. Default 300. */
  ageingSeconds?: number;
  /** MACs the table holds at most; beyond, new ones are refused (counted) and their frames flooded. Default 4096. */
  maxMacs?: number;
  /** Busy-poll budget of the switch's thread in microseconds, as a device's pollUs. Default DEFAULT_POLL_US. */
  pollUs?: number;
  /**
   * Where what the switch's thread reports goes (a tap port that failed), read once a second while a
   * tap is attached. Default: kept for takeEvents().
   */
  log?: (level: 'warn', message: string) => void;
}

export interface AttachOptions {
  /** The port's access VLAN (1..4094): frames never leave it. Default 1. */
  vlan?: number;
  /** The port's name in ports() and macTable(). Default: a back-end's socket path, else `port<N>`. */
  name?: string;
}

export interface SwitchPort {
  /** The port's number in the switch (reused after a detach). */
  port: number;
  name: string;
  vlan: number;
  /** The device of a device's port; undefined for a tap port. */
  device?: NetDevice;
  /** The interface of a tap port; undefined for a device's. */
  tap?: string;
  /** The remote (`address:port`) of a VXLAN uplink's port; undefined for others. */
  vxlan?: string;
  /** A VXLAN port's uplink: datagrams dropped by cause (over all of its remotes). */
  vxlanDrops?: VxlanDrops;
  /** A VXLAN port's uplink, as the port of its first remote: the ports of one uplink share its drops. */
  vxlanUplink?: number;
  /**
   * A device's own counters: per queue, RX (frames to its guest, drops when it had no buffers) then TX.
   * A tap port's in the same shape: RX what the switch wrote to the tap, TX what it read from it.
   */
  stats: QueueStats[];
}

/** Datagrams a VXLAN uplink dropped, by cause; each cause is also logged once. */
export interface VxlanDrops {
  /** From an address that is none of the remotes. */
  unknownSource: bigint;
  /** Shorter than the VXLAN header and an Ethernet header. */
  short: bigint;
  /** Without the I flag. */
  noVni: bigint;
  /** For another VNI. */
  otherVni: bigint;
  /** With an inner frame longer than the uplink's MTU allows. */
  tooLong: bigint;
}

/** What attachVxlan opened. */
export interface VxlanUplinkInfo {
  /** The port of each remote, in the order given. */
  ports: number[];
  /** The largest MTU a guest may use: the smallest underlay MTU toward a remote minus 50 (IPv6: 70). Offer it as the devices' `mtu`. */
  mtu: number;
}

export interface MacEntry {
  /** aa:bb:cc:dd:ee:ff */
  mac: string;
  vlan: number;
  /** The name of the port it sits behind. */
  port: string;
  /** Seconds since its last frame. */
  ageSeconds: number;
}

export interface SwitchCounters {
  /** Entries in the MAC table now. */
  macs: number;
  /** New MACs not learnt because the table was full. */
  refused: bigint;
  /** MACs relearnt on another port. */
  moves: bigint;
  /** Frames sent to every other port of their VLAN (broadcast, multicast, unknown unicast). */
  flooded: bigint;
}

interface Attached {
  name: string;
  vlan: number;
  device?: NetDevice;
  tap?: string;
  vxlan?: string;
  uplink?: number;
}

/** Datagrams dropped by every VXLAN uplink among `ports`, each uplink counted once; undefined with none. */
export function vxlanDropsTotal(ports: readonly SwitchPort[]): VxlanDrops | undefined {
  let total: VxlanDrops | undefined;
  const seen = new Set<number>();
  for (const p of ports) {
    if (!p.vxlanDrops || p.vxlanUplink === undefined || seen.has(p.vxlanUplink)) continue;
    seen.add(p.vxlanUplink);
    const d = p.vxlanDrops;
    total = total
      ? {
          unknownSource: total.unknownSource + d.unknownSource,
          short: total.short + d.short,
          noVni: total.noVni + d.noVni,
          otherVni: total.otherVni + d.otherVni,
          tooLong: total.tooLong + d.tooLong,
        }
      : { ...d };
  }
  return total;
}

/** Checks the switch's options once; throws VhostUserError EINVAL with one line in the given wording. */
export function checkSwitchOptions(opts: SwitchOptions, w: Wording): Required<Omit<SwitchOptions, 'log'>> {
  const checked = {
    ageingSeconds: opts.ageingSeconds ?? DEFAULT_AGEING_SECONDS,
    maxMacs: opts.maxMacs ?? DEFAULT_MAX_MACS,
    pollUs: opts.pollUs ?? DEFAULT_POLL_US,
  };
  const problem =
    integerProblem(AGEING_OPTION, checked.ageingSeconds, w) ??
    integerProblem(MAX_MACS_OPTION, checked.maxMacs, w) ??
    integerProblem(SWITCH_POLL_OPTION, checked.pollUs, w);
  if (problem) throw new VhostUserError('EINVAL', problem);
  return checked;
}

/** Switches not yet closed: a switch lives until close(), like a server, though nothing else refers to it. */
const OPEN = new Set<Switch>();

export class Switch {
  private readonly native: NativeSwitch;
  /** By port number; native is the truth (a closed device leaves it there), pruned in ports(). */
  private readonly attached = new Map<number, Attached>();
  private closed = false;
  private readonly log?: SwitchOptions['log'];
  private eventTimer?: NodeJS.Timeout;
  private pcap: PcapCapture | null = null;

  constructor(opts: SwitchOptions = {}) {
    const { log, ...checkedOnes } = opts;
    const o = checkSwitchOptions(checkedOnes, LIBRARY_WORDING);
    this.log = log;
    this.native = new native.Switch(o.maxMacs, o.ageingSeconds, o.pollUs);
    OPEN.add(this);
  }

  /**
   * Makes a device (or a back-end's device) of `port: 'switch'` a port of this switch, now: its guest's
   * frames go to the other ports of its VLAN from then on. A device is on one switch at a time.
   */
  attach(target: VhostUserBackend | NetDevice, opts: AttachOptions = {}): void {
    this.live();
    const device = target instanceof VhostUserBackend ? target.device : target;
    const vlan = opts.vlan ?? DEFAULT_VLAN;
    const problem = integerProblem(VLAN_OPTION, vlan, LIBRARY_WORDING);
    if (problem) throw new VhostUserError('EINVAL', problem);
    if (device.port !== 'switch')
      throw new VhostUserError('EINVAL', `only a device of port 'switch' joins a switch (this one's port is ${device.port})`);
    const port = this.native.attach(device.native, vlan);
    const name = opts.name ?? (target instanceof VhostUserBackend ? target.socketPath : `port${port}`);
    this.attached.set(port, { name, vlan, device });
  }

  /**
   * Opens the tap interface `ifname` (creating it if absent; root or a tap made for this user) as a
   * port of this switch: frames from the guests to MACs behind it are written to it, frames read
   * from it are switched to the guests, in its access VLAN. No offloads. Returns its port number.
   */
  attachTap(ifname: string, opts: AttachOptions = {}): number {
    this.live();
    const vlan = opts.vlan ?? DEFAULT_VLAN;
    const problem = integerProblem(VLAN_OPTION, vlan, LIBRARY_WORDING);
    if (problem) throw new VhostUserError('EINVAL', problem);
    const port = this.native.attachTap(ifname, vlan);
    this.attached.set(port, { name: opts.name ?? ifname, vlan, tap: ifname });
    this.watchEvents();
    return port;
  }

  /**
   * Joins the switch to other hosts over VXLAN (RFC 7348): one UDP socket (bound to `local`, port
   * 4789 unless told) carrying VNI `vni` to each remote, which may be a Linux vxlan device (`ip link
   * add ... type vxlan id VNI remote <our address> dstport 4789`) or another switch. Each remote is a
   * port (named vxlan:ADDR:PORT) in the access VLAN `vlan`; frames between remotes are never
   * forwarded. Guests must fit the encapsulation: give their devices `mtu` at most the returned one.
   */
  attachVxlan(opts: VxlanOptions): VxlanUplinkInfo {
    this.live();
    const vlan = opts.vlan ?? DEFAULT_VLAN;
    const problem = integerProblem(VLAN_OPTION, vlan, LIBRARY_WORDING);
    if (problem) throw new VhostUserError('EINVAL', problem);
    const c = checkVxlanOptions(opts, LIBRARY_WORDING);
    const info = this.native.attachVxlan(c.local.address, c.local.port, c.remotes, c.vni, vlan);
    for (const p of this.native.ports()) {
      if (info.ports.includes(p.port)) this.attached.set(p.port, { name: `vxlan:${p.vxlan}`, vlan, vxlan: p.vxlan, uplink: info.ports[0] });
    }
    this.watchEvents();
    return info;
  }

  /** Closes the VXLAN uplink that `port` is a remote of (its MACs forgotten at once); false when there is none. */
  detachVxlan(port: number): boolean {
    this.live();
    const done = this.native.detachVxlan(port);
    if (done)
      for (const [p, a] of this.attached)
        if (a.vxlan !== undefined && !this.native.ports().some((n) => n.port === p)) this.attached.delete(p);
    return done;
  }

  private watchEvents(): void {
    if (this.log && !this.eventTimer) {
      this.eventTimer = setInterval(() => this.drainEvents(), 1000);
      this.eventTimer.unref();
    }
  }

  /** Closes the tap port of `ifname` (its MACs are forgotten at once); false when there is none. */
  detachTap(ifname: string): boolean {
    this.live();
    for (const [port, a] of this.attached) {
      if (a.tap !== ifname) continue;
      this.attached.delete(port);
      return this.native.detachTap(port);
    }
    return false;
  }

  /** What the switch's thread reported since the last call (with `log` given, it goes there instead). */
  takeEvents(): string[] {
    this.live();
    return this.native.takeEvents();
  }

  private drainEvents(): void {
    if (this.closed) return;
    for (const e of this.native.takeEvents()) this.log?.('warn', `switch: ${e}`);
  }

  /** Takes the device off the switch (its MACs are forgotten at once); false when it was not on it. */
  detach(target: VhostUserBackend | NetDevice): boolean {
    this.live();
    const device = target instanceof VhostUserBackend ? target.device : target;
    for (const [port, a] of this.attached) if (a.device === device) this.attached.delete(port);
    return this.native.detach(device.native);
  }

  /** The ports now attached, in attach order, with their devices' counters. */
  ports(): SwitchPort[] {
    this.live();
    const now = this.native.ports();
    for (const port of [...this.attached.keys()]) if (!now.some((p) => p.port === port)) this.attached.delete(port);
    return now.flatMap(({ port, vlan, tap, vxlan }): SwitchPort[] => {
      const a = this.attached.get(port);
      if (!a) return [];
      if (vxlan !== undefined) {
        const v = this.native.vxlanStats(port);
        return [
          {
            port,
            name: a.name,
            vlan,
            vxlan,
            stats: (v?.stats ?? []) as QueueStats[],
            vxlanDrops: v?.drops as VxlanDrops | undefined,
            vxlanUplink: a.uplink,
          },
        ];
      }
      if (tap === undefined) return a.device ? [{ port, name: a.name, vlan, device: a.device, stats: a.device.stats() }] : [];
      const stats = (this.native.tapStats(port) ?? []) as QueueStats[];
      return [{ port, name: a.name, vlan, tap, stats }];
    });
  }

  /**
   * Starts writing every frame that enters the switch (from a guest or a tap), once, as it leaves its
   * source port, to the pcap file `path` (lib/observe/pcap.ts; one ring, the switch's thread writes it
   * and never waits: what does not fit is counted as not captured). One at a time; close() stops it.
   */
  capture(path: string, opts: CaptureOptions = {}): PcapCapture {
    this.live();
    if (this.pcap) throw new VhostUserError('EBUSY', `a capture to ${this.pcap.path} is running on this switch: stop it first`);
    const pcap = new PcapCapture(this.native, path, opts, () => {
      if (this.pcap === pcap) this.pcap = null;
    });
    this.pcap = pcap;
    return pcap;
  }

  /** What the switch has learnt: each MAC, its VLAN, the port it is behind and its age. */
  macTable(): MacEntry[] {
    this.live();
    return this.native.macTable().map((e) => ({ ...e, port: this.attached.get(e.port)?.name ?? `port${e.port}` }));
  }

  counters(): SwitchCounters {
    this.live();
    return this.native.counters();
  }

  /** Detaches every device (they stay open, unserved) and stops the switch's thread. */
  close(): void {
    if (this.closed) return;
    // A capture still running writes what it holds and closes its file (its stop() says how it went).
    this.pcap?.stop().catch(() => {});
    if (this.eventTimer) this.drainEvents();
    clearInterval(this.eventTimer);
    this.closed = true;
    OPEN.delete(this);
    this.attached.clear();
    this.native.close();
  }

  private live(): void {
    if (this.closed) throw new VhostUserError('EBADF', 'the switch is closed');
  }
}
