/**
 * Per-queue counters, read straight from the buffer the native worker writes (no native call per
 * read). The slot order matches QueueStat in native/net/queue.h.
 */
export const STAT_NAMES = ['packets', 'bytes', 'drops', 'errors', 'kicks', 'calls'] as const;
export const STATS_PER_QUEUE = STAT_NAMES.length;

export type QueueStats = Record<(typeof STAT_NAMES)[number], bigint>;

export function readQueueStats(buffer: ArrayBuffer, queue: number): QueueStats {
  const view = new BigUint64Array(buffer, queue * STATS_PER_QUEUE * 8, STATS_PER_QUEUE);
  const out = {} as QueueStats;
  STAT_NAMES.forEach((name, i) => (out[name] = view[i]));
  return out;
}

export function readAllStats(buffer: ArrayBuffer): QueueStats[] {
  const queues = buffer.byteLength / (STATS_PER_QUEUE * 8);
  return Array.from({ length: queues }, (_, q) => readQueueStats(buffer, q));
}

/** One line per queue, for logs and the CLI. */
export function formatStats(stats: QueueStats[]): string {
  return stats
    .map((s, q) => {
      const dir = q % 2 === 0 ? 'rx' : 'tx';
      return `  q${q} (${dir}${Math.floor(q / 2)}): ` + STAT_NAMES.map((n) => `${n}=${s[n]}`).join(' ');
    })
    .join('\n');
}
