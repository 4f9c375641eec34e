/**
 * The one error type thrown by this package.
 *
 * `code` is stable and meant for programs:
 *   - protocol errors use 'EBADMSG_*' (malformed message) and 'ENOTSUP_*'
 *     (well-formed but not supported), see lib/protocol/codec.ts;
 *   - errors coming from the native layer use the errno name ('EINVAL',
 *     'ENOMEM', ...) and carry the numeric `errno`.
 * `message` is for humans: it says what was wrong and, where it applies,
 * what to do about it. `op` names the operation that failed (a request name
 * such as 'SET_VRING_ADDR', or a system call such as 'mmap').
 */
export class VhostUserError extends Error {
  readonly code: string;
  readonly errno?: number;
  readonly op?: string;

  constructor(code: string, message: string, opts?: { errno?: number; op?: string }) {
    super(message);
    this.name = 'VhostUserError';
    this.code = code;
    if (opts?.errno !== undefined) this.errno = opts.errno;
    if (opts?.op !== undefined) this.op = opts.op;
  }
}
