/**
 * The loopback port: every frame the guest sends comes back on its receive queue with the MAC
 * addresses swapped (native/net/ports/loopback.cc). It offers no offloads: it would hand a guest's
 * partial checksums back to the same guest.
 */
import { definePort } from './port';

export const loopback = definePort({
  name: 'loopback',
  help: 'returns every frame the guest sends with its MAC addresses swapped;',
  options: [],
  native: () => ({}),
});
