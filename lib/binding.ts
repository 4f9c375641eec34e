/**
 * The native addon, loaded once, behind one typed interface. Nothing else in the package touches
 * `require('bindings')`, and nothing outside this file sees an untyped value from C++.
 */
import { VhostUserError } from './errors';

/** A memory region as handed to the native device (the fd is consumed by the call). */
export interface NativeRegion {
  guestPhysAddr: bigint;
  size: bigint;
  userAddr: bigint;
  mmapOffset: bigint;
  fd: number;
}

export interface NativePoller {
  /** Stops watching; the fd itself is not closed. */
  stop(): void;
  /** false: the watch no longer keeps Node running (its callback still runs); true: it does again (the default). */
  setRef(on: boolean): void;
}

export interface NativeMapping {
  /** The mapped bytes; detached after unmap(). */
  readonly buffer: ArrayBuffer;
  /** Where the mapping lies in this process (what the kernel's vhost reads). */
  readonly address: bigint;
  unmap(): void;
}

/** The js port's shared rings (native/net/frame_rings.h): the mapping and where things are in it. */
export interface NativeFrameRings {
  readonly buffer: ArrayBuffer;
  readonly pairs: number;
  readonly slots: number;
  readonly slotSize: number;
  readonly ringsStart: number;
  readonly ringStride: number;
  readonly slotsStart: number;
}

/** One virtio-net device's native half: guest memory, queues, worker threads, a port per queue pair. */
export interface NativeNetDevice {
  /** queueCount * queueStatStride u64 counters written by the workers (see lib/net/stats.ts). */
  readonly stats: ArrayBuffer;
  /** The worker threads' names (`vhu-<device>-w<k>`), indexed by worker; pair p is on worker p % count. */
  readonly workerNames: string[];
  setMemTable(regions: NativeRegion[]): void;
  addMemReg(region: NativeRegion): void;
  remMemReg(region: Omit<NativeRegion, 'fd'>): void;
  setFeatures(features: bigint): void;
  /** Busy-poll budget of the workers, microseconds; 0 = event-driven only. */
  setPollMicros(us: number): void;
  setVringNum(queue: number, num: number): void;
  setVringBase(queue: number, base: number): void;
  setVringAddr(queue: number, desc: bigint, used: bigint, avail: bigint, log: bigint | null): void;
  setLogBase(fd: number, size: bigint, offset: bigint): void;
  /** Whether the device logs its writes now (a log mapped and VHOST_F_LOG_ALL acked). */
  readonly logging: boolean;
  getVringBase(queue: number): number;
  /** fd -1 means none; a given fd is owned by the device from then on. */
  setVringKick(queue: number, fd: number): void;
  setVringCall(queue: number, fd: number): void;
  setVringErr(queue: number, fd: number): void;
  setVringEnable(queue: number, on: boolean): void;
  reset(): void;
  /** Stops for good and releases the port (closes a tap). Only reset/close work afterwards. */
  close(): void;
  /** What the worker logged since the last call (queues broken, chains dropped). */
  takeEvents(): string[];
  /** The js port's rings, made on the first call (the same object afterwards); the buffer is detached by close(). */
  frameRings(slots: number, slotSize: number): NativeFrameRings;
  /**
   * A device made with 0 workers: one pass over every pair on this thread; whether anything moved.
   * `arm`: ask the guest for kicks where there is nothing to do (false while polling).
   */
  serveInline(arm: boolean): boolean;
  /** A device made with 0 workers: readable when a queue was kicked (serveInline drains it); else -1. */
  readonly inlineFd: number;
  /** The user port: opens (add) or closes a host -> guest forward, spelled out by lib/net/ports/user.ts. */
  forward(add: boolean, spec: string): void;
  /** SEND_RARP: true when the port sent the announcement to a network. */
  announce(mac: Buffer): boolean;
  /** DEVICE_STATE: the port's state (native/net/port_state.h), its worker stopped meanwhile. */
  saveState(): NativePortState;
  /** DEVICE_STATE: takes in checked values (the forwards go through forward()); throws, having changed nothing. */
  loadState(state: Omit<NativePortState, 'forwards'>): void;
  /** Whether no ring runs (none has a kick fd): the device is suspended, as a state transfer needs. */
  readonly ringsStopped: boolean;
}

