/**
 * The QEMU command line the guest harness builds (lib/guest/qemu_command.ts) for the roles a test can
 * give QEMU on the vhost-user socket, its QMP socket and a migration destination: a destination's
 * argv is the source's plus `-incoming`, whatever else the options say. No QEMU needed.
 */
import { describe, expect, it } from 'vitest';
import type { BootFiles } from '../lib/guest/initramfs';
import { qemuArgs, type GuestOptions } from '../lib/guest/qemu_command';

const BOOT: BootFiles = { kernel: '/boot/vmlinux', initrd: '/tmp/initrd.img', version: '6.1.0', modules: [] };
const value = (args: string[], flag: string): string[] => args.flatMap((a, i) => (args[i - 1] === flag ? [a] : []));

describe('QEMU command line', () => {
  it('QEMU as the client by default, as a reconnecting client, or as the server', () => {
    const socketPath = '/tmp/s.sock';
    expect(value(qemuArgs(BOOT, { socketPath }), '-chardev')).toContain('socket,id=c0,path=/tmp/s.sock');
    expect(value(qemuArgs(BOOT, { socketPath, reconnect: 1 }), '-chardev')).toContain('socket,id=c0,path=/tmp/s.sock,reconnect=1');
    expect(value(qemuArgs(BOOT, { socketPath, server: true }), '-chardev')).toContain('socket,id=c0,path=/tmp/s.sock,server=on,wait=off');
  });

  it('refuses a reconnect that is not whole seconds, or with QEMU as the server', () => {
    expect(() => qemuArgs(BOOT, { socketPath: '/s', reconnect: 0.5 })).toThrow('reconnect is seconds between attempts');
    expect(() => qemuArgs(BOOT, { socketPath: '/s', reconnect: 1, server: true })).toThrow('not with server');
  });

  it('a migration destination gets the source argv plus -incoming; QMP on its own socket', () => {
    const shared: GuestOptions = { memoryMiB: 256, scenarios: ['tcp-rx'], params: { mb: 50 }, packed: true };
    const source = qemuArgs(BOOT, { ...shared, socketPath: '/tmp/a.sock', qmpSocket: '/tmp/q1' });
    const destination = qemuArgs(BOOT, { ...shared, socketPath: '/tmp/a.sock', qmpSocket: '/tmp/q1', incoming: '/tmp/m' });
    expect(value(source, '-qmp')).toEqual(['unix:/tmp/q1,server=on,wait=off']);
    expect(source).not.toContain('-incoming');
    expect(destination).toEqual([...source, '-incoming', 'unix:/tmp/m']);
  });
});
