/**
 * The driver over the kernel's vhost-net where the kernel cannot serve it: no /dev/vhost-net (this
 * machine), a device this user may not open, a file that is no vhost device. Each fails start()
 * with one line that names the fix, and leaves no fd open. The traffic over a real vhost-net runs
 * inside a QEMU guest (test/e2e/qemu-vhost-net.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver, type NetDriverOptions } from '../lib/frontend/net_driver';
import { VHOST_NET_DEVICE } from '../lib/frontend/vhost_kernel_transport';
import { hasTun, isRoot, missing, skipUnless } from './helpers/peers';

const TAP = `vhnt${process.pid % 100000}`;
/** This process's fds on the tun device and the vhost devices tried (not all fds: other test files share the process under threads). */
function openFds(): number {
  const ours = /^(\/dev\/net\/tun|\/dev\/null|\/dev\/vhost-net|\/tmp\/.*vhost-net.*)$/;
  let n = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (ours.test(fs.readlinkSync(`/proc/self/fd/${fd}`))) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

describe('VirtioNetDriver over vhost-net, refused', () => {
  let memory: GuestMemory;
  let dir: string;
  beforeAll(() => {
    memory = new GuestMemory();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-net-'));
  });
  afterAll(() => {
    memory.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const start = (vhostNet: NetDriverOptions['vhostNet']) => VirtioNetDriver.start({ vhostNet, memory, onFrames: () => {} });

  it('without the device, says to load vhost_net (a missing path given)', async () => {
    const device = path.join(dir, 'vhost-net');
    const before = openFds();
    await expect(start({ tap: TAP, device })).rejects.toThrow(
      `no ${device}: the kernel's vhost-net is not loaded (run \`modprobe vhost_net\` as root)`,
    );
    expect(openFds()).toBe(before);
  });

  it.skipIf(fs.existsSync(VHOST_NET_DEVICE))('without /dev/vhost-net on this machine, says to load vhost_net', async () => {
    const err = await start({ tap: TAP }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'ENOENT' });
    expect((err as Error).message).toBe("no /dev/vhost-net: the kernel's vhost-net is not loaded (run `modprobe vhost_net` as root)");
  });

  it('a device this user may not open: permission denied, and what to do', async () => {
    // Root passes file modes, but not sysfs's: a read-only attribute refuses O_RDWR to root too.
    let device = '/sys/kernel/notes';
    if (!isRoot()) {
      device = path.join(dir, 'locked');
      fs.writeFileSync(device, '');
      fs.chmodSync(device, 0);
    }
    await expect(start({ tap: TAP, device })).rejects.toThrow(
      `permission denied opening ${device}: run as root, or give this user read-write access to it`,
    );
  });

  it('neither or both of socketPath and vhostNet: refused before anything opens', async () => {
    await expect(VirtioNetDriver.start({ memory })).rejects.toThrow(/either socketPath \(vhost-user\) or vhostNet/);
    await expect(VirtioNetDriver.start({ memory, socketPath: path.join(dir, 's'), vhostNet: { tap: TAP } })).rejects.toThrow(
      /not both or neither/,
    );
  });

  it('a bad tap name or busy-poll time: refused before anything opens', async () => {
    const before = openFds();
    await expect(start({ tap: 'a-name-too-long-for-linux' })).rejects.toThrow(
      'vhostNet.tap "a-name-too-long-for-linux": must be 1..15 characters of [A-Za-z0-9_.-]',
    );
    await expect(start({ tap: 'vhn/0' })).rejects.toThrow(/vhostNet.tap "vhn\/0": must be/);
    await expect(start({ tap: TAP, busyloopUs: -1 })).rejects.toThrow('vhostNet.busyloopUs must be an integer of 0..1000000');
    expect(openFds()).toBe(before);
  });

  const noTap = skipUnless(
    missing([
      [isRoot(), 'root (to create a tap)'],
      [hasTun(), '/dev/net/tun'],
    ]),
    'vhost-net with a tap',
  );
  it.skipIf(noTap)('a device that is no vhost device: the ioctl named, tap and device closed', async () => {
    const before = openFds();
    const err = await start({ tap: TAP, device: '/dev/null' }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^the kernel's vhost-net refused VHOST_GET_FEATURES: .*Inappropriate ioctl/);
    expect(err).toMatchObject({ code: 'ENOTTY', op: 'VHOST_GET_FEATURES' });
    expect(openFds()).toBe(before);
    // The tap was ours alone and not persistent: it went with its last queue.
    expect(fs.existsSync(`/sys/class/net/${TAP}`)).toBe(false);
  });
});
