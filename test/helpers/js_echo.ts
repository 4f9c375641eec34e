/** A MAC-swap echo over the js port, as a program would write it, for the js port's tests. */
import type { NetDevice } from '../../lib/net/device';
import { countMappings } from './frames';

const mac = new Uint8Array(6);

/** Swaps the destination and source MAC addresses of a frame in place. */
export function swapMacs(f: Uint8Array): void {
  mac.set(f.subarray(0, 6));
  f.copyWithin(0, 6, 12);
  f.set(mac, 6);
}

export interface EchoOptions {
  /** Called with each batch before it is sent back (may wait: the loop waits with it). */
  onBatch?: (batch: Uint8Array[]) => Promise<void> | void;
  /** Leave the loop once this many frames were echoed. */
  stopAfter?: number;
}

/** Echoes every batch (MACs swapped in place, the views themselves sent back); resolves with the frame count when the loop ends. */
export async function jsEcho(device: NetDevice, opts: EchoOptions = {}): Promise<number> {
  let frames = 0;
  for await (const batch of device.frames()) {
    for (const f of batch) swapMacs(f);
    await opts.onBatch?.(batch);
    await device.send(batch);
    frames += batch.length;
    if (opts.stopAfter !== undefined && frames >= opts.stopAfter) break;
  }
  return frames;
}

/** Mappings of js port rings in this process (native/net/frame_rings.cc names its memfd). */
export const countJsRingMappings = (): number => countMappings('vhu-js-rings');
