/**
 * The js port: the device's frames go to and come from the program itself, through
 * `device.frames()` and `device.send()` (lib/net/frames.ts, native/net/ports/js.cc). A library
 * feature: the CLI alone has no program to hand frames to. It offers no offloads, like the
 * loopback: a guest's partial checksums must not reach a program that does not expect them.
 */
import { definePort } from './port';

export const MIN_RING_SLOTS = 64;
export const MAX_RING_SLOTS = 4096;
export const DEFAULT_RING_SLOTS = 256;
/** A slot holds a whole frame: 2 KiB, or the MTU's frame (with a VLAN tag) rounded up to 64 bytes. */
const MIN_SLOT = 2048;
const ETHERNET_VLAN_HEADER = 18;

export function slotSizeFor(mtu: number | undefined): number {
  return Math.max(MIN_SLOT, Math.ceil(((mtu ?? 0) + ETHERNET_VLAN_HEADER) / 64) * 64);
}

export const js = definePort({
  name: 'js',
  help: 'hands the frames to the program that runs the backend (device.frames(),\ndevice.send()); library only, see examples/js-echo.mjs.',
  libraryOnly: true,
  servedInline: true,
  options: [
    {
      key: 'ringSlots',
      flag: 'ring-slots',
      label: 'ring slots',
      type: 'integer',
      metavar: 'N',
      min: MIN_RING_SLOTS,
      max: MAX_RING_SLOTS,
      default: DEFAULT_RING_SLOTS,
      help: `frames each ring between a queue pair and the program holds (a power of two, ${MIN_RING_SLOTS}..${MAX_RING_SLOTS}, default ${DEFAULT_RING_SLOTS}).`,
      check: (v) => ((Number(v) & (Number(v) - 1)) === 0 ? undefined : 'must be a power of two'),
    },
  ],
  native: () => ({}),
});
