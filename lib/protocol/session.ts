/**
 * One front-end connection's state: what it negotiated, its status, whether it took ownership, and
 * which fds of the request being handled nobody has taken yet. It knows neither the handlers nor
 * the dispatch that drive it (see dispatch.ts).
 */
import { VhostUserError } from '../errors';
import { VirtioFeature, hasBit } from './constants';
import type { VhostUserDevice } from './device';
import type { DeviceStateTransfer } from './device_state_transfer';

export type LogLevel = 'info' | 'warn';
export type Logger = (level: LogLevel, message: string) => void;

export class Session {
  /** SET_FEATURES value, or null before the first one. */
  ackedFeatures: bigint | null = null;
  ackedProtocolFeatures = 0n;
  status = 0;
  owner = false;
  /** The DEVICE_STATE transfer SET_DEVICE_STATE_FD began, until CHECK_DEVICE_STATE ends it. */
  stateTransfer: DeviceStateTransfer | null = null;
  /** fds of the request being handled that no one has taken yet; dispatch closes them after the handler. */
  private unowned: number[] = [];

  constructor(
    readonly device: VhostUserDevice,
    readonly log: Logger,
  ) {}

  hasProtocolFeature(bitNumber: number): boolean {
    return hasBit(this.ackedProtocolFeatures, bitNumber);
  }

  /** Without VHOST_USER_F_PROTOCOL_FEATURES, rings start enabled as soon as they are kicked. */
  get ringsStartEnabled(): boolean {
    return this.ackedFeatures === null || !hasBit(this.ackedFeatures, VirtioFeature.PROTOCOL_FEATURES);
  }

  /** Checks a ring index from the front-end against the device's queues. */
  queue(index: number, request: string): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.device.queueCount) {
      throw new VhostUserError('EINVAL', `${request}: ring index ${index} out of range (device has ${this.device.queueCount} rings)`, {
        op: request,
      });
    }
    return index;
  }

  /** Dispatch: the fds the request about to be handled carried; the session answers for them. */
  holdFds(fds: number[]): void {
    this.unowned = fds;
  }

  /** The handler passes the message's fds to the device, which owns them from now on. */
  handOverFds(): void {
    this.unowned = [];
  }

  /** Dispatch: the fds no one took, for it to close; the session holds none afterwards. */
  releaseFds(): number[] {
    const fds = this.unowned;
    this.unowned = [];
    return fds;
  }

  /** Back to a new connection's state; the device drops its memory, rings and fds. */
  reset(): void {
    this.ackedFeatures = null;
    this.ackedProtocolFeatures = 0n;
    this.status = 0;
    this.owner = false;
    this.stateTransfer?.close('the connection was reset');
    this.stateTransfer = null;
    this.device.reset();
  }
}
