/** The pair send() picks for a frame: both directions of a flow on one pair, flows spread over the pairs. */
import { describe, expect, it } from 'vitest';
import { flowHash, pickPair } from '../lib/net/flow_hash';

/** An Ethernet + IPv4 + UDP/TCP frame between two endpoints. */
function ipv4(src: number[], dst: number[], sport: number, dport: number, proto = 17): Buffer {
  const f = Buffer.alloc(60);
  f.set([2, 0, 0, 0, 0, 1], 0);
  f.set([2, 0, 0, 0, 0, 2], 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f[23] = proto;
  f.set(src, 26);
  f.set(dst, 30);
  f.writeUInt16BE(sport, 34);
  f.writeUInt16BE(dport, 36);
  return f;
}

function ipv6(src: number, dst: number, sport: number, dport: number): Buffer {
  const f = Buffer.alloc(78);
  f.writeUInt16BE(0x86dd, 12);
  f[14] = 0x60;
  f[20] = 6; // TCP
  f[22 + 15] = src;
  f[38 + 15] = dst;
  f.writeUInt16BE(sport, 54);
  f.writeUInt16BE(dport, 56);
  return f;
}

describe('flow hash', () => {
  it('is symmetric: a reply hashes like its request (IPv4, IPv6, other EtherTypes by MAC)', () => {
    expect(flowHash(ipv4([10, 0, 0, 1], [10, 0, 0, 2], 5000, 53))).toBe(flowHash(ipv4([10, 0, 0, 2], [10, 0, 0, 1], 53, 5000)));
    expect(flowHash(ipv6(1, 2, 40000, 443))).toBe(flowHash(ipv6(2, 1, 443, 40000)));
    const arp = Buffer.alloc(60);
    arp.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    arp.writeUInt16BE(0x0806, 12);
    const reply = Buffer.from(arp);
    arp.copy(reply, 0, 6, 12);
    arp.copy(reply, 6, 0, 6);
    expect(flowHash(arp)).toBe(flowHash(reply));
  });

  it('tells flows apart by port and spreads them over the pairs', () => {
    expect(flowHash(ipv4([10, 0, 0, 1], [10, 0, 0, 2], 5000, 53))).not.toBe(flowHash(ipv4([10, 0, 0, 1], [10, 0, 0, 2], 5001, 53)));
    const counts = [0, 0, 0, 0];
    for (let port = 1000; port < 5000; port++) counts[pickPair(ipv4([10, 0, 0, 1], [10, 0, 0, 2], port, 80, 6), [0, 1, 2, 3])]++;
    for (const c of counts) expect(c).toBeGreaterThan(800); // 1000 each if even
  });

  it('picks among the enabled pairs only, and copes with runt frames', () => {
    for (let port = 0; port < 100; port++) expect([0, 2]).toContain(pickPair(ipv4([1, 1, 1, 1], [2, 2, 2, 2], port, 80), [0, 2]));
    expect(pickPair(new Uint8Array(3), [0, 1])).toBe(0);
    const runt = new Uint8Array(20);
    runt.set([0x08, 0x00], 12); // says IPv4, too short for its header: hashed by MAC
    expect(pickPair(runt, [0, 1])).toBeLessThan(2);
  });
});
