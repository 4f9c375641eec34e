/**
 * The queue pair a frame JS sends goes out on, when the program does not name one: a hash of its
 * flow, symmetric (both directions of a connection land on the same pair) and stable, over the
 * pairs the guest's driver enabled. IPv4 and IPv6 hash addresses and, for TCP and UDP, ports;
 * anything else its two MAC addresses.
 */
const ETH_HEADER = 14;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** One endpoint's bytes folded to 32 bits; the two endpoints are added, so their order does not matter. */
function fold(f: Uint8Array, from: number, len: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < from + len; i++) h = Math.imul(h ^ f[i], 0x01000193);
  return h >>> 0;
}

export function flowHash(f: Uint8Array): number {
  if (f.length < ETH_HEADER) return 0;
  const type = (f[12] << 8) | f[13];
  let a: number, b: number;
  if (type === ETHERTYPE_IPV4 && f.length >= ETH_HEADER + 20) {
    const ihl = (f[ETH_HEADER] & 0x0f) * 4;
    const proto = f[ETH_HEADER + 9];
    a = fold(f, ETH_HEADER + 12, 4);
    b = fold(f, ETH_HEADER + 16, 4);
    const l4 = ETH_HEADER + ihl;
    if ((proto === IPPROTO_TCP || proto === IPPROTO_UDP) && f.length >= l4 + 4) {
      a = Math.imul(a, 31) + fold(f, l4, 2);
      b = Math.imul(b, 31) + fold(f, l4 + 2, 2);
    }
  } else if (type === ETHERTYPE_IPV6 && f.length >= ETH_HEADER + 40) {
    const proto = f[ETH_HEADER + 6];
    a = fold(f, ETH_HEADER + 8, 16);
    b = fold(f, ETH_HEADER + 24, 16);
    const l4 = ETH_HEADER + 40;
    if ((proto === IPPROTO_TCP || proto === IPPROTO_UDP) && f.length >= l4 + 4) {
      a = Math.imul(a, 31) + fold(f, l4, 2);
      b = Math.imul(b, 31) + fold(f, l4 + 2, 2);
    }
  } else {
    a = fold(f, 0, 6);
    b = fold(f, 6, 6);
  }
  const h = (a + b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** The pair for frame `f` among `active` (the enabled pairs, in order; never empty). */
export function pickPair(f: Uint8Array, active: readonly number[]): number {
  return active.length === 1 ? active[0] : active[flowHash(f) % active.length];
}
