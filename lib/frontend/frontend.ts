/**
 * The control side of a vhost-user front-end: connects to a back-end's socket, sends requests with
 * the same codec the back-end uses, and matches replies to them in order. VirtioNetDriver builds the
 * QEMU-like start sequence on top of it.
 */
import { native } from '../binding';
import { VhostUserError } from '../errors';
import { Channel } from '../protocol/channel';
import { decodeReply, encodeRequest, parseReplyHeader, replyKind, type Message, type ReplyBody } from '../protocol/codec';
import { ProtocolFeature, Request, hasBit, requestName } from '../protocol/constants';
import {
  MAX_DEVICE_STATE_BYTES,
  STATE_REPLY_NO_FD,
  StateDirection,
  STATE_PHASE_STOPPED,
  errnoName,
} from '../protocol/device_state_transfer';
import { PipeReader, PipeWriter } from '../protocol/pipe_io';

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

  /**
   * DEVICE_STATE on a migration's source: the back-end's state, read from a pipe it writes and
   * closes, then CHECK_DEVICE_STATE. Every ring must be stopped first (GET_VRING_BASE).
   */
  async saveState(limit = MAX_DEVICE_STATE_BYTES): Promise<Buffer> {
    const [readEnd, writeEnd] = native.pipe();
    const reader = new PipeReader(readEnd, limit);
    try {
      await this.startTransfer(StateDirection.SAVE, writeEnd);
      const blob = await reader.wait();
      await this.checkTransfer();
      return blob;
    } finally {
      reader.close();
    }
  }

  /** DEVICE_STATE on a migration's destination: `blob` written into a pipe the back-end reads, then CHECK_DEVICE_STATE. */
  async loadState(blob: Buffer): Promise<void> {
    const [readEnd, writeEnd] = native.pipe();
    try {
      await this.startTransfer(StateDirection.LOAD, readEnd);
    } catch (err) {
      native.close(writeEnd);
      throw err;
    }
    const writer = new PipeWriter(writeEnd, blob);
    // A back-end that stopped reading (a blob too large) closed its end: its CHECK says why.
    const written = await writer.wait().then(
      () => null,
      (err: Error) => err,
    );
    writer.close();
    await this.checkTransfer();
    if (written) throw written;
  }

  /** SET_DEVICE_STATE_FD with the back-end's end of the pipe, which is then closed here (only its copy stays). */
  private async startTransfer(direction: number, fd: number): Promise<void> {
    const reply = this.requestU64({ request: Request.SET_DEVICE_STATE_FD, direction, phase: STATE_PHASE_STOPPED, fd });
    native.close(fd);
    const value = await reply;
    const code = Number(value & 0xffn);
    if (code !== 0) throw new VhostUserError('EREMOTE', `the back-end refused SET_DEVICE_STATE_FD: ${errnoName(code)} (see its log)`);
    if ((value & BigInt(STATE_REPLY_NO_FD)) === 0n)
      throw new VhostUserError('ENOTSUP', 'the back-end returned a channel of its own, which this front-end does not take');
  }

  private async checkTransfer(): Promise<void> {
    const result = await this.requestU64({ request: Request.CHECK_DEVICE_STATE });
    if (result !== 0n)
      throw new VhostUserError('EREMOTE', `the back-end's CHECK_DEVICE_STATE failed: ${errnoName(Number(result))} (see its log)`);
  }

  /** Writes raw bytes, for tests that play a misbehaving front-end. */
  sendRaw(bytes: Buffer, fds: number[] = []): void {
    this.channel.send(bytes, fds);
  }

  close(): void {
    this.channel.close();
  }
}
