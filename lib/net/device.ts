/**
 * A virtio-net device: its configuration, the features it offers (decided here, once, from what its
 * port and the native data path honour) and the native half that moves the packets.
 */
import { native, type NativeNetDevice } from '../binding';
import { VhostUserError } from '../errors';
import type { MemoryRegion, MemoryRegionWithFd } from '../protocol/codec';
import { ProtocolFeature, VirtioFeature, bit } from '../protocol/constants';
import { VirtioNetFeature } from './features';
import type { VhostUserDevice, VringAddresses } from '../protocol/device';
import { featureNames } from '../protocol/features';
import { macText } from '../protocol/payloads';
import { LIBRARY_WORDING, integerProblem, type Wording } from './ports/port';
import { resolvePort, type PortKind, type PortOptionValues, type ResolvedPort } from './ports/resolve';
import { PcapCapture, type CaptureOptions } from '../observe/pcap';
import { readAllStats, xstats, type QueueStats } from './stats';
import { JsFrames, type FrameBatch, type SendCounts, type SendOptions } from './frames';
import { slotSizeFor } from './ports/js';
import { decodeDeviceState, encodeDeviceState, type DeviceState } from './device_state';
import { WaitingForwards } from './waiting_forwards';

export type { PortKind } from './ports/resolve';
export type { FrameBatch, SendCounts, SendOptions } from './frames';

/** The port options (tap, frameSize, ...) come from the port registry, lib/net/ports. */
export interface NetDeviceOptions extends PortOptionValues {
  /** Queue pairs the device reports (GET_QUEUE_NUM). Default 1. */
  queuePairs?: number;
  /** Where frames go (lib/net/ports). Default 'user' ('tap' when `tap` is given). */
  port?: PortKind;
  /** If set, the device offers VIRTIO_NET_F_MTU and accepts NET_SET_MTU up to this value. */
  mtu?: number;
  /**
   * Busy-poll budget of each of the device's worker threads, in microseconds: while traffic flows it polls
   * the rings (guest kicks suppressed) and sleeps once this long passed without work. 0: purely
   * event-driven (a kick wakes it for every burst). Default DEFAULT_POLL_US.
   */
  pollUs?: number;
  /**
   * Worker threads serving the queue pairs (1..queuePairs): pair p is served by worker p % workers.
   * Default queuePairs, a thread per pair.
   */
  workers?: number;
}

export const DEFAULT_POLL_US = 50;
export const MAX_POLL_US = 1_000_000;

export const MAX_QUEUE_PAIRS = 16;

/** The device's own options as messages name them (the CLI by flag, the library by label). */
export const QUEUES_OPTION = { key: 'queuePairs', flag: 'queues', label: 'queue pairs', min: 1, max: MAX_QUEUE_PAIRS };
export const MTU_OPTION = { key: 'mtu', flag: 'mtu', label: 'MTU', min: 68, max: 65535 };
export const WORKERS_OPTION = { key: 'workers', flag: 'workers', label: 'worker threads', min: 1 };
export const POLL_OPTION = { key: 'pollUs', flag: 'poll-us', label: 'poll budget', min: 0, max: MAX_POLL_US, unit: ' µs' };

/** Device options, checked and with their defaults. */
export interface CheckedDeviceOptions {
  queuePairs: number;
  mtu: number | undefined;
  pollUs: number;
  workers: number;
  port: ResolvedPort;
}

/**
 * Checks every device option once, the port's through its registry entry; throws VhostUserError
 * EINVAL with one line in the given wording (the CLI calls it with its own before building anything).
 */
