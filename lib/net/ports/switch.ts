/**
 * The switch port: the device is one port of a switch of several devices in this process
 * (lib/net/switch.ts, native/net/switch/). Frames go to the other ports by destination MAC, copied
 * once from guest to guest on the switch's thread, which serves the device instead of workers of its
 * own. One queue pair for now, and no offloads: a frame may reach a guest that negotiated none.
 */
import { definePort } from './port';

export const switchPort = definePort({
  name: 'switch',
  help: 'one port of a MAC-learning switch of several devices:\nsee `vhost-user switch --help` (library: Switch.attach).',
  hosted: true,
  maxQueuePairs: 1,
  options: [],
  native: () => ({}),
});
