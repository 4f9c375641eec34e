/**
 * The virtio features our back-end negotiated, as its log says: every SET_FEATURES is logged as
 * `features acked: 0x<hex> (NAMES)` (lib/protocol/handlers.ts). The end-to-end suites read them to
 * assert what a real front-end chose, e.g. that it did not fall back to the split ring.
 */
import { expect } from 'vitest';
import { VirtioFeature, hasBit } from '../../lib/protocol/constants';

/** Every SET_FEATURES value in `logs`, in order. */
export function ackedFeatures(logs: readonly string[]): bigint[] {
  const out: bigint[] = [];
  for (const l of logs) {
    const m = /features acked: 0x([0-9a-f]+)/.exec(l);
    if (m) out.push(BigInt(`0x${m[1]}`));
  }
  return out;
}

/**
 * Every SET_FEATURES in `logs` has RING_PACKED exactly when `packed`: a front-end asked for the packed
 * ring (QEMU `packed=on`, virtio-user `packed_vq=1`) falls back to the split ring without a word when
 * the device does not offer it, and such a run must not pass for packed coverage.
 */
export function expectRingNegotiated(logs: readonly string[], packed: boolean): void {
  const features = ackedFeatures(logs);
  expect(features.length, `no SET_FEATURES in the log:\n${logs.join('\n')}`).toBeGreaterThan(0);
  for (const f of features) {
    expect(hasBit(f, VirtioFeature.RING_PACKED), `RING_PACKED in the acked features 0x${f.toString(16)}`).toBe(packed);
  }
}
