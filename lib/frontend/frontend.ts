/**
 * The control side of a vhost-user front-end: connects to a back-end's socket, sends requests with
 * the same codec the back-end uses, and matches replies to them in order. VirtioNetDriver builds the
 * QEMU-like start sequence on top of it.
 */
import { native } from '../binding';
import { VhostUserError } from '../errors';
import { Channel } from '../protocol/channel';
import { decodeReply, encodeRequest, parseReplyHeader, replyKind, type Message, type ReplyBody } from '../protocol/codec';
import { ProtocolFeature, hasBit, requestName } from '../protocol/constants';

interface Pending {
  request: number;
  ack: boolean;
  resolve(body: ReplyBody): void;
  reject(err: Error): void;
}

export class VhostUserFrontend {
  /** Protocol features both sides agreed on (set by the caller after SET_PROTOCOL_FEATURES). */
  protocolFeatures = 0n;
  private readonly channel: Channel;
  private readonly pending: Pending[] = [];
  private closeReason: Error | undefined;
  private closedListeners: ((reason?: Error) => void)[] = [];

  constructor(socketPath: string) {
    const fd = native.connect(socketPath);
    this.channel = new Channel(fd, (b) => parseReplyHeader(b, this.pending[0]?.request ?? -1), {
      onMessage: (header, payload, fds) => {
        for (const f of fds) native.close(f); // no reply we ask for carries fds
        const p = this.pending.shift();
        if (!p) return;
        try {
          const body = decodeReply(p.request, header, payload);
          if (p.ack && body.kind === 'u64' && body.value !== 0n) {
            p.reject(new VhostUserError('EREMOTE', `the back-end refused ${requestName(p.request)} (REPLY_ACK ${body.value})`));
          } else p.resolve(body);
        } catch (err) {
          p.reject(err as Error);
        }
      },
      onClose: (reason) => {
        this.closeReason = reason ?? new VhostUserError('ECONNRESET', 'the back-end closed the connection');
        for (const p of this.pending.splice(0)) p.reject(this.closeReason);
        for (const l of this.closedListeners) l(reason);
      },
    });
  }

  get isOpen(): boolean {
    return this.channel.isOpen;
  }

  onClosed(listener: (reason?: Error) => void): void {
    this.closedListeners.push(listener);
  }

  /**
   * Sends a request. Resolves with its reply when it has one; with `needReply` and REPLY_ACK
   * negotiated, waits for the ack and rejects on a nack. Otherwise resolves at once.
   */
  request(msg: Message, opts: { needReply?: boolean } = {}): Promise<ReplyBody | undefined> {
    if (!this.channel.isOpen) return Promise.reject(this.closeReason ?? new VhostUserError('ENOTCONN', 'not connected'));
    const hasReply = replyKind(msg.request) !== null;
    const ack = !hasReply && !!opts.needReply && hasBit(this.protocolFeatures, ProtocolFeature.REPLY_ACK);
    const { bytes, fds } = encodeRequest(msg, ack);
    if (!hasReply && !ack) {
      this.channel.send(bytes, fds);
      return Promise.resolve(undefined);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ request: msg.request, ack, resolve, reject });
      try {
        this.channel.send(bytes, fds);
      } catch (err) {
        this.pending.pop();
        reject(err as Error);
      }
    });
  }

  /** Sends a request whose reply is a u64 and returns it. */
  async requestU64(msg: Message): Promise<bigint> {
    const body = await this.request(msg);
    if (body?.kind !== 'u64') throw new VhostUserError('EPROTO', `${requestName(msg.request)}: expected a u64 reply`);
    return body.value;
  }

  /** Writes raw bytes, for tests that play a misbehaving front-end. */
  sendRaw(bytes: Buffer, fds: number[] = []): void {
    this.channel.send(bytes, fds);
  }

  close(): void {
    this.channel.close();
  }
}
