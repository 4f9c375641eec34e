/**
 * Per-queue counters, read straight from the buffer the native workers write (no native call per
 * read). The slot order is QueueStat's in native/core/virtqueue.h; the addon exports its names and
 * this file refuses to load if they differ from STAT_NAMES. Every counter is a bigint field of
 * QueueStats, and xstats() gives the same counters under DPDK's vhost names.
 */
import { native } from '../binding';

export const STAT_NAMES = [
  'packets',
  'bytes',
  'multicast',
  'broadcast',
  'undersize',
  'size64',
  'size65To127',
  'size128To255',
  'size256To511',
  'size512To1023',
  'size1024To1518',
  'size1519ToMax',
  'drops',
  'errors',
  'kicks',
  'calls',
  'callsSuppressed',
  'callErrors',
  'captureDrops',
] as const;

export type StatName = (typeof STAT_NAMES)[number];
export type QueueStats = Record<StatName, bigint>;

/** u64 slots between two queues' counters (each queue starts on its own cache line). */
const STRIDE: number = native.queueStatStride;
if (native.queueStatNames.join() !== STAT_NAMES.join()) {
  throw new Error(`the addon's counters (${native.queueStatNames.join()}) are not lib/net/stats.ts's: rebuild the addon`);
}

/**
 * DPDK's name for each counter (lib/vhost vhost_vq_stat_strings; `missed_pkts` and `errors` as the vhost
 * PMD's per-queue ones), or ours where DPDK has none. Meanings are DPDK's: good frames, lengths without the
 * virtio-net header, RFC 2819 size bins, multicast or else broadcast. `guest_notifications_suppressed`
 * differs: DPDK counts calls skipped while one was pending (interrupt offload), we count used-ring
 * publishes the guest asked not to be told about (EVENT_IDX, NO_INTERRUPT, packed DISABLE).
 */
export const DPDK_NAMES: Record<StatName, string> = {
  packets: 'good_packets',
  bytes: 'good_bytes',
  multicast: 'multicast_packets',
  broadcast: 'broadcast_packets',
  undersize: 'undersize_packets',
  size64: 'size_64_packets',
  size65To127: 'size_65_127_packets',
  size128To255: 'size_128_255_packets',
  size256To511: 'size_256_511_packets',
  size512To1023: 'size_512_1023_packets',
  size1024To1518: 'size_1024_1518_packets',
  size1519ToMax: 'size_1519_max_packets',
  drops: 'missed_pkts',
  errors: 'errors',
  kicks: 'kicks',
  calls: 'guest_notifications',
  callsSuppressed: 'guest_notifications_suppressed',
  callErrors: 'guest_notifications_error',
  captureDrops: 'capture_dropped',
};

export function readQueueStats(buffer: ArrayBuffer, queue: number): QueueStats {
  const view = new BigUint64Array(buffer, queue * STRIDE * 8, STAT_NAMES.length);
  const out = {} as QueueStats;
  STAT_NAMES.forEach((name, i) => (out[name] = view[i]));
  return out;
}

export function readAllStats(buffer: ArrayBuffer): QueueStats[] {
  const queues = buffer.byteLength / (STRIDE * 8);
  return Array.from({ length: queues }, (_, q) => readQueueStats(buffer, q));
}

/**
 * How DPDK's vhost PMD names virtqueue q: queue 2p+1 (the guest transmits, the device receives) is
 * `rx_q{p}`, queue 2p (the guest receives) is `tx_q{p}` — the device's point of view.
 */
export function dpdkQueueName(q: number): string {
  return `${q % 2 === 1 ? 'rx' : 'tx'}_q${Math.floor(q / 2)}`;
}

/** Every counter of every queue under DPDK's names (`rx_q0_good_packets`, `tx_q0_size_64_packets`, ...). */
export function xstats(stats: QueueStats[]): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  stats.forEach((s, q) => {
    for (const name of STAT_NAMES) out[`${dpdkQueueName(q)}_${DPDK_NAMES[name]}`] = s[name];
  });
  return out;
}

const SIZE_LABELS: [StatName, string][] = [
  ['undersize', '<64'],
  ['size64', '64'],
  ['size65To127', '65-127'],
  ['size128To255', '128-255'],
  ['size256To511', '256-511'],
  ['size512To1023', '512-1023'],
  ['size1024To1518', '1024-1518'],
  ['size1519ToMax', '1519+'],
];

/** How formatStats names virtqueue q: `queue 1 (guest TX of pair 0, DPDK rx_q0)` (the benchmark parses it). */
export function queueLabel(q: number): string {
  const way = q % 2 === 1 ? 'guest TX' : 'guest RX';
  return `queue ${q} (${way} of pair ${Math.floor(q / 2)}, DPDK ${dpdkQueueName(q)})`;
}

/**
 * Two lines per queue, for logs and the CLI: which way the queue carries frames as the guest sees it,
 * its virtqueue index and DPDK's name for it, then the counters.
 */
export function formatStats(stats: QueueStats[]): string {
  return stats
    .map((s, q) => {
      const head = `  ${queueLabel(q)}:`;
      const counts = ['packets', 'bytes', 'drops', 'errors', 'multicast', 'broadcast', 'kicks', 'calls', 'callsSuppressed', 'callErrors']
        .map((n) => `${n}=${s[n as StatName]}`)
        .join(' ');
      const sizes = SIZE_LABELS.map(([n, label]) => `${label}:${s[n]}`).join(' ');
      const capture = s.captureDrops > 0n ? ` captureDrops=${s.captureDrops}` : '';
      return `${head} ${counts}\n      sizes ${sizes}${capture}`;
    })
    .join('\n');
}
