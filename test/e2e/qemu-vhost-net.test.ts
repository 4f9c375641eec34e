/**
 * Our driver over the kernel's vhost-net, where there is one: a QEMU (TCG) guest boots with Node and
 * this package in its initramfs (lib/guest/node_initramfs.ts) and the vhost_net module loaded, and runs
 * lib/guest/vhost_net_traffic.ts: the driver over /dev/vhost-net with a tap, bridged to a tap the
 * program reads and writes itself; then the same with our vhost-user back-end (the tap port) in place
 * of the kernel; then the kernel again on two queue pairs (one /dev/vhost-net each). Each way, every frame must arrive once and byte-identical. Last, the kernel is asked
 * for a feature it lacks and must refuse it with a one-line error.
 *
 * Skipped when QEMU, busybox, cpio or a kernel is missing, except in CI (CI=true), where that fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGuest, type Guest } from '../../lib/guest/guest';
import { PACKAGE_IN_GUEST, buildNodeInitramfs } from '../../lib/guest/node_initramfs';
import type { BootFiles } from '../../lib/guest/initramfs';
import { qemuAvailable } from './qemu/tools';

const available = qemuAvailable();
const FRAMES = 10_000;

describe.skipIf(!available)('our driver over the kernel vhost-net inside a QEMU guest', () => {
  let boot: BootFiles;
  let guest: Guest | null = null;

  beforeAll(async () => {
    boot = await buildNodeInitramfs(); // Node, the package and the modules: ~45 MB, packed once and cached
  }, 120_000);

  afterAll(async () => {
    await guest?.kill();
  });

  it(`moves ${FRAMES} frames each way, byte-identical, over the kernel (1 and 2 pairs) and over our back-end`, async () => {
    guest = await startGuest({
      boot,
      netdev: 'hubport,id=n0,hubid=0', // the guest needs no NIC of QEMU's: the taps are its own
      memoryMiB: 1024,
      scenarios: ['node'],
      params: { iface: 'none', node: `${PACKAGE_IN_GUEST}/dist/guest/vhost_net_traffic.js`, frames: FRAMES },
      guestTimeoutSec: 170,
    });
    const info = await guest.waitFor(/^VHU-INFO vhost-net-kernel .*$/m, 120_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${guest?.output()}`);
    });
    console.log(`negotiated with the kernel's vhost-net: ${info[0]}`);
    expect(info[0]).toMatch(/names=\S*VERSION_1/);
    for (const kind of ['kernel', 'user', 'kernel-2pairs']) {
      const r = await guest.result(`vhost-net-${kind}`, 120_000);
      console.log(`vhost-net-${kind}: ${JSON.stringify(r)}`);
      expect(r.error, `${kind}: ${guest.output()}`).toBeUndefined();
      expect(r).toMatchObject({ tx_seen: String(FRAMES), tx_bad: '0', rx_seen: String(FRAMES), rx_bad: '0' });
    }
    // A feature the kernel lacks (the packed ring): its refusal is one line that names the ioctl.
    const refused = await guest.result('vhost-net-refusal', 60_000);
    expect(refused.code).toBe('EOPNOTSUPP');
    expect(refused.message).toMatch(/^the_kernel's_vhost-net_refused_features_0x[0-9a-f]+:_VHOST_SET_FEATURES:_Operation_not_supported/);
  }, 180_000);
});
