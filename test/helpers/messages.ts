/** Raw vhost-user messages for tests that send what the codec would refuse to encode. */
import { writeHeader } from '../../lib/protocol/codec';
import { HEADER_SIZE } from '../../lib/protocol/constants';

/** A 12-byte message header with exactly these fields. */
export function rawHeader(request: number, flags: number, size: number): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  writeHeader(b, request, flags, size);
  return b;
}
