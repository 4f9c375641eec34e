/**
 * One front-end connection: what it negotiated, and the dispatch of each request through the
 * handler table. Every request is decoded and checked before anything acts on it; every fd it
 * carried is either handed to the native device or closed here, whatever happens.
 *
 * Error policy (vhost-user spec, REPLY_ACK): a request that fails gets a non-zero REPLY_ACK when the
 * front-end asked for one and REPLY_ACK was negotiated; otherwise the connection is closed with the
 * reason logged, since the front-end has no other way to learn that its request had no effect.
 */
import { native } from '../binding';
import { VhostUserError } from '../errors';
import type { VhostUserDevice } from './device';
import { decodeRequest, encodeReply, replyKind, type Message, type MessageHeader, type ReplyBody } from './codec';
import { HeaderFlag, ProtocolFeature, VirtioFeature, hasBit, requestName } from './constants';
import { HANDLERS } from './handlers';

export type LogLevel = 'info' | 'warn';
export type Logger = (level: LogLevel, message: string) => void;

export interface SessionIo {
  send(bytes: Buffer, fds?: number[]): void;
  /** Ends the connection; the reason is logged by the owner. */
  close(reason: Error): void;
}

/** Every fd a decoded message carries. */
export function messageFds(msg: Message): number[] {
  const out: number[] = [];
  if ('fd' in msg && typeof msg.fd === 'number') out.push(msg.fd);
  if ('regions' in msg) for (const r of msg.regions) out.push(r.fd);
  return out;
}

export class Session {
  /** SET_FEATURES value, or null before the first one. */
  ackedFeatures: bigint | null = null;
  ackedProtocolFeatures = 0n;
  status = 0;
  owner = false;
  /** fds of the request being handled that no one has taken yet; closed after the handler. */
  private unowned: number[] = [];

  constructor(
    readonly device: VhostUserDevice,
    private readonly io: SessionIo,
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
      throw new VhostUserError(
        'EINVAL',
        `${request}: ring index ${index} out of range (device has ${this.device.queueCount} rings)`,
        { op: request },
      );
    }
    return index;
  }

  /** The handler passes the message's fds to the native device, which owns them from now on. */
  handOverFds(): void {
    this.unowned = [];
  }

  /** Handles one request read off the socket. Never throws. */
  handle(header: MessageHeader, payload: Buffer, fds: number[]): void {
    const name = requestName(header.request);
    let msg: Message;
    try {
      msg = decodeRequest({ request: header.request, flags: header.flags, payload, fds });
    } catch (err) {
      closeAll(fds);
      this.fail(header, name, err, this.wantsAck(header));
      return;
    }
    this.unowned = messageFds(msg);
    // Decided before the handler runs: a handler may reset what was negotiated (RESET_OWNER).
    const ack = this.wantsAck(header);
    try {
      const handler = HANDLERS[msg.request] as
        | { needs?: number; run(s: Session, m: Message): ReplyBody | undefined }
        | undefined;
      if (!handler) {
        throw new VhostUserError('ENOTSUP_REQUEST', `${name} is not supported by this device (it was not offered)`, {
          op: name,
        });
      }
      if (handler.needs !== undefined && !this.hasProtocolFeature(handler.needs)) {
        const feature = Object.entries(ProtocolFeature).find(([, n]) => n === handler.needs)?.[0];
        throw new VhostUserError(
          'EPROTO',
          `${name} requires protocol feature ${feature}, which was not negotiated (SET_PROTOCOL_FEATURES)`,
          { op: name },
        );
      }
      const body = handler.run(this, msg);
      closeAll(this.unowned);
      this.unowned = [];
      if (body) this.io.send(encodeReply(header.request, body));
      else if (ack) this.io.send(encodeReply(header.request, { kind: 'u64', value: 0n }));
    } catch (err) {
      closeAll(this.unowned);
      this.unowned = [];
      this.fail(header, name, err, ack);
    }
  }

  private wantsAck(header: MessageHeader): boolean {
    return (
      (header.flags & HeaderFlag.NEED_REPLY) !== 0 &&
      this.hasProtocolFeature(ProtocolFeature.REPLY_ACK) &&
      replyKind(header.request) === null
    );
  }

  private fail(header: MessageHeader, name: string, err: unknown, ack: boolean): void {
    const e = err instanceof Error ? err : new Error(String(err));
    if (ack) {
      this.log('warn', `${name} failed: ${e.message} (nacked)`);
      try {
        this.io.send(encodeReply(header.request, { kind: 'u64', value: 1n }));
        return;
      } catch (sendErr) {
        this.io.close(sendErr instanceof Error ? sendErr : new Error(String(sendErr)));
        return;
      }
    }
    this.io.close(new VhostUserError(e instanceof VhostUserError ? e.code : 'EPROTO', `${name} failed: ${e.message}`));
  }

  /** Back to a new connection's state; the device drops its memory, rings and fds. */
  reset(): void {
    this.ackedFeatures = null;
    this.ackedProtocolFeatures = 0n;
    this.status = 0;
    this.owner = false;
    this.device.reset();
  }
}

function closeAll(fds: number[]): void {
  for (const fd of fds) if (fd >= 0) native.close(fd);
}
