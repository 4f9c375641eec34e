/**
 * Our driver when the device breaks the rules on a ring: a used length larger than the buffer it was
 * given. The used entry is altered where the driver reads it (DriverRing.takeUsed), as a faulty or
 * hostile back-end would write it. The driver must close with the reason given to its onClosed
 * listeners, not throw from its event callback (which would end the Node process).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { PackedDriverRing } from '../lib/frontend/packed_driver_ring';
import { SplitDriverRing } from '../lib/frontend/split_driver_ring';
import { useBackendFixture } from './helpers/fixture';
import { makeFrame } from './helpers/frames';
import { until } from './helpers/until';

const fx = useBackendFixture();

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the driver facing a device that breaks the rules', () => {
  for (const packed of [false, true]) {
    it(`closes with the reason when a used length exceeds its buffer (${packed ? 'packed' : 'split'})`, async () => {
      const Ring = packed ? PackedDriverRing : SplitDriverRing;
      const takeUsed = Ring.prototype.takeUsed;
      let altered = 0;
      // RX entries carry the length written; TX ones 0. The first RX entry claims a megabyte.
      vi.spyOn(Ring.prototype, 'takeUsed').mockImplementation(function (this: InstanceType<typeof Ring>) {
        const used = takeUsed.call(this);
        for (const e of used) if (e.len > 0 && altered++ === 0) e.len = 1 << 20;
        return used;
      });
      fx.start();
      const reasons: (Error | undefined)[] = [];
      let frames = 0;
      const driver = await VirtioNetDriver.start({
        socketPath: fx.backend.socketPath,
        memory: fx.memory,
        packed,
        onFrames: (f) => (frames += f.length),
      });
      driver.onClosed((reason) => reasons.push(reason));
      driver.send(makeFrame(1), 'single');
      driver.flush();
      expect(await until(() => reasons.length > 0, 5_000), 'the driver closed').toBe(true);
      expect(driver.isOpen).toBe(false);
      expect(reasons[0]?.message).toMatch(/^device wrote 1048576 bytes into a \d+-byte buffer$/);
      expect(frames).toBe(0);
    });
  }
});
