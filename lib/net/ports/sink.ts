/**
 * The sink port: takes every frame the guest sends, counts it and throws it away unread
 * (native/net/ports/sink.cc); the guest-TX figure of a benchmark.
 */
import { definePort } from './port';

export const sink = definePort({
  name: 'sink',
  help: "takes every frame the guest sends and discards it\n(measures a guest's transmit rate);",
  options: [],
  native: () => ({}),
});
