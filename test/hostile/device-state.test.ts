/**
 * A hostile front-end's DEVICE_STATE: blobs short, of another magic, version or port, with lengths
 * that lie, records out of place, bad MACs, forwards and libslirp states; one larger than the 4 MiB
 * a back-end takes; a pipe never closed, a state never read; parameters out of range; a CHECK with no
 * transfer. Each is refused with its reason logged (CHECK_DEVICE_STATE or SET_DEVICE_STATE_FD replies
 * the errno), nothing of a refused blob is applied, and no fd is left. States larger than a pipe's
 * buffer go through both ways.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import { VhostUserBackend } from '../../lib/backend';
import { freePort } from '../../lib/bench/usernet/transfer';
import { native } from '../../lib/binding';
import { VirtioNetDriver } from '../../lib/frontend/net_driver';
import { Request } from '../../lib/protocol/constants';
import { DEVICE_STATE_MAGIC, DEVICE_STATE_VERSION, StateRecord, decodeDeviceState } from '../../lib/net/device_state';
import { MAX_DEVICE_STATE_BYTES, STATE_REPLY_NO_FD } from '../../lib/protocol/device_state_transfer';
import type { NetDeviceOptions } from '../../lib/net/device';
import { Switch } from '../../lib/net/switch';
import { useBackendFixture } from '../helpers/fixture';
import { fdKinds } from '../helpers/frames';
import { hasLibrary, missing, skipUnless } from '../helpers/peers';
import { within } from '../helpers/until';

const fx = useBackendFixture();
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** A blob: the header for `port` (its name length may lie), then the records. */
function blob(
  port: string,
  records: [number, Buffer][] = [],
  opts: { magic?: string; version?: number; nameLength?: number } = {},
): Buffer {
  const head = Buffer.alloc(7);
  head.write(opts.magic ?? DEVICE_STATE_MAGIC, 0, 'latin1');
  head.writeUInt16LE(opts.version ?? DEVICE_STATE_VERSION, 4);
  head.writeUInt8(opts.nameLength ?? port.length, 6);
  return Buffer.concat([head, Buffer.from(port, 'latin1'), ...records.map(([type, body]) => record(type, body))]);
}

function record(type: number, body: Buffer, length = body.length): Buffer {
  const h = Buffer.alloc(6);
  h.writeUInt16LE(type, 0);
  h.writeUInt32LE(length, 2);
  return Buffer.concat([h, body]);
}

const mac = (i: number) => Buffer.from([0x02, 0, 0, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff]);

/** A device of `port` on a switch of its own (when a switch port), with our driver connected and every ring stopped. */
async function stoppedDevice(device: NetDeviceOptions, sw?: Switch): Promise<{ backend: VhostUserBackend; driver: VirtioNetDriver }> {
  const backend = fx.start(device);
  sw?.attach(backend);
  const driver = await VirtioNetDriver.start({ socketPath: backend.socketPath, memory: fx.memory });
  cleanups.push(() => driver.close());
  for (let q = 0; q < 2; q++) await driver.vringBase(q);
  return { backend, driver };
}