export function checkDeviceOptions(opts: NetDeviceOptions, w: Wording): CheckedDeviceOptions {
  const queuePairs = opts.queuePairs ?? 1;
  const pollUs = opts.pollUs ?? DEFAULT_POLL_US;
  const problem =
    integerProblem(QUEUES_OPTION, queuePairs, w) ??
    (opts.mtu === undefined ? undefined : integerProblem(MTU_OPTION, opts.mtu, w)) ??
    integerProblem(POLL_OPTION, pollUs, w);
  if (problem) throw new VhostUserError('EINVAL', problem);
  const workers = opts.workers ?? queuePairs;
  // At most one thread per pair: a pair is served by one thread, so more would idle.
  const workersProblem = integerProblem({ ...WORKERS_OPTION, max: queuePairs, unit: ' (at most one per queue pair)' }, workers, w);
  if (workersProblem) throw new VhostUserError('EINVAL', workersProblem);
  const port = resolvePort(opts, { queuePairs, mtu: opts.mtu }, w);
  if (port.spec.servedInline || port.spec.hosted) {
    const where = port.spec.hosted ? "its switch's thread" : "the program's thread";
    if (opts.workers !== undefined)
      throw new VhostUserError('EINVAL', `the ${port.spec.name} port runs on ${where}: drop ${w.option(WORKERS_OPTION)}`);
    return { queuePairs, mtu: opts.mtu, pollUs, workers: 0, port };
  }
  return { queuePairs, mtu: opts.mtu, pollUs, workers, port };
}

/**
 * The ring and virtio-net features the native data path implements for every port: both ring
 * layouts (split and packed, chosen by the driver). IN_ORDER holds because every port returns
 * buffers in the order the guest made them available.
 */
const RING_FEATURES =
  bit(VirtioFeature.VERSION_1) |
  bit(VirtioFeature.ANY_LAYOUT) |
  bit(VirtioFeature.RING_INDIRECT_DESC) |
  bit(VirtioFeature.RING_EVENT_IDX) |
  bit(VirtioFeature.IN_ORDER) |
  bit(VirtioFeature.RING_PACKED) |
  bit(VirtioFeature.PROTOCOL_FEATURES) |
  bit(VirtioFeature.LOG_ALL) |
  bit(VirtioNetFeature.MRG_RXBUF);

/**
 * Protocol features offered. Nothing is offered that the device does not honour: LOG_SHMFD with
 * VHOST_F_LOG_ALL (every port's writes are logged while migrating, native/core/dirty_log.h);
 * DEVICE_STATE (the port's state, ./device_state.ts; QEMU 7.2 never asks for it); no BACKEND_REQ, no
 * CONFIG (QEMU keeps the config space itself).
 */
const PROTOCOL_FEATURES =
  bit(ProtocolFeature.MQ) |
  bit(ProtocolFeature.LOG_SHMFD) |
  bit(ProtocolFeature.REPLY_ACK) |
  bit(ProtocolFeature.MTU) |
  bit(ProtocolFeature.CONFIGURE_MEM_SLOTS) |
  bit(ProtocolFeature.STATUS) |
  bit(ProtocolFeature.RARP) |
  bit(ProtocolFeature.DEVICE_STATE);

export class NetDevice implements VhostUserDevice {
  readonly queuePairs: number;
  /** Worker threads serving the pairs (pair p on worker p % workers); 0: this thread (the js port) or a switch's serves them. */
  readonly workers: number;
  readonly port: PortKind;
  /** The tap interface of the tap port. */
  readonly tap: string | undefined;
  readonly maxMtu: number | undefined;
  readonly features: bigint;
  readonly protocolFeatures: bigint = PROTOCOL_FEATURES;
  readonly native: NativeNetDevice;
  /** Set by NET_SET_MTU. */
  mtu: number | undefined;
  /** The port as resolved: its declaration and checked values (for run-time forwards). */
  private readonly resolved: ResolvedPort;
  /** The js port's end in JavaScript; null for the other ports. */
  private readonly jsFrames: JsFrames | null = null;
  /** Queues the driver enabled, and whether a front-end set the device up since the last reset. */
  private readonly enabled = new Set<number>();
  private live = false;
  /** The running capture (capture()), until its stop(). */
  private pcap: PcapCapture | null = null;
  /** Forwards of a loaded state whose host port was taken, tried again until it is free. */
  private readonly waiting = new WaitingForwards((spec) => this.native.forward(true, spec));

