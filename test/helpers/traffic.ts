/**
 * Steady, light traffic through a loopback device: a few frames every few milliseconds, so that rates
 * are above zero for as long as it runs without taking a whole core from the rest of the machine.
 */
import type { VirtioNetDriver } from '../../lib/frontend/net_driver';
import { makeFrame } from './frames';
import { until } from './until';

export interface Traffic {
  /** Frames sent so far. */
  readonly sent: number;
  /** Stops sending and resolves once the loopback returned every frame (the counters are still). */
  stop(): Promise<void>;
}

export function startTraffic(driver: VirtioNetDriver, burst = 16, everyMs = 5): Traffic {
  let sent = 0;
  const timer = setInterval(() => {
    if (!driver.isOpen) return;
    for (let i = 0; i < burst && driver.send(makeFrame(sent)); i++) sent++;
    driver.flush();
  }, everyMs);
  return {
    get sent() {
      return sent;
    },
    async stop() {
      clearInterval(timer);
      if (!(await until(() => driver.received >= sent, 10_000))) {
        throw new Error(`the loopback returned ${driver.received} of ${sent} frames`);
      }
    },
  };
}
