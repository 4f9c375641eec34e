/**
 * Hand-built IPv4 frames a guest's network stack would send, and readers for what a user-mode
 * network answers: ARP, a DHCPDISCOVER, ICMP echo, UDP and TCP, and the fields the tests look at in
 * replies. Just enough of each protocol for the user port's tests; every checksum is computed (or left
 * partial on purpose, for the offloads).
 */
export const GUEST_MAC = Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
const BROADCAST = Buffer.alloc(6, 0xff);

export const ETH_ARP = 0x0806;
export const ETH_IPV4 = 0x0800;

export function ip(text: string): Buffer {
  return Buffer.from(text.split('.').map(Number));
}

export function ipText(b: Buffer): string {
  return [...b].join('.');
}

function ethernet(dst: Buffer, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  dst.copy(h, 0);
  GUEST_MAC.copy(h, 6);
  h.writeUInt16BE(type, 12);
  const f = Buffer.concat([h, payload]);
  return f.length >= 60 ? f : Buffer.concat([f, Buffer.alloc(60 - f.length)]);
}

/** The Internet checksum of `b` (RFC 1071). */
export function inetChecksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipv4(src: Buffer, dst: Buffer, proto: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h[8] = 64;
  h[9] = proto;
  src.copy(h, 12);
  dst.copy(h, 16);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

export function arpRequest(sender: string, target: string): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(ETH_IPV4, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(1, 6);
  GUEST_MAC.copy(a, 8);
  ip(sender).copy(a, 14);
  ip(target).copy(a, 24);
  return ethernet(BROADCAST, ETH_ARP, a);
}

/** A DHCPDISCOVER from a client with no address yet: 0.0.0.0:68 -> 255.255.255.255:67, no UDP checksum. */
export function dhcpDiscover(xid: number): Buffer {
  const bootp = Buffer.alloc(236 + 312);
  bootp[0] = 1; // BOOTREQUEST
  bootp[1] = 1; // Ethernet
  bootp[2] = 6;
  bootp.writeUInt32BE(xid, 4);
  GUEST_MAC.copy(bootp, 28);
  Buffer.from([99, 130, 83, 99, 53, 1, 1, 255]).copy(bootp, 236); // cookie, DHCPDISCOVER, end
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(68, 0);
  udp.writeUInt16BE(67, 2);
  udp.writeUInt16BE(8 + bootp.length, 4);
  return ethernet(BROADCAST, ETH_IPV4, ipv4(ip('0.0.0.0'), ip('255.255.255.255'), 17, Buffer.concat([udp, bootp])));
}

/** The UDP checksum of a datagram (header with checksum 0, and payload) between two addresses. */
function udpChecksum(src: Buffer, dst: Buffer, datagram: Buffer): number {
  const pseudo = Buffer.alloc(12);
  src.copy(pseudo, 0);
  dst.copy(pseudo, 4);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(datagram.length, 10);
  return inetChecksum(Buffer.concat([pseudo, datagram])) || 0xffff;
}

/** A UDP datagram to `dst` through the MAC `via`; without a checksum (0, as IPv4 allows) unless asked. */
export function udpDatagram(
  src: string,
  dst: string,
  via: Buffer,
  srcPort: number,
  dstPort: number,
  payload: Buffer,
  checksum = false,
): Buffer {
  const udp = Buffer.concat([Buffer.alloc(8), payload]);
  udp.writeUInt16BE(srcPort, 0);
  udp.writeUInt16BE(dstPort, 2);
  udp.writeUInt16BE(udp.length, 4);
  if (checksum) udp.writeUInt16BE(udpChecksum(ip(src), ip(dst), udp), 6);
  return ethernet(via, ETH_IPV4, ipv4(ip(src), ip(dst), 17, udp));
}

/** An ICMP echo request to `dst` (through the gateway's MAC `via`). */
export function icmpEcho(src: string, dst: string, via: Buffer, id: number, seq: number): Buffer {
  const icmp = Buffer.concat([Buffer.alloc(8), Buffer.from('vhost-user user port')]);
  icmp[0] = 8;
  icmp.writeUInt16BE(id, 4);
  icmp.writeUInt16BE(seq, 6);
  icmp.writeUInt16BE(inetChecksum(icmp), 2);
  return ethernet(via, ETH_IPV4, ipv4(ip(src), ip(dst), 1, icmp));
}

export const etherType = (f: Buffer): number => f.readUInt16BE(12);
/** The IPv4 protocol of a frame, or -1. */
export const ipProto = (f: Buffer): number => (f.length >= 34 && etherType(f) === ETH_IPV4 ? f[23] : -1);
const l4 = (f: Buffer): number => 14 + (f[14] & 0x0f) * 4;

export interface ArpReply {
  senderMac: Buffer;
  senderIp: string;
  targetMac: Buffer;
}

export function readArpReply(f: Buffer): ArpReply | undefined {
  if (f.length < 42 || etherType(f) !== ETH_ARP || f.readUInt16BE(20) !== 2) return undefined;
  return { senderMac: f.subarray(22, 28), senderIp: ipText(f.subarray(28, 32)), targetMac: f.subarray(32, 38) };
}

export interface DhcpReply {
  xid: number;
  yiaddr: string;
  /** DHCP options by code. */
  options: Map<number, Buffer>;
}

export function readDhcpReply(f: Buffer): DhcpReply | undefined {
  if (ipProto(f) !== 17) return undefined;
  const u = l4(f);
  if (f.length < u + 8 + 240 || f.readUInt16BE(u) !== 67 || f.readUInt16BE(u + 2) !== 68) return undefined;
  const bp = u + 8;
  const options = new Map<number, Buffer>();
  for (let at = bp + 240; at + 1 < f.length && f[at] !== 255;) {
    if (f[at] === 0) {
      at++;
      continue;
    }
    options.set(f[at], f.subarray(at + 2, at + 2 + f[at + 1]));
    at += 2 + f[at + 1];
  }
  return { xid: f.readUInt32BE(bp + 4), yiaddr: ipText(f.subarray(bp + 16, bp + 20)), options };
}

export interface TcpSegment {
  seq: number;
  ack: number;
  window: number;
  /** The sender's MAC. */
  from: Buffer;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  flags: number;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

export function readTcp(f: Buffer): TcpSegment | undefined {
  if (ipProto(f) !== 6) return undefined;
  const t = l4(f);
  return {
    src: ipText(f.subarray(26, 30)),
    dst: ipText(f.subarray(30, 34)),
    srcPort: f.readUInt16BE(t),
    dstPort: f.readUInt16BE(t + 2),
    seq: f.readUInt32BE(t + 4),
    ack: f.readUInt32BE(t + 8),
    flags: f[t + 13],
    window: f.readUInt16BE(t + 14),
    from: Buffer.from(f.subarray(6, 12)),
  };
}

/** A TCP segment with SYN set (a connection's opening), or undefined. */
export function readTcpSyn(f: Buffer): TcpSegment | undefined {
  const t = readTcp(f);
  return t && t.flags & TCP_SYN ? t : undefined;
}

export interface TcpSend {
  src: string;
  dst: string;
  /** The next hop's MAC. */
  via: Buffer;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  payload?: Buffer;
  /**
   * 'full' (default): a valid checksum; 'partial': only the pseudo-header's sum, not complemented, as a
   * guest leaves it for a device that completes it (VIRTIO_NET_F_CSUM).
   */
  checksum?: 'full' | 'partial';
}

/** A TCP segment (20-byte header, window 65535) through `via`. */
export function tcpSegment(o: TcpSend): Buffer {
  const payload = o.payload ?? Buffer.alloc(0);
  const tcp = Buffer.concat([Buffer.alloc(20), payload]);
  tcp.writeUInt16BE(o.srcPort, 0);
  tcp.writeUInt16BE(o.dstPort, 2);
  tcp.writeUInt32BE(o.seq >>> 0, 4);
  tcp.writeUInt32BE(o.ack >>> 0, 8);
  tcp[12] = 5 << 4;
  tcp[13] = o.flags;
  tcp.writeUInt16BE(0xffff, 14);
  const pseudo = Buffer.alloc(12);
  ip(o.src).copy(pseudo, 0);
  ip(o.dst).copy(pseudo, 4);
  pseudo[9] = 6;
  pseudo.writeUInt16BE(tcp.length, 10);
  const sum = o.checksum === 'partial' ? ~inetChecksum(pseudo) & 0xffff : inetChecksum(Buffer.concat([pseudo, tcp]));
  tcp.writeUInt16BE(sum, 16);
  return ethernet(o.via, ETH_IPV4, ipv4(ip(o.src), ip(o.dst), 6, tcp));
}

/** A UDP datagram like udpDatagram's whose checksum holds only the pseudo-header's sum (for CSUM). */
export function udpDatagramPartial(src: string, dst: string, via: Buffer, srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const f = udpDatagram(src, dst, via, srcPort, dstPort, payload);
  const pseudo = Buffer.alloc(12);
  ip(src).copy(pseudo, 0);
  ip(dst).copy(pseudo, 4);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(8 + payload.length, 10);
  f.writeUInt16BE(~inetChecksum(pseudo) & 0xffff, 34 + 6);
  return f;
}

export interface UdpDatagram {
  src: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
  /** Whether the UDP checksum is right; undefined when the sender left it out (0). */
  checksumOk: boolean | undefined;
  /** Whether the IPv4 header's checksum is right. */
  ipChecksumOk: boolean;
}

/** A UDP datagram's addresses, ports, payload and checksums' state, or undefined. */
export function readUdp(f: Buffer): UdpDatagram | undefined {
  if (ipProto(f) !== 17) return undefined;
  const u = l4(f);
  const datagram = Buffer.from(f.subarray(u, u + f.readUInt16BE(u + 4)));
  const sent = datagram.readUInt16BE(6);
  datagram.writeUInt16BE(0, 6);
  return {
    src: ipText(f.subarray(26, 30)),
    srcPort: datagram.readUInt16BE(0),
    dstPort: datagram.readUInt16BE(2),
    payload: datagram.subarray(8),
    checksumOk: sent === 0 ? undefined : udpChecksum(f.subarray(26, 30), f.subarray(30, 34), datagram) === sent,
    ipChecksumOk: inetChecksum(f.subarray(14, u)) === 0,
  };
}

/** An ICMP echo reply's source, id and sequence, or undefined. */
export function readEchoReply(f: Buffer): { src: string; id: number; seq: number } | undefined {
  if (ipProto(f) !== 1) return undefined;
  const i = l4(f);
  if (f[i] !== 0) return undefined;
  return { src: ipText(f.subarray(26, 30)), id: f.readUInt16BE(i + 4), seq: f.readUInt16BE(i + 6) };
}