/** What a port carries to another back-end (native/net/port_state.h); only its own kind's fields are filled. */
export interface NativePortState {
  /** The user port's open forwards, spelled out as lib/net/ports/user.ts does. */
  forwards: string[];
  /** The user port: libslirp's state format version (-1: none saved) and its bytes. */
  slirpVersion: number;
  slirp: Buffer;
  /** The switch port: the MACs learnt behind it, 6 bytes each. */
  macs: Buffer[];
}

/**
 * A capture's rings (native/net/capture.h): one per queue pair, whose bytes are pcap records, in one
 * mapping seen as `buffer`. Made attached to a device; stop() detaches (no record written afterwards),
 * close() detaches and unmaps (`buffer` is detached first).
 */
export interface NativeCapture {
  readonly buffer: ArrayBuffer;
  readonly pairs: number;
  /** An eventfd a worker writes when a ring is a quarter full after writerSleeps(); closed by close(). */
  readonly wakeFd: number;
  /** The writer found every ring empty and sleeps: wake it (wakeFd) when one fills. Look once more after. */
  writerSleeps(): void;
  /** [offset in buffer, length]: the next bytes of pair's ring to write out, in one piece (length 0: none). */
  readable(pair: number): [number, number];
  /** `bytes` of what readable() gave are written: the worker may reuse them. */
  consume(pair: number, bytes: number): void;
  /** Records written into the rings, and frames not captured for lack of room, over every pair. */
  counts(): { frames: number; dropped: number };
  stop(): void;
  close(): void;
}

/** A switch's native half (native/net/switch/switch.h): the MAC table, the thread serving its ports. */
export interface NativeSwitch {
  /** Attaches a device of port 'switch' in `vlan` (1..4094); returns its port number. */
  attach(device: NativeNetDevice, vlan: number): number;
  /** false when the device is not attached to this switch. */
  detach(device: NativeNetDevice): boolean;
  /** `tap`: the interface of a tap uplink port; absent for a device's. */
  ports(): { port: number; vlan: number; tap?: string; vxlan?: string }[];
  macTable(): { mac: string; vlan: number; port: number; ageSeconds: number }[];
  counters(): { macs: number; refused: bigint; moves: bigint; flooded: bigint };
  /** Opens the tap `ifname` (created if absent) as a port in `vlan`; returns its port number. */
  attachTap(ifname: string, vlan: number): number;
  /** Closes the tap port `port`; false when there is none. */
  detachTap(port: number): boolean;
  /** A tap port's counters: [to the tap, from it] under the queue counters' names; undefined when no such port. */
  tapStats(port: number): [Record<string, bigint>, Record<string, bigint>] | undefined;
  /** Opens a VXLAN uplink (native/net/switch/vxlan_uplink.h), one port per remote; mtu: the largest guest MTU it carries. */
  attachVxlan(
    localAddress: string,
    localPort: number,
    remotes: { address: string; port: number }[],
    vni: number,
    vlan: number,
  ): {
    ports: number[];
    mtu: number;
  };
  /** Closes the VXLAN uplink one of whose ports is `port`; false when there is none. */
  detachVxlan(port: number): boolean;
  /** A VXLAN remote's counters as tapStats's, and its uplink's dropped datagrams by cause; undefined when no such port. */
  vxlanStats(port: number): { stats: [Record<string, bigint>, Record<string, bigint>]; drops: Record<string, bigint> } | undefined;
  /** What the switch's thread reported since the last call (a tap gone). */
  takeEvents(): string[];
  /** Detaches every device and stops the thread; other calls throw EBADF afterwards. */
  close(): void;
}

/** A port's options as its native factory gets them: plain values only, checked in TypeScript. */
export type NativePortOptions = Record<string, string | number>;

export interface RecvResult {
  bytes: Buffer;
  fds: number[];
  /** The kernel had to cut the message or its fds: the peer sent more than any message may carry. */
  truncated: boolean;
}

/**
 * The kernel's vhost ioctls (native/napi/vhost_kernel_wrap.cc), each on a /dev/vhost-net fd; a
 * failure throws VhostUserError with the errno name as code. Addresses are this process's.
 */
