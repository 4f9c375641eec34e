/**
 * The Prometheus view of back-ends: one counter family per field of the per-queue stats record, labelled
 * by socket and queue, and a few per-device gauges. Nothing is polled: each family's collect callback
 * reads the counters when /metrics is scraped (prom-client calls every collect in one go, so one reading
 * per scrape serves them all and the families agree with each other).
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { VhostUserBackend } from '../backend';
import { counterHelp, metricName } from './counter_help';
import { asSource, counterNames, type DeviceReading, type MetricsSource } from './readings';

/**
 * `queue` is DPDK's name (rx_q0, tx_q0 ...: what dashboards built on DPDK's xstats expect); `direction`
 * and `pair` say the same split out, so `sum by (direction)` or a per-pair view needs no label regex.
 */
const QUEUE_LABELS = ['socket', 'queue', 'direction', 'pair'] as const;
type QueueLabel = (typeof QUEUE_LABELS)[number];

export class BackendMetrics {
  readonly registry = new Registry();
  private readonly families = new Map<string, Counter<QueueLabel>>();
  private cached: DeviceReading[] | null = null;

  private readonly source: MetricsSource;

  /** `backends` is read at every scrape: back-ends pushed into the array later are exported too. */
  constructor(backends: readonly VhostUserBackend[] | MetricsSource) {
    this.source = asSource(backends);
    this.gauge('vhost_user_connected', 'Whether a front-end is connected to the socket (1) or not (0).', (d) => (d.connected ? 1 : 0));
    this.gauge('vhost_user_queue_pairs', 'Queue pairs the device offers (GET_QUEUE_NUM).', (d) => d.queuePairs);
    this.source.register?.(this.registry);
    this.discover(); // so that `registry` alone (merged into a program's own) has the families too
  }

  /** The exposition text, for /metrics; its content type is `registry.contentType`. */
  async text(): Promise<string> {
    this.discover();
    return this.registry.metrics();
  }

  /** A family for every counter the back-ends' records hold that has none yet. */
  private discover(): void {
    for (const name of counterNames(this.reading())) if (!this.families.has(name)) this.addFamily(name);
  }

  /** One reading per scrape: the first collect takes it, the rest of the same scrape reuse it. */
  private reading(): DeviceReading[] {
    if (!this.cached) {
      this.cached = this.source.devices();
      setImmediate(() => (this.cached = null));
    }
    return this.cached;
  }

  private addFamily(counter: string): void {
    const family: Counter<QueueLabel> = new Counter({
      name: metricName(counter),
      help: counterHelp(counter),
      labelNames: QUEUE_LABELS,
      registers: [this.registry],
      collect: () => {
        family.reset(); // a back-end closed and dropped from the array leaves no stale series
        for (const d of this.reading())
          for (const q of d.queues) {
            const value = q.counters[counter];
            if (value !== undefined) family.inc({ socket: d.socket, queue: q.name, direction: q.direction, pair: q.pair }, Number(value));
          }
      },
    });
    this.families.set(counter, family);
  }

  private gauge(name: string, help: string, value: (d: DeviceReading) => number): void {
    const gauge: Gauge<'socket'> = new Gauge({
      name,
      help,
      labelNames: ['socket'],
      registers: [this.registry],
      collect: () => {
        gauge.reset();
        for (const d of this.reading()) gauge.set({ socket: d.socket }, value(d));
      },
    });
  }
}
