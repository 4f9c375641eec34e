/**
 * One reading of every back-end's queue counters, shared by /metrics and the live page. Queues are named
 * the way DPDK names them, and every bigint field of a device.stats() record is carried as it is, so a
 * counter added to the native record shows up in both without a change here.
 */
import type { Registry } from 'prom-client';
import type { VhostUserBackend } from '../backend';

/** The device's point of view, as in DPDK: `rx` is what the guest sent, `tx` what it is given. */
export type Direction = 'rx' | 'tx';

export interface QueueReading {
  /** DPDK's name: `rx_q{p}` for the guest's TX virtqueue 2p+1, `tx_q{p}` for its RX virtqueue 2p. */
  name: string;
  direction: Direction;
  pair: number;
  /** The virtqueue index (2p: guest RX, 2p+1: guest TX). */
  virtqueue: number;
  counters: Record<string, bigint>;
}

export interface DeviceReading {
  socket: string;
  connected: boolean;
  /** The port kind (loopback, tap, ...). */
  port: string;
  queuePairs: number;
  queues: QueueReading[];
}

/** Where virtqueue `index` sits in DPDK's naming (rte_vhost_vring_stats_get_names: odd rings are `rx`). */
export function queueOf(index: number): { name: string; direction: Direction; pair: number } {
  const direction: Direction = index % 2 === 1 ? 'rx' : 'tx';
  const pair = Math.floor(index / 2);
  return { name: `${direction}_q${pair}`, direction, pair };
}

/** The bigint fields of a stats record: the counters, whatever the native record holds today. */
export function countersOf(record: object): Record<string, bigint> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => typeof v === 'bigint')) as Record<string, bigint>;
}

export function readDevice(backend: VhostUserBackend): DeviceReading {
  const device = backend.device;
  const queues = device.stats().map((record, virtqueue) => ({ ...queueOf(virtqueue), virtqueue, counters: countersOf(record) }));
  return { socket: backend.socketPath, connected: backend.connected, port: device.port, queuePairs: device.queuePairs, queues };
}

export function readDevices(backends: readonly VhostUserBackend[]): DeviceReading[] {
  return backends.map(readDevice);
}

/**
 * What a metrics server reads at every request: the devices' queue counters and, for a source that has
 * more to say (a switch), families of its own, registered once with collect callbacks.
 */
export interface MetricsSource {
  devices(): DeviceReading[];
  register?(registry: Registry): void;
}

/** Back-ends as a source: `backends` is read at every request, so back-ends pushed later are exported too. */
export function backendsSource(backends: readonly VhostUserBackend[]): MetricsSource {
  return { devices: () => readDevices(backends) };
}

/** A source given as back-ends or as itself. */
export const asSource = (what: readonly VhostUserBackend[] | MetricsSource): MetricsSource =>
  Array.isArray(what) ? backendsSource(what) : (what as MetricsSource);

/** Every counter name the readings hold, in the order the records list them. */
export function counterNames(readings: readonly DeviceReading[]): string[] {
  const names = new Set<string>();
  for (const d of readings) for (const q of d.queues) for (const n of Object.keys(q.counters)) names.add(n);
  return [...names];
}