  constructor(opts: NetDeviceOptions = {}) {
    const checked = checkDeviceOptions(opts, LIBRARY_WORDING);
    const port = checked.port;
    this.resolved = port;
    this.queuePairs = checked.queuePairs;
    this.workers = checked.workers;
    this.port = port.spec.name as PortKind;
    this.tap = opts.tap;
    this.maxMtu = checked.mtu;
    let features = RING_FEATURES | (port.spec.features ?? 0n);
    if (this.maxMtu !== undefined) features |= bit(VirtioNetFeature.MTU);
    if (this.queuePairs > 1) features |= bit(VirtioNetFeature.MQ);
    this.features = features;
    this.native = new native.NetDevice(this.queuePairs, this.port, port.native, this.workers);
    this.native.setPollMicros(checked.pollUs);
    if (this.port === 'js') {
      const slots = Number(port.values.ringSlots);
      const pairs = () => this.activePairs();
      this.jsFrames = new JsFrames(this.native, slots, slotSizeFor(this.maxMtu), pairs, () => this.live, checked.pollUs);
    }
  }

  /**
   * The js port: the guest's transmitted frames, one batch per burst, as views valid until the next
   * iteration (writable: change them in place and send them back). Ends when the loop is left, the
   * front-end disconnects or the device closes. One loop at a time.
   */
  frames(): AsyncIterableIterator<FrameBatch> {
    return this.js('frames()').frames();
  }

