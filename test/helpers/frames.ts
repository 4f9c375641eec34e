/** Deterministic test frames and the checks the loopback port must pass. */
export const MIN_FRAME = 60;
export const MAX_FRAME = 1514;

/** Frame i: sizes sweep 60..1514; MACs and payload derived from i so any corruption shows. */
export function makeFrame(i: number): Buffer {
  const len = MIN_FRAME + ((i * 7919) % (MAX_FRAME - MIN_FRAME + 1));
  const f = Buffer.alloc(len);
  f.set([0x52, 0x54, 0x00, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff], 0); // dst
  f.set([0x02, 0x00, 0x00, 0xaa, 0xbb, i & 0xff], 6); // src
  f.writeUInt16BE(0x88b5, 12); // local experimental ethertype
  f.writeUInt32BE(i, 14);
  for (let k = 18; k < len; k++) f[k] = (i + k * 31) & 0xff;
  return f;
}

/** What the loopback port must return for `sent`: the MACs swapped, every other byte identical. */
export function macSwapped(sent: Buffer): Buffer {
  const out = Buffer.from(sent);
  sent.copy(out, 0, 6, 12);
  sent.copy(out, 6, 0, 6);
  return out;
}

/** Mappings in this process of the memfds named `name` (as /proc/self/maps shows them: memfd:<name>). */
export function countMappings(name: string): number {
  return require('node:fs')
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l: string) => l.includes(`memfd:${name}`)).length;
}

/**
 * Mappings of guest memory (our front-end's memfd) in this process: the back-end's own mappings of
 * it come and go with connections. (The total count of /proc/self/maps is no measure: V8's heap,
 * malloc arenas and cached thread stacks grow it legitimately.)
 */
export const countGuestMappings = (): number => countMappings('vhost-user-guest');

/** What the process's fds point to, by kind, for a readable diff when a leak check fails. */
export function fdKinds(): Record<string, number> {
  const fs = require('node:fs');
  const out: Record<string, number> = {};
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    let kind = '?';
    try {
      kind = fs.readlinkSync(`/proc/self/fd/${fd}`).replace(/\d+/g, 'N');
    } catch {}
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}
