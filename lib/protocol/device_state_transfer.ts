/**
 * One DEVICE_STATE transfer on the back-end's side (vhost-user "Migrating back-end state"):
 * SET_DEVICE_STATE_FD starts it with the front-end's end of a pipe, CHECK_DEVICE_STATE ends it and
 * says whether it worked. Saving, the device's blob is written into the pipe at once, without
 * blocking (the front-end reads it after our reply: a blob larger than the pipe must not wait for
 * it); loading, the pipe is read as data comes, at most MAX_DEVICE_STATE_BYTES, and CHECK reads what
 * is left up to end of file and gives the whole blob to the device. Both happen only while every
 * ring is stopped (the device is suspended).
 */
import { constants } from 'node:os';
import { native } from '../binding';
import { VhostUserError } from '../errors';
import type { VhostUserDevice } from './device';
import { PipeReader, PipeWriter } from './pipe_io';

/** The largest state a back-end takes in: a device's is a few KiB; a front-end sending more is refused. */
export const MAX_DEVICE_STATE_BYTES = 4 * 1024 * 1024;

/** SET_DEVICE_STATE_FD's parameters (the spec's "device state transfer parameters"). */
export const StateDirection = { SAVE: 0, LOAD: 1 } as const;
export const STATE_PHASE_STOPPED = 0;
/** SET_DEVICE_STATE_FD's reply, bit 8: the back-end returns no fd of its own (ours never does). */
export const STATE_REPLY_NO_FD = 0x100;

export class DeviceStateTransfer {
  private constructor(
    private readonly device: VhostUserDevice,
    private readonly end: { kind: 'save'; writer: PipeWriter; size: number } | { kind: 'load'; reader: PipeReader },
  ) {}

  /**
   * SET_DEVICE_STATE_FD: checks the parameters and that the device is suspended, then starts. Takes
   * `fd` (closed when refused). Throws VhostUserError: EINVAL, ENOTSUP, EBUSY (a ring runs).
   */
  static start(device: VhostUserDevice, direction: number, phase: number, fd: number): DeviceStateTransfer {
    try {
      if (direction !== StateDirection.SAVE && direction !== StateDirection.LOAD)
        throw new VhostUserError('EINVAL', `transfer direction ${direction} is neither 0 (save) nor 1 (load)`);
      if (phase !== STATE_PHASE_STOPPED) throw new VhostUserError('ENOTSUP', `migration phase ${phase}: only 0 (stopped) is supported`);
      if (!device.ringsStopped || !device.saveState || !device.loadState)
        throw new VhostUserError('ENOTSUP', 'this device has no state to transfer (DEVICE_STATE was not offered)');
      if (!device.ringsStopped())
        throw new VhostUserError('EBUSY', 'a ring still runs: stop every ring with GET_VRING_BASE before transferring the device state');
      if (direction === StateDirection.LOAD)
        return new DeviceStateTransfer(device, { kind: 'load', reader: new PipeReader(fd, MAX_DEVICE_STATE_BYTES) });
      const blob = device.saveState();
      return new DeviceStateTransfer(device, { kind: 'save', writer: new PipeWriter(fd, blob), size: blob.length });
    } catch (err) {
      native.close(fd);
      throw err;
    }
  }

  /**
   * CHECK_DEVICE_STATE: whether the transfer worked. Saving: every byte written and the pipe closed.
   * Loading: the front-end closed its end, the blob is whole and the device took it. Returns what
   * happened, for the log; throws VhostUserError with the reason. Ends the transfer either way.
   */
  check(): string {
    const end = this.end;
    try {
      if (end.kind === 'save') {
        if (end.writer.error) throw end.writer.error;
        if (!end.writer.finished)
          throw new VhostUserError('EPIPE', `the front-end did not read the whole state (${end.size} bytes) before CHECK_DEVICE_STATE`);
        return `device state saved: ${end.size} bytes`;
      }
      end.reader.drain();
      if (end.reader.error) throw end.reader.error;
      if (!end.reader.finished)
        throw new VhostUserError(
          'EPIPE',
          `no end of file after ${end.reader.bytes} bytes: the front-end must close its end of the pipe before CHECK_DEVICE_STATE`,
        );
      const blob = end.reader.content();
      return `device state loaded (${blob.length} bytes): ${this.device.loadState!(blob)}`;
    } finally {
      this.close();
    }
  }

  /** Abandons the transfer (a new one began, or the connection ended); its fd is closed. */
  close(reason?: string): void {
    if (this.end.kind === 'save') this.end.writer.close(reason);
    else this.end.reader.close(reason);
  }
}

/** The u8 error code of a reply: the errno of the error's code (EBUSY 16, EBADMSG 74...), else EIO. */
export function stateErrorCode(err: unknown): number {
  const code = (err as { code?: string }).code ?? '';
  const errno = (constants.errno as Record<string, number | undefined>)[code];
  return errno !== undefined && errno > 0 && errno < 256 ? errno : constants.errno.EIO;
}

/** An errno's name for messages (16 -> EBUSY), or the number. */
export function errnoName(n: number): string {
  return Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `error ${n}`;
}
