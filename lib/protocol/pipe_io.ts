/**
 * A blob through a pipe without blocking, the way a DEVICE_STATE transfer moves the device's state
 * (vhost-user "Migrating back-end state"): the writer writes everything and closes its end, the
 * reader reads until end of file. Both sides of ours use these: the back-end (saving: it writes;
 * loading: it reads) and our front-end (the other ends). Nothing here blocks the event loop, so a
 * blob larger than the pipe (64 KiB) moves while both peers go on serving their sockets.
 */
import { native, type NativePoller } from '../binding';
import { VhostUserError } from '../errors';

const READ_CHUNK = 64 * 1024;

type Waiter<T> = { resolve(v: T): void; reject(e: Error): void };

/** Shared by both directions: the fd, its poller, the end (success or an error) and who waits for it. */
abstract class PipeEnd<T> {
  /** Set once the transfer ended badly (the fd is closed then). */
  error: VhostUserError | null = null;
  protected poller: NativePoller | null = null;
  private open = true;
  private ended = false;
  private waiters: Waiter<T>[] = [];

  constructor(protected readonly fd: number) {}

  /** Whether it ended (all moved, or failed). */
  get finished(): boolean {
    return this.ended;
  }

  /** Resolves when everything moved, rejects with the error. */
  wait(): Promise<T> {
    if (this.error) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve(this.result());
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Stops and closes the fd; a transfer not finished fails with `reason`. Idempotent. */
  close(reason = 'the transfer was abandoned'): void {
    if (!this.ended) this.fail(new VhostUserError('ECANCELED', reason));
    this.release();
  }

  protected abstract result(): T;

  /** Pumps again whenever the fd is ready; an fd that cannot be watched (a regular file) fails the transfer. */
  protected watch(writable: boolean): void {
    if (this.poller || !this.open) return;
    try {
      this.poller = new native.Poller(
        this.fd,
        (status) => {
          if (status < 0) this.fail(new VhostUserError('EPIPE', `the pipe's other end went away (poll status ${status})`));
          else this.pump();
        },
        writable,
      );
    } catch (err) {
      return this.fail(new VhostUserError('EBADF', `the transfer's fd cannot be watched: ${(err as Error).message}`));
    }
    this.poller.setRef(false); // a transfer alone does not keep the process running
  }

  protected abstract pump(): void;

  /** Non-blocking from here on (the front-end's fd may not be), then `first`. */
  protected start(first: () => void): void {
    try {
      native.setBlocking(this.fd, false);
    } catch (err) {
      return this.fail(new VhostUserError('EBADF', `the transfer's fd: ${(err as Error).message}`));
    }
    first();
  }

  protected succeed(): void {
    if (this.ended) return;
    this.ended = true;
    this.release();
    for (const w of this.waiters.splice(0)) w.resolve(this.result());
  }

  protected fail(err: VhostUserError): void {
    if (this.ended) return;
    this.ended = true;
    this.error = err;
    this.release();
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  private release(): void {
    this.poller?.stop();
    this.poller = null;
    if (this.open) native.close(this.fd);
    this.open = false;
  }
}

/** Reads a pipe until end of file, at most `limit` bytes (more is an error, EFBIG). */
export class PipeReader extends PipeEnd<Buffer> {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(
    fd: number,
    private readonly limit: number,
  ) {
    super(fd);
    this.start(() => this.watch(false));
  }

  /** What arrived so far (all of it once finished). */
  get bytes(): number {
    return this.size;
  }

  /** Everything read (the whole blob once finished without an error). */
  content(): Buffer {
    return this.result();
  }

  /** Reads what is there now, up to end of file or an empty pipe, without waiting. */
  drain(): void {
    this.pump();
  }

  protected result(): Buffer {
    return Buffer.concat(this.chunks, this.size);
  }

  protected pump(): void {
    try {
      while (!this.finished) {
        const got = native.readFd(this.fd, READ_CHUNK);
        if (got === null) return;
        if (got.length === 0) return this.succeed();
        this.size += got.length;
        if (this.size > this.limit) {
          return this.fail(new VhostUserError('EFBIG', `more than ${this.limit} bytes came through the pipe`));
        }
        this.chunks.push(got);
      }
    } catch (err) {
      this.fail(err instanceof VhostUserError ? err : new VhostUserError('EIO', String(err)));
    }
  }
}

/** Writes `data` into a pipe and closes it (end of file for the reader). Starts at once. */
export class PipeWriter extends PipeEnd<void> {
  private offset = 0;

  constructor(
    fd: number,
    private readonly data: Buffer,
  ) {
    super(fd);
    this.start(() => this.pump());
  }

  protected result(): void {}

  protected pump(): void {
    try {
      while (!this.finished && this.offset < this.data.length) {
        const n = native.writeFd(this.fd, this.data, this.offset);
        if (n < 0) return this.watch(true);
        this.offset += n;
      }
      this.succeed();
    } catch (err) {
      this.fail(err instanceof VhostUserError ? err : new VhostUserError('EIO', String(err)));
    }
  }
}
