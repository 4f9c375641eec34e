/**
 * The headline with ring layouts: per (queue size, mode, frame size, pairs), our faster
 * layout against DPDK's faster layout. Each side is taken at its best: a back-end that is faster on
 * packed rings is compared by its packed figure even when the other is faster on split ones.
 */
import type { BackendKind } from '../backends';
import type { RingLayout } from '../layout';
import type { Aggregate, CellSummary, LayoutRatio } from '../types';

/** The layout with the highest median of one back-end among a group's cells, or null when none was measured. */
function fastest(group: CellSummary[], backend: BackendKind): { layout: RingLayout; mpps: number } | null {
  let best: { layout: RingLayout; mpps: number } | null = null;
  for (const c of group) {
    const agg: Aggregate | null = backend === 'ours' ? c.ours : c.dpdk;
    if (agg?.mpps != null && agg.mpps > 0 && (!best || agg.mpps > best.mpps)) best = { layout: c.layout, mpps: agg.mpps };
  }
  return best;
}

/** One entry per (queue size, mode, size, pairs), in the order of the cells. */
export function layoutRatios(cells: CellSummary[]): LayoutRatio[] {
  const groups = new Map<string, CellSummary[]>();
  for (const c of cells) {
    const key = `${c.queueSize}/${c.mode}/${c.size}/${c.pairs}`;
    groups.set(key, [...(groups.get(key) ?? []), c]);
  }
  return [...groups.values()].map((group) => {
    const { queueSize, mode, size, pairs } = group[0];
    const ours = fastest(group, 'ours');
    const dpdk = fastest(group, 'dpdk');
    const unmeasured = group.flatMap((c) =>
      (['ours', 'dpdk'] as const).filter((b) => c[b] && !(c[b]!.mpps! > 0)).map((b) => `${b === 'ours' ? 'ours' : 'DPDK'} ${c.layout}`),
    );
    return { queueSize, mode, size, pairs, ours, dpdk, ratio: ours && dpdk ? ours.mpps / dpdk.mpps : null, unmeasured };
  });
}
