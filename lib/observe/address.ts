/** The listen address of the metrics server as the command line gives it: `PORT` or `HOST:PORT`. */
import { VhostUserError } from '../errors';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Loopback only unless told otherwise: the counters describe a user's VMs to anyone who can connect. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/**
 * `9100` -> 127.0.0.1:9100; `0.0.0.0:9100`, `localhost:9100`, `[::1]:9100` as written. Port 0 asks the
 * system for a free one. Throws VhostUserError EINVAL naming `flag` otherwise.
 */
export function parseListenAddress(text: string, flag: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]:|([A-Za-z0-9.-]+):)?([0-9]{1,5})$/.exec(text);
  const port = m ? Number.parseInt(m[3], 10) : NaN;
  if (!m || port > 65535) {
    throw new VhostUserError(
      'EINVAL',
      `${flag} must be PORT or HOST:PORT with a port in 0..65535 (e.g. 9100, 0.0.0.0:9100, [::1]:9100), got '${text}'`,
    );
  }
  return { host: m[1] ?? m[2] ?? DEFAULT_METRICS_HOST, port };
}
