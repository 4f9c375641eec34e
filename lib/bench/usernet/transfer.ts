/**
 * The host's end of the benchmark's two transfers, both through a port forward of the back-end and timed
 * on the host: a sender (the guest's tcp-sink reads) and a reader (the guest's tcp-serve sends). In the
 * harness's process: at these rates (tens of MB/s under TCG) the md5 and the socket cost it little next
 * to QEMU.
 */
import * as crypto from 'node:crypto';
import * as net from 'node:net';

export interface HostTiming {
  bytes: number;
  md5: string;
  seconds: number;
}

/** Seconds on the process's monotonic clock. */
export const now = (): number => Number(process.hrtime.bigint()) / 1e9;

/** `bytes` of random data and their md5 (made once per benchmark). */
export function randomPayload(bytes: number): { data: Buffer; md5: string } {
  const data = crypto.randomBytes(bytes);
  return { data, md5: crypto.createHash('md5').update(data).digest('hex') };
}

export interface Sending {
  /** When the connection was made (seconds on the process's monotonic clock, as now()). */
  readonly connected: Promise<number>;
  /** Resolves when the connection has closed, with the bytes written. */
  readonly done: Promise<{ bytes: number }>;
}

/**
 * Connects to 127.0.0.1:port and sends `data`, then ends the connection. Its close does not mark the
 * guest's last byte (megabytes can sit in socket buffers on the way): the caller stops the clock when
 * the guest says its reader has reached the end.
 */
export function sendTo(port: number, data: Buffer, timeoutMs: number): Sending {
  let onConnect: (t: number) => void = () => {};
  const connected = new Promise<number>((resolve) => (onConnect = resolve));
  const done = new Promise<{ bytes: number }>((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => {
      onConnect(now());
      sock.end(data);
    });
    const timer = setTimeout(() => sock.destroy(new Error(`port ${port}: not done after ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('close', (hadError) => {
      clearTimeout(timer);
      if (!hadError) resolve({ bytes: sock.bytesWritten });
    });
  });
  done.catch(() => {}); // awaited later, or never when the run failed before
  return { connected, done };
}

/** Connects to 127.0.0.1:port, sends one byte, reads `bytes` (or until the end): count, md5, connect to last byte. */
export function readPort(port: number, bytes: number, timeoutMs: number): Promise<HostTiming> {
  return new Promise((resolve, reject) => {
    const hash = crypto.createHash('md5');
    let n = 0;
    let t0 = now();
    let last = t0;
    let settled = false;
    const sock = net.connect(port, '127.0.0.1', () => {
      t0 = now();
      // One byte first (the guest's server discards it): Debian 12's passt never sends the ACK that ends
      // the guest's handshake until it has data to carry it, so a silent reader would wait forever.
      sock.write('.');
    });
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // A FIN, not a reset: the back-end passes the end on and the guest's server ends as it would.
      if (err) sock.destroy();
      else sock.end(() => setTimeout(() => sock.destroy(), 5000).unref());
      if (err) reject(err);
      else resolve({ bytes: n, md5: hash.digest('hex'), seconds: last - t0 });
    };
    const timer = setTimeout(() => finish(new Error(`port ${port}: ${n} of ${bytes} bytes after ${timeoutMs} ms`)), timeoutMs);
    sock.on('data', (d: Buffer) => {
      last = now();
      const take = d.subarray(0, bytes - n);
      hash.update(take);
      n += take.length;
      if (n >= bytes) finish();
    });
    sock.on('end', () => finish());
    sock.on('error', (e) => finish(e));
  });
}

/** A host TCP port on 127.0.0.1 that nobody listens on (just closed): the forward's host side. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}