  /**
   * The js port: queues frames (Ethernet, no virtio-net header) for the guest to receive; resolves once
   * they are queued, waits while the rings are full. Views from frames() are sent without a copy.
   */
  send(frames: ArrayLike<Uint8Array>, opts?: SendOptions): Promise<void> {
    try {
      return this.js('send()').send(frames, opts);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The js port: how the frames sent so far were queued (by reference to a received view, or copied). */
  get sendCounts(): SendCounts {
    return { ...this.js('sendCounts').counts };
  }

  /**
   * The user port: opens a host port into the guest now, like --forward: one spec,
   * tcp:[HOSTADDR:]HOSTPORT:GUESTPORT or udp:... (HOSTADDR 127.0.0.1 by default).
   */
  addForward(spec: string): void {
    this.native.forward(true, this.forwardSpec(spec, true));
  }

  /** The user port: closes a forward --forward or addForward opened: tcp:[HOSTADDR:]HOSTPORT (or udp:). */
  removeForward(spec: string): void {
    const key = this.forwardSpec(spec, false);
    if (!this.waiting.remove(key)) this.native.forward(false, key);
  }

  /** The user port: forwards of a loaded device state that wait for their host port (see loadState). */
  waitingForwards(): string[] {
    return this.waiting.list();
  }

  private forwardSpec(spec: string, add: boolean): string {
    const { spec: port, values } = this.resolved;
    if (!port.forward) throw new VhostUserError('ENOTSUP', `the ${port.name} port has no forwards: use device: { port: 'user' }`);
    const r = port.forward(spec, add, values);
    if ('problem' in r) throw new VhostUserError('EINVAL', r.problem);
    return r.native;
  }

  /** The pairs the driver enabled: pair 0, and each other pair with both its queues enabled. */
  activePairs(): number[] {
    const out = [0];
    for (let p = 1; p < this.queuePairs; p++) if (this.enabled.has(2 * p) && this.enabled.has(2 * p + 1)) out.push(p);
    return out;
  }

  private js(what: string): JsFrames {
    if (!this.jsFrames)
      throw new VhostUserError('EINVAL', `${what} needs the js port: device: { port: 'js' } (this device's port is ${this.port})`);
    return this.jsFrames;
  }

  get queueCount(): number {
    return 2 * this.queuePairs;
  }

  /** The names of the worker threads (`vhu-<device>-w<k>` in /proc/PID/task/TID/comm), one per worker. */
  get workerNames(): string[] {
    return this.native.workerNames;
  }

  stats(): QueueStats[] {
    return readAllStats(this.native.stats);
  }

  /** Every counter of every queue under DPDK's vhost names (`rx_q0_good_packets`...; see lib/net/stats.ts). */
  xstats(): Record<string, bigint> {
    return xstats(this.stats());
  }

  /**
   * Starts writing every frame of the device, both directions, to the pcap file `path` (see
   * lib/observe/pcap.ts); it lasts across front-end reconnects until the handle's stop(). One at a time.
   */
  capture(path: string, opts: CaptureOptions = {}): PcapCapture {
    if (this.pcap) throw new VhostUserError('EBUSY', `a capture to ${this.pcap.path} is running on this device: stop it first`);
    const pcap = new PcapCapture(this.native, path, opts, () => {
      if (this.pcap === pcap) this.pcap = null;
    });
    this.pcap = pcap;
    return pcap;
  }

  /** What went wrong in the data path since the last call (queues broken, chains dropped, memory faults; waiting forwards given up). */
  takeEvents(): string[] {
    return [...this.waiting.takeEvents(), ...this.native.takeEvents()];
  }

  /** What went well since the last call, worth a line in the log: waiting forwards opened. */
  takeNotices(): string[] {
    return this.waiting.takeNotices();
  }

  /** Stops the data path for good and releases the port (closes a tap); only reset() works afterwards. */
  close(): void {
    this.jsFrames?.end('closed');
    // A capture still running writes what it holds and closes its file (its stop() says how it went).
    this.pcap?.stop().catch(() => {});
    this.waiting.stop();
    this.native.close();
  }

  // VhostUserDevice: what the protocol asks of the device, handed to the native half.

  /** GET_QUEUE_NUM counts queue pairs for virtio-net (QEMU compares it with -netdev vhost-user,queues=N). */
  get queueNum(): number {
    return this.queuePairs;
  }

  setFeatures(acked: bigint): void {
    this.native.setFeatures(acked);
    this.live = true;
  }

  describeFeatures(mask: bigint): string[] {
    return [...featureNames(mask, VirtioFeature), ...featureNames(mask, VirtioNetFeature)];
  }

  setMemTable(regions: MemoryRegionWithFd[]): void {
    this.native.setMemTable(regions);
  }

  addMemRegion(region: MemoryRegionWithFd): void {
    this.native.addMemReg(region);
  }

  removeMemRegion(region: MemoryRegion): void {
    this.native.remMemReg(region);
  }

  setVringNum(queue: number, num: number): void {
    this.native.setVringNum(queue, num);
  }

  setVringAddr(queue: number, addr: VringAddresses): void {
    this.native.setVringAddr(queue, addr.desc, addr.used, addr.avail, addr.log ?? null);
  }

  setVringBase(queue: number, base: number): void {
    this.native.setVringBase(queue, base);
  }

  getVringBase(queue: number): number {
    return this.native.getVringBase(queue);
  }

  setVringKick(queue: number, fd: number): void {
    this.native.setVringKick(queue, fd);
  }

  setVringCall(queue: number, fd: number): void {
    this.native.setVringCall(queue, fd);
  }

  setVringErr(queue: number, fd: number): void {
    this.native.setVringErr(queue, fd);
  }

  setVringEnable(queue: number, on: boolean): void {
    this.native.setVringEnable(queue, on);
    if (on) this.enabled.add(queue);
    else this.enabled.delete(queue);
  }

  reset(): void {
    this.live = false;
    this.enabled.clear();
    this.jsFrames?.end('disconnected');
    this.native.reset();
  }

  /** SET_LOG_BASE: the front-end's dirty-page log; the device logs into it while LOG_ALL is acked. */
  setLogBase(fd: number, size: bigint, offset: bigint): void {
    this.native.setLogBase(fd, size, offset);
  }

  /** Whether the device logs its writes to guest memory now (a migration is running). */
  get logging(): boolean {
    return this.native.logging;
  }

  /**
   * SEND_RARP: the guest arrived here by migration. A port on a network (tap, switch) sends a RARP
   * from its MAC so that the network learns where it is now; the others have nobody to tell.
   * Returns what happened, for the log.
   */
  announce(mac: Buffer): string {
    const text = macText(mac);
    return this.native.announce(mac)
      ? `guest ${text} arrived: announced it to the ${this.port} port's network (RARP)`
      : `guest ${text} arrived: the ${this.port} port has no network to announce it to`;
  }

  /** DEVICE_STATE's precondition: no ring runs (each stopped by GET_VRING_BASE, or never started). */
  ringsStopped(): boolean {
    return this.native.ringsStopped;
  }

  /** DEVICE_STATE, save: the port's state as a blob (./device_state.ts); forwards still waiting go too. */
  saveState(): Buffer {
    const state = this.native.saveState();
    state.forwards.push(...this.waiting.list().map((spec) => this.forwardSpec(spec, true)));
    return encodeDeviceState(this.port, state);
  }

  /**
   * DEVICE_STATE, load: the blob read whole and checked (every forward by the port's own rules) before
   * any of it is applied. A forward whose host port is taken (on one host, the source still holds it)
   * waits and is tried every second; any other failure undoes what this load did and throws. Returns
   * what was loaded, for the log.
   */
  loadState(blob: Buffer): string {
    const state = decodeDeviceState(blob, this.port);
    const forwards = state.forwards.map((spec) => ({ spec, native: this.forwardSpec(spec, true) }));
    const open = new Set(state.forwards.length ? [...this.native.saveState().forwards, ...this.waiting.keys()].map(forwardKey) : []);
    const opened: string[] = [];
    const waiting: { spec: string; native: string }[] = [];
    try {
      for (const f of forwards) {
        if (open.has(forwardKey(f.native))) continue; // this device (or this blob, twice) has it already
        open.add(forwardKey(f.native));
        try {
          this.native.forward(true, f.native);
          opened.push(f.native);
        } catch (err) {
          if ((err as VhostUserError).code !== 'EADDRINUSE') throw err;
          waiting.push(f);
        }
      }
      this.native.loadState({ slirpVersion: state.slirpVersion, slirp: state.slirp, macs: state.macs });
    } catch (err) {
      for (const spec of opened) this.native.forward(false, forwardKey(spec));
      throw err;
    }
    for (const f of waiting) this.waiting.add(f.native, f.spec);
    return describeLoaded(
      state,
      waiting.map((f) => f.spec),
    );
  }

  /** NET_SET_MTU: up to the MTU the device offers, or any valid MTU when it offers none. */
  setMtu(mtu: bigint): void {
    const limit = BigInt(this.maxMtu ?? 65535);
    if (mtu < 68n || mtu > limit) throw new VhostUserError('EINVAL', `NET_SET_MTU: MTU ${mtu} outside 68..${limit} (see --mtu)`);
    this.mtu = Number(mtu);
  }
}

/** proto:host:hostport of a spelled-out forward: what names it (removeForward's spec). */
function forwardKey(spelled: string): string {
  return spelled.split(':').slice(0, 3).join(':');
}

function describeLoaded(state: DeviceState, waiting: string[]): string {
  const parts: string[] = [];
  if (state.forwards.length) parts.push(`${state.forwards.length} forward(s)`);
  if (waiting.length) parts.push(`waiting for their host port, tried every second: ${waiting.join(', ')}`);
  if (state.slirpVersion >= 0) parts.push(`libslirp state of ${state.slirp.length} bytes`);
  if (state.macs.length) parts.push(`${state.macs.length} MAC(s) learnt behind its switch port`);
  return `the ${state.port} port's state: ${parts.length ? parts.join('; ') : 'nothing to carry'}`;
}
