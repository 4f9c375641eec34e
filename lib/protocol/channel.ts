/**
 * One end of a vhost-user socket: reassembles messages from the byte stream with the fds that came
 * with them, and writes messages with fds. Used by the back-end (reading requests) and by our own
 * front-end (reading replies); the header parser given decides which.
 *
 * Reads never go past the current message (header first, then exactly `size` payload bytes), so the
 * fds the kernel hands us always belong to the message being read, and a peer that sends one byte
 * at a time is served like any other. A peer that starts a message and does not finish it within
 * `partialMessageMs` (the back-end's messageTimeoutMs) is closed with that reason: a connection left
 * half-written would otherwise hold the socket's one front-end slot for ever.
 */
import { native } from '../binding';
import { VhostUserError } from '../errors';
import type { MessageHeader } from './codec';
import { HEADER_SIZE, MAX_FDS_PER_MESSAGE } from './constants';

export interface ChannelHandler {
  /** A whole message. `fds` are owned by the handler from here on. */
  onMessage(header: MessageHeader, payload: Buffer, fds: number[]): void;
  /** The channel closed: `reason` is undefined for a clean end of stream or a local close(). */
  onClose(reason?: Error): void;
}

export interface ChannelOptions {
  /** How long a message may stay half-read before the channel closes (0 or absent: for ever). */
  partialMessageMs?: number;
  /** The timeout's reason, in the caller's words (which option to raise). */
  partialMessageHint?: string;
}

export class Channel {
  private poller: { stop(): void } | null;
  private partialTimer: NodeJS.Timeout | null = null;
  private header: MessageHeader | null = null;
  private buf: Buffer = Buffer.alloc(HEADER_SIZE);
  private have = 0;
  private fds: number[] = [];
  private open = true;

  constructor(
    readonly fd: number,
    private readonly parseHeader: (b: Buffer) => MessageHeader,
    private readonly handler: ChannelHandler,
    private readonly opts: ChannelOptions = {},
  ) {
    this.poller = new native.Poller(fd, (status, readable, disconnected) => {
      // libuv reports a socket error (EPOLLERR: most often a reset, when the peer closed with data
      // unread) as a status < 0, UV_EBADF on Linux, although no fd was closed.
      if (status < 0)
        this.fail(
          new VhostUserError('EIO', `the connection failed: the peer reset it or the socket reported an error (poll status ${status})`),
        );
      else if (readable || disconnected) this.readAvailable();
    });
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** Writes one whole message. A peer that stops reading (socket buffer full) is an error. */
  send(bytes: Buffer, fds: number[] = []): void {
    if (!this.open) throw new VhostUserError('ENOTCONN', 'the vhost-user connection is closed');
    const n = native.sendmsg(this.fd, bytes, fds);
    if (n !== bytes.length) {
      throw new VhostUserError(
        'EAGAIN',
        n < 0 ? 'the peer does not read its socket (send buffer full)' : `short write (${n} of ${bytes.length} bytes)`,
      );
    }
  }

  /** Closes the socket and every fd of a half-read message. Idempotent. */
  close(reason?: Error): void {
    if (!this.open) return;
    this.open = false;
    this.poller?.stop();
    this.poller = null;
    this.stopPartialClock();
    for (const fd of this.fds) native.close(fd);
    this.fds = [];
    native.close(this.fd);
    this.handler.onClose(reason);
  }

  private fail(err: Error): void {
    this.close(err);
  }

  private stopPartialClock(): void {
    if (this.partialTimer) clearTimeout(this.partialTimer);
    this.partialTimer = null;
  }

  /** The socket is drained: a message begun and not finished starts the clock, which runs from its first byte. */
  private watchPartial(): void {
    const partial = this.have > 0 || this.header !== null;
    const ms = this.opts.partialMessageMs ?? 0;
    if (!partial || ms <= 0 || this.partialTimer) return;
    this.partialTimer = setTimeout(() => {
      const hint = this.opts.partialMessageHint ? ` (${this.opts.partialMessageHint})` : '';
      this.fail(new VhostUserError('ETIMEDOUT', `the peer left a message unfinished for ${ms / 1000} s: closing the connection${hint}`));
    }, ms);
    this.partialTimer.unref();
  }

  private readAvailable(): void {
    try {
      while (this.open) {
        const want = (this.header ? this.header.size : HEADER_SIZE) - this.have;
        if (want > 0) {
          const r = native.recvmsg(this.fd, want);
          if (r === null) return this.watchPartial();
          this.fds.push(...r.fds);
          if (r.truncated) throw new VhostUserError('EBADMSG_FDS', 'the peer sent more fds than any message carries');
          if (r.bytes.length === 0) {
            const midMessage = this.have > 0 || this.header !== null;
            this.close(midMessage ? new VhostUserError('ECONNRESET', 'the peer closed the socket mid-message') : undefined);
            return;
          }
          r.bytes.copy(this.buf, this.have);
          this.have += r.bytes.length;
          if (this.fds.length > MAX_FDS_PER_MESSAGE) {
            throw new VhostUserError('EBADMSG_FDS', `more than ${MAX_FDS_PER_MESSAGE} fds with one message`);
          }
          if (this.have < (this.header ? this.header.size : HEADER_SIZE)) continue;
        }
        if (!this.header) {
          this.header = this.parseHeader(this.buf);
          this.buf = Buffer.alloc(this.header.size);
          this.have = 0;
          if (this.header.size > 0) continue;
        }
        const header = this.header;
        const payload = this.buf;
        const fds = this.fds;
        this.header = null;
        this.buf = Buffer.alloc(HEADER_SIZE);
        this.have = 0;
        this.fds = [];
        this.stopPartialClock();
        this.handler.onMessage(header, payload, fds);
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
