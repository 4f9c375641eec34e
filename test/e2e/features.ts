/**
 * The virtio features our back-end negotiated, as its log says: every SET_FEATURES is logged as
 * `features acked: 0x<hex> (NAMES)` (lib/protocol/handlers.ts). The end-to-end suites read them to
 * assert what a real front-end chose, e.g. that it did not fall back to the split ring.
 */

/** Every SET_FEATURES value in `logs`, in order. */
export function ackedFeatures(logs: readonly string[]): bigint[] {
  const out: bigint[] = [];
  for (const l of logs) {
    const m = /features acked: 0x([0-9a-f]+)/.exec(l);
    if (m) out.push(BigInt(`0x${m[1]}`));
  }
  return out;
}
