/**
 * Ring layouts (split, packed) as a benchmark dimension, and the check that a run used the layout
 * its cell asked for: the front-end asks for a layout (virtio-user `packed_vq=0|1`), but the back-end
 * decides by offering VIRTIO_F_RING_PACKED or not. A run whose back-end negotiated another layout
 * than the cell's is invalid: its figures would be reported under the wrong layout.
 *
 * The negotiated features come from each back-end's own log of SET_FEATURES:
 *  - ours: `features acked: 0x…` (lib/protocol/handlers.ts, logged at info level);
 *  - DPDK's vhost library: `negotiated Virtio features: 0x…` (VHOST_CONFIG, info level).
 */
import type { BackendKind } from './backends';

export type RingLayout = 'split' | 'packed';
export const LAYOUTS: readonly RingLayout[] = ['split', 'packed'];

/** VIRTIO_F_RING_PACKED (virtio 1.1, bit 34). */
export const RING_PACKED_BIT = 34n;

const FEATURE_LINES: Record<BackendKind, RegExp> = {
  ours: /features acked: 0x([0-9a-f]+)/gi,
  js: /features acked: 0x([0-9a-f]+)/gi,
  dpdk: /negotiated Virtio features: 0x([0-9a-f]+)/gi,
};

/** The virtio features the back-end last agreed to (SET_FEATURES), from its output; null when it logged none. */
export function negotiatedFeatures(backend: BackendKind, output: string): bigint | null {
  let last: bigint | null = null;
  for (const m of output.matchAll(FEATURE_LINES[backend])) last = BigInt(`0x${m[1]}`);
  return last;
}

/** The ring layout a set of negotiated features means. */
export function layoutOf(features: bigint): RingLayout {
  return (features >> RING_PACKED_BIT) & 1n ? 'packed' : 'split';
}

export interface LayoutCheck {
  /** The layout the back-end negotiated; null when its output did not say. */
  negotiated: RingLayout | null;
  /** The negotiated features, hexadecimal, when known. */
  features?: string;
  /** Set when the run's figures must not be reported under the asked layout (one line). */
  invalid?: string;
}

/**
 * Decides whether a run measured the layout its cell asked for. Our back-end must say which layout
 * it negotiated (unknown is invalid: a split figure must never be reported as packed). DPDK's vhost
 * PMD negotiates packed whenever the front-end asks, so when its log level hides the line the run
 * is kept, with `negotiated` null.
 */
export function checkLayout(backend: BackendKind, asked: RingLayout, features: bigint | null): LayoutCheck {
  if (features === null) {
    if (backend === 'dpdk') return { negotiated: null };
    return { negotiated: null, invalid: `ring layout unknown: our back-end logged no 'features acked' line (asked for ${asked})` };
  }
  const negotiated = layoutOf(features);
  const hex = `0x${features.toString(16)}`;
  if (negotiated === asked) return { negotiated, features: hex };
  const who = backend === 'ours' ? 'our back-end' : backend === 'js' ? 'our back-end (js port)' : "DPDK's vhost PMD";
  const why = asked === 'packed' ? ' (VIRTIO_F_RING_PACKED not offered)' : '';
  return { negotiated, features: hex, invalid: `asked for ${asked} rings but ${who} negotiated ${negotiated}${why}; features ${hex}` };
}

/** Parses `--layouts split,packed`; returns a one-line complaint for anything else. */
export function parseLayouts(value: string): RingLayout[] | string {
  const out = value.split(',').map((s) => s.trim());
  for (const l of out) if (!LAYOUTS.includes(l as RingLayout)) return `unknown ring layout '${l}' (available: ${LAYOUTS.join(', ')})`;
  if (new Set(out).size !== out.length) return '--layouts lists a layout twice';
  return out as RingLayout[];
}