describe('hostile device state: blobs', () => {
  it('a switch port refuses each malformed blob at CHECK, with the reason, applying nothing', async () => {
    const sw = new Switch();
    cleanups.push(() => sw.close());
    const { driver } = await stoppedDevice({ port: 'switch' }, sw);
    const baseline = fdKinds();
    const good = record(StateRecord.MACS, mac(1));
    const cases: [string, Buffer, RegExp][] = [
      ['empty', Buffer.alloc(0), /0 bytes, shorter than the 7-byte header/],
      ['short', Buffer.from('VHUS\x01'), /5 bytes, shorter than the 7-byte header/],
      ['bad magic', blob('switch', [], { magic: 'QEMU' }), /magic 51454d55, not "VHUS"/],
      ['bad version', blob('switch', [], { version: 2 }), /format version 2; this back-end reads version 1/],
      ['name past the end', blob('switch', [], { nameLength: 200 }), /the port name runs 194 bytes past the end/],
      ['another port', blob('user'), /saved by a device of port 'user', this device's port is 'switch'/],
      ['stray bytes', Buffer.concat([blob('switch'), Buffer.from([3, 0, 6])]), /3 stray bytes at offset 13/],
      [
        'lying length',
        Buffer.concat([blob('switch', [[StateRecord.MACS, mac(1)]]), record(StateRecord.MACS, mac(2), 1000)]),
        /claims 1000 bytes, 6 are left/,
      ],
      ['unknown record', blob('switch', [[9, Buffer.alloc(4)]]), /record type 9 at offset 13 has no place in a switch port's state/],
      ['forward in a switch state', blob('switch', [[StateRecord.FORWARD, Buffer.from('tcp:127.0.0.1:1:1')]]), /record type 1/],
      ['MACs twice', Buffer.concat([blob('switch'), good, good]), /record type 3 twice/],
      ['half a MAC', blob('switch', [[StateRecord.MACS, Buffer.alloc(7, 2)]]), /MAC list of 7 bytes/],
      [
        'multicast MAC',
        blob('switch', [[StateRecord.MACS, Buffer.from('01005e000001', 'hex')]]),
        /MAC 01005e000001 is not a unicast address/,
      ],
      ['zero MAC', blob('switch', [[StateRecord.MACS, Buffer.alloc(6)]]), /MAC 000000000000 is not a unicast address/],
    ];
    for (const [name, bytes, reason] of cases) {
      fx.warnings.length = 0;
      await expect(driver.control.loadState(bytes), name).rejects.toThrow(/CHECK_DEVICE_STATE failed: EBADMSG/);
      expect(fx.warnings.join('\n'), name).toMatch(reason);
    }
    // The good MAC before the lying record was not learnt: the blob is read whole before anything applies.
    expect(sw.macTable()).toEqual([]);
    expect(fdKinds()).toEqual(baseline);
  });

  it('more than 4 MiB is refused once the limit passes (EFBIG), the front-end told by CHECK', async () => {
    const { driver } = await stoppedDevice({ port: 'loopback' });
    const baseline = fdKinds();
    const huge = Buffer.concat([blob('loopback'), Buffer.alloc(MAX_DEVICE_STATE_BYTES)]);
    await expect(within(driver.control.loadState(huge), 10_000, 'the refusal')).rejects.toThrow(/CHECK_DEVICE_STATE failed: EFBIG/);
    expect(fx.warnings.join('\n')).toMatch(/more than 4194304 bytes came through the pipe/);
    expect(fdKinds()).toEqual(baseline);
    // The connection serves on: a good state loads.
    await driver.control.loadState(blob('loopback'));
  });

  it('states larger than the pipe go through both ways (no deadlock): 12,000 MACs', async () => {
    const sw = new Switch({ maxMacs: 20_000 });
    cleanups.push(() => sw.close());
    const { driver } = await stoppedDevice({ port: 'switch' }, sw);
    const macs = Array.from({ length: 12_000 }, (_, i) => mac(i + 1));
    await within(driver.control.loadState(blob('switch', [[StateRecord.MACS, Buffer.concat(macs)]])), 10_000, 'the load');
    expect(sw.macTable().length).toBe(12_000);
    const saved = decodeDeviceState(await within(driver.control.saveState(), 10_000, 'the save'), 'switch');
    expect(saved.macs.length).toBe(12_000);
    expect(fx.warnings).toEqual([]);
  });
});

const skipUser = skipUnless(missing([[hasLibrary('libslirp.so.0'), 'libslirp (Debian package libslirp0)']]), 'user port');

describe.skipIf(skipUser)('hostile device state: the user port', () => {
  it('refuses a bad forward or libslirp state, undoing the forwards it had opened', async () => {
    const { backend, driver } = await stoppedDevice({ port: 'user' });
    const slirp = decodeDeviceState(backend.device.saveState(), 'user');
    const version = Buffer.alloc(4);
    version.writeInt32LE(slirp.slirpVersion, 0);
    const hostPort = await freePort();
    const forward: [number, Buffer] = [StateRecord.FORWARD, Buffer.from(`tcp:127.0.0.1:${hostPort}:22`)];
    const withSocket = Buffer.from(slirp.slirp);
    withSocket[0] = 42; // a socket record: libslirp would build a socket from these bytes
    const cases: [string, Buffer, RegExp, string][] = [
      [
        'not a forward',
        blob('user', [[StateRecord.FORWARD, Buffer.from('tcp:99999:2')]]),
        /'tcp:99999:2' is not tcp:\[HOSTADDR:\]HOSTPORT:GUESTPORT/,
        'EINVAL',
      ],
      ['forward text', blob('user', [[StateRecord.FORWARD, Buffer.from('tcp:$(reboot)')]]), /is not a forward spec/, 'EBADMSG'],
      ['slirp socket', blob('user', [forward, [StateRecord.SLIRP, Buffer.concat([version, withSocket])]]), /without sockets/, 'EINVAL'],
      [
        'slirp short',
        blob('user', [forward, [StateRecord.SLIRP, Buffer.concat([version, slirp.slirp.subarray(1)])]]),
        /this libslirp/,
        'EINVAL',
      ],
      [
        'slirp version',
        blob('user', [forward, [StateRecord.SLIRP, Buffer.concat([Buffer.from([99, 0, 0, 0]), slirp.slirp])]]),
        /of version 99/,
        'EINVAL',
      ],
      ['slirp length', blob('user', [[StateRecord.SLIRP, Buffer.alloc(2)]]), /libslirp state of 2 bytes/, 'EBADMSG'],
    ];
    for (const [name, bytes, reason, code] of cases) {
      fx.warnings.length = 0;
      await expect(driver.control.loadState(bytes), name).rejects.toThrow(`CHECK_DEVICE_STATE failed: ${code}`);
      expect(fx.warnings.join('\n'), name).toMatch(reason);
    }
    // The forward of the refused states was opened, then closed again: nothing half applied.
    expect(decodeDeviceState(backend.device.saveState(), 'user').forwards).toEqual([]);
    expect(await refused(hostPort)).toBe(true);
    // The same forward twice opens once (the second would otherwise wait for ever on its own port).
    await driver.control.loadState(blob('user', [forward, forward]));
    expect(decodeDeviceState(backend.device.saveState(), 'user').forwards).toEqual([`tcp:127.0.0.1:${hostPort}:22`]);
    expect(backend.device.waitingForwards()).toEqual([]);
  });
});

describe('hostile device state: the transfer', () => {
  it('parameters out of range, a CHECK with no transfer: refused replies, reasons logged, fds closed', async () => {
    const { driver } = await stoppedDevice({ port: 'loopback' });
    const fe = driver.control;
    const baseline = fdKinds();
    const set = async (direction: number, phase: number) => {
      const [r, w] = native.pipe();
      const reply = fe.requestU64({ request: Request.SET_DEVICE_STATE_FD, direction, phase, fd: r });
      native.close(r);
      native.close(w);
      return reply;
    };
    expect(await set(2, 0)).toBe(BigInt(STATE_REPLY_NO_FD | 22)); // EINVAL
    expect(await set(0, 1)).toBe(BigInt(STATE_REPLY_NO_FD | 95)); // ENOTSUP
    expect(await fe.requestU64({ request: Request.CHECK_DEVICE_STATE })).toBe(71n); // EPROTO
    expect(fx.warnings).toEqual([
      'SET_DEVICE_STATE_FD refused: transfer direction 2 is neither 0 (save) nor 1 (load)',
      'SET_DEVICE_STATE_FD refused: migration phase 1: only 0 (stopped) is supported',
      'CHECK_DEVICE_STATE: the transfer failed: no transfer to check: SET_DEVICE_STATE_FD comes first',
    ]);
    expect(fdKinds()).toEqual(baseline);
  });

  it('a pipe left open (no end of file), a state never read, a transfer begun twice: refused, no fd left', async () => {
    const sw = new Switch({ maxMacs: 20_000 });
    cleanups.push(() => sw.close());
    const { driver } = await stoppedDevice({ port: 'switch' }, sw);
    const fe = driver.control;
    await driver.control.loadState(
      blob('switch', [[StateRecord.MACS, Buffer.concat(Array.from({ length: 12_000 }, (_, i) => mac(i + 1)))]]),
    );
    const baseline = fdKinds();
    const start = async (direction: number) => {
      const [r, w] = native.pipe();
      const reply = await fe.requestU64({ request: Request.SET_DEVICE_STATE_FD, direction, phase: 0, fd: direction ? r : w });
      native.close(direction ? r : w);
      expect(reply).toBe(BigInt(STATE_REPLY_NO_FD));
      return direction ? w : r;
    };
    // Loading: some bytes, and the front-end's end kept open.
    const w = await start(1);
    native.writeFd(w, blob('switch'), 0);
    expect(await fe.requestU64({ request: Request.CHECK_DEVICE_STATE })).toBe(32n); // EPIPE
    native.close(w);
    // Saving 72 KB (13 + 6 + 12,000 × 6 bytes), more than the pipe holds, that the front-end never reads.
    const r = await start(0);
    expect(await fe.requestU64({ request: Request.CHECK_DEVICE_STATE })).toBe(32n);
    native.close(r);
    // A second SET_DEVICE_STATE_FD abandons the first transfer (its fd closed); the second, closed at
    // once, ends with nothing: an empty blob.
    native.close(await start(0));
    native.close(await start(1));
    expect(await fe.requestU64({ request: Request.CHECK_DEVICE_STATE })).toBe(74n); // EBADMSG
    expect(fx.warnings).toEqual([
      'CHECK_DEVICE_STATE: the transfer failed: no end of file after 13 bytes: the front-end must close its end of the pipe before CHECK_DEVICE_STATE',
      'CHECK_DEVICE_STATE: the transfer failed: the front-end did not read the whole state (72019 bytes) before CHECK_DEVICE_STATE',
      'CHECK_DEVICE_STATE: the transfer failed: device state refused: 0 bytes, shorter than the 7-byte header',
    ]);
    expect(fdKinds()).toEqual(baseline);
  });
});

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}