export interface NativeVhostKernel {
  open(path: string): number;
  setOwner(fd: number): void;
  getFeatures(fd: number): bigint;
  setFeatures(fd: number, features: bigint): void;
  setMemTable(fd: number, regions: { guestPhysAddr: bigint; size: bigint; userAddr: bigint }[]): void;
  setVringNum(fd: number, index: number, num: number): void;
  setVringBase(fd: number, index: number, num: number): void;
  getVringBase(fd: number, index: number): number;
  setVringAddr(fd: number, index: number, flags: number, desc: bigint, used: bigint, avail: bigint, log: bigint): void;
  setVringKick(fd: number, index: number, eventfd: number): void;
  setVringCall(fd: number, index: number, eventfd: number): void;
  setVringErr(fd: number, index: number, eventfd: number): void;
  setBusyloopTimeout(fd: number, index: number, microseconds: number): void;
  /** The ring's net back-end: a tap queue's fd, or -1 to detach it. */
  netSetBackend(fd: number, index: number, tapFd: number): void;
  /** One queue of the multiqueue tap `name` with a `hdrLen`-byte vnet header (created if absent). */
  tapOpenQueue(name: string, hdrLen: number): number;
  /** The tap queue's header length and the offloads the virtio-net `features` let it hand over. */
  tapConfigure(fd: number, name: string, features: bigint): void;
}

export interface Binding {
  setErrorClass(ctor: typeof VhostUserError): void;
  listen(path: string, mode: number, backlog: number): number;
  connect(path: string): number;
  /** -1 when no connection is pending. */
  accept(listenFd: number): number;
  /** null when nothing is there to read; empty bytes at end of stream. */
  recvmsg(fd: number, maxBytes: number): RecvResult | null;
  /** Bytes written, or -1 when the socket buffer is full. */
  sendmsg(fd: number, bytes: Buffer, fds: number[]): number;
  close(fd: number): void;
  /** Calls back when `fd` is readable (or, with `writable`, has room to write), or its peer went. */
  Poller: new (fd: number, onEvent: (status: number, ready: boolean, disconnected: boolean) => void, writable?: boolean) => NativePoller;
  /** A memfd of `size` bytes, sealed against shrinking unless `seal` is false. */
  memfdCreate(name: string, size: number, seal?: boolean): number;
  ftruncate(fd: number, size: number): void;
  eventfd(): number;
  eventfdRead(fd: number): number;
  /** Adds `value` (default 1n) to the counter. */
  eventfdWrite(fd: number, value?: bigint): void;
  /** Sets or clears O_NONBLOCK on the fd's file description (shared with every holder). */
  setBlocking(fd: number, blocking: boolean): void;
  /** A pipe, both ends non-blocking: [read end, write end]. */
  pipe(): [number, number];
  /** Up to maxBytes read (empty at end of file), or null when nothing is there yet. */
  readFd(fd: number, maxBytes: number): Buffer | null;
  /** Bytes of `bytes` from `offset` on written, or -1 when the pipe is full. */
  writeFd(fd: number, bytes: Buffer, offset: number): number;
  /** Full memory barrier, for driver code sharing rings with the back-end's thread. */
  memoryFence(): void;
  Mapping: new (fd: number, size: number) => NativeMapping;
  vhostKernel: NativeVhostKernel;
  /**
   * A device with `queuePairs` pairs, each with its own instance of the port `port` (a name in
   * native/net/ports/registry.cc) made with `options`: what the port's file in lib/net/ports gives,
   * already checked. `workers` threads (1..queuePairs, default queuePairs) serve the pairs; 0: none,
   * the calling thread does (serveInline).
   */
  NetDevice: new (queuePairs: number, port: string, options: NativePortOptions, workers?: number) => NativeNetDevice;
  /** The per-queue counters' names in slot order (QueueStat), and the u64 slots from one queue's to the next's. */
  queueStatNames: string[];
  queueStatStride: number;
  /** Capture of every frame of `device` into a ring per pair of `ringBytes` (a power of two), cut to `snaplen`. */
  /** Of a device (a ring per queue pair) or of a switch (one ring: every frame entering it, once). */
  Capture: new (source: NativeNetDevice | NativeSwitch, ringBytes: number, snaplen: number) => NativeCapture;
  /** A switch keeping at most `maxMacs` MACs for `ageingSeconds`; its thread busy-polls `pollUs` (0: never). */
  Switch: new (maxMacs: number, ageingSeconds: number, pollUs: number) => NativeSwitch;
}

// VHOST_USER_ADDON points at another build of the addon (the ASan build of `npm run test:asan`).
const loaded: Binding = process.env.VHOST_USER_ADDON ? require(process.env.VHOST_USER_ADDON) : require('bindings')('vhost_user');
loaded.setErrorClass(VhostUserError);

export const native: Binding = loaded;
