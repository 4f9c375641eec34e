/**
 * A switch as a metrics source (readings.ts MetricsSource): every port's queue counters under the
 * same families as a device's (`socket` is the port's name: a device's socket path, `tap NAME` for a
 * tap), and the switch's own: MACs learnt now, refused, moved, frames flooded, each port's VLAN, the
 * datagrams a VXLAN uplink dropped by cause.
 * Read at every scrape, so ports attached or detached later show up or go.
 */
import type { Counter as CounterT, Gauge as GaugeT, Registry } from 'prom-client';
import type { VhostUserBackend } from '../backend';
import { vxlanDropsTotal, type Switch, type SwitchCounters, type SwitchPort } from '../net/switch';
import { countersOf, queueOf, readDevice, type DeviceReading, type MetricsSource } from './readings';

/** The name a port is exported and printed under. */
export const portLabel = (p: SwitchPort): string => (p.tap !== undefined ? `tap ${p.name}` : p.name);

/** A port that is not a back-end's device (a tap): its counters in a device's shape, always connected. */
function uplinkReading(p: SwitchPort): DeviceReading {
  const queues = p.stats.map((record, virtqueue) => ({ ...queueOf(virtqueue), virtqueue, counters: countersOf(record) }));
  return {
    socket: portLabel(p),
    connected: true,
    port: p.tap !== undefined ? 'tap' : p.vxlan !== undefined ? 'vxlan' : 'uplink',
    queuePairs: 1,
    queues,
  };
}

/** `read` once per scrape: every family of one scrape (prom-client collects them in one go) shares it. */
function perScrape<T>(read: () => T): () => T {
  let cached: { value: T } | null = null;
  return () => {
    if (!cached) {
      cached = { value: read() };
      setImmediate(() => (cached = null));
    }
    return cached.value;
  };
}

/** `backends`: those whose devices are on `sw` (for their connection state); read at every scrape. */
export function switchMetrics(sw: Switch, backends: readonly VhostUserBackend[]): MetricsSource {
  const ports = perScrape(() => sw.ports());
  const reading = (p: SwitchPort): DeviceReading => {
    const backend = p.device && backends.find((b) => b.device === p.device);
    return backend ? { ...readDevice(backend), socket: portLabel(p) } : uplinkReading(p);
  };
  return {
    devices: () => ports().map(reading),
    register: (registry: Registry) => registerSwitchFamilies(sw, ports, registry),
  };
}

function registerSwitchFamilies(sw: Switch, ports: () => SwitchPort[], registry: Registry): void {
  // Required here, not imported: this file is loaded by every start of `vhost-user switch`, and
  // prom-client only when metrics are served (as lib/observe/server.ts loads metrics.ts).
  const { Counter, Gauge } = require('prom-client') as typeof import('prom-client');
  // Reading the counters pauses the switch's thread.
  const counters = perScrape((): SwitchCounters => sw.counters());
  const macs: GaugeT = new Gauge({
    name: 'vhost_user_switch_macs',
    help: 'MACs in the switch table now.',
    registers: [registry],
    collect: () => {
      macs.set(counters().macs);
    },
  });
  const counter = (name: string, help: string, field: 'refused' | 'moves' | 'flooded') => {
    const c: CounterT = new Counter({
      name,
      help,
      registers: [registry],
      collect: () => {
        c.reset();
        c.inc(Number(counters()[field]));
      },
    });
  };
  counter('vhost_user_switch_macs_refused_total', 'New MACs not learnt because the table was full (their frames flooded).', 'refused');
  counter('vhost_user_switch_mac_moves_total', 'MACs relearnt behind another port.', 'moves');
  counter(
    'vhost_user_switch_flooded_total',
    'Frames sent to every other port of their VLAN (broadcast, multicast, unknown unicast).',
    'flooded',
  );
  const vxlanDrops: CounterT<'cause'> = new Counter({
    name: 'vhost_user_switch_vxlan_dropped_total',
    help: 'Datagrams the VXLAN uplinks dropped, by cause (from no remote, short, no I flag, another VNI, frame too long).',
    labelNames: ['cause'],
    registers: [registry],
    collect: () => {
      vxlanDrops.reset();
      const drops = vxlanDropsTotal(ports()) ?? {};
      for (const [cause, n] of Object.entries(drops)) vxlanDrops.inc({ cause }, Number(n));
    },
  });
  const vlan: GaugeT<'socket'> = new Gauge({
    name: 'vhost_user_switch_port_vlan',
    help: "Each switch port's access VLAN.",
    labelNames: ['socket'],
    registers: [registry],
    collect: () => {
      vlan.reset();
      for (const p of ports()) vlan.set({ socket: portLabel(p) }, p.vlan);
    },
  });
}
