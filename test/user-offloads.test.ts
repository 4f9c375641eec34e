/**
 * The user port's software offloads (native/net/software_offload.h) with our own front-end as the
 * guest and hand-built frames, libslirp judging every checksum (it drops what does not add up): a UDP
 * datagram whose checksum the guest left partial (CSUM) reaches a host socket, and the same bytes
 * without the offload flag do not; a TSO frame of 20,000 bytes on a connection a --forward opened
 * reaches the host byte for byte, cut into 1000-byte segments; frames whose header lies are dropped
 * and counted in the TX queue's errors while the device keeps serving. Needs libslirp0.
 */
import { describe, expect, it } from 'vitest';
import * as crypto from 'node:crypto';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { bit } from '../lib/protocol/constants';
import { VirtioNetFeature } from '../lib/net/features';
import { freePort } from '../lib/bench/usernet/transfer';
import type { NetDeviceOptions } from '../lib/net/device';
import { useBackendFixture } from './helpers/fixture';
import { lease, userGuest } from './helpers/user_guest';
import {
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
  readTcp,
  readTcpSyn,
  tcpSegment,
  udpDatagram,
  udpDatagramPartial,
  type TcpSegment,
} from './helpers/ip_frames';
import { hasLibrary, missing, skipUnless } from './helpers/peers';
import { sleep, until } from './helpers/until';

const skip = skipUnless(missing([[hasLibrary('libslirp.so.0'), 'libslirp (Debian package libslirp0)']]), 'user port offloads');
const fx = useBackendFixture();
const GATEWAY_MAC = Buffer.from([0x52, 0x55, 10, 0, 2, 2]);
const GUEST = '10.0.2.15';
const GATEWAY = '10.0.2.2';
const OFFLOADS =
  bit(VirtioNetFeature.CSUM) |
  bit(VirtioNetFeature.GUEST_CSUM) |
  bit(VirtioNetFeature.HOST_TSO4) |
  bit(VirtioNetFeature.HOST_TSO6) |
  bit(VirtioNetFeature.HOST_ECN);

/** The first bytes of a virtio-net header: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset. */
function netHeader(flags: number, gsoType: number, gsoSize: number, csumStart: number, csumOffset: number): Buffer {
  const h = Buffer.alloc(10);
  h[0] = flags;
  h[1] = gsoType;
  h.writeUInt16LE(gsoSize, 4);
  h.writeUInt16LE(csumStart, 6);
  h.writeUInt16LE(csumOffset, 8);
  return h;
}
const NEEDS_CSUM = 1;
const GSO_TCPV4 = 1;

/** A guest on the user port whose driver accepts `netFeatures`, with a lease; and its TX queue's errors. */
async function offloadGuest(device: NetDeviceOptions, netFeatures: bigint) {
  const g = await userGuest(fx, device, { netFeatures, maxFrame: 30_000 });
  await lease(g);
  return { ...g, txErrors: () => g.backend.device.stats()[1].errors };
}

/** A UDP socket on 127.0.0.1 collecting what it receives. */
async function udpSink() {
  const socket = dgram.createSocket('udp4');
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString()));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { port: socket.address().port, got, close: () => socket.close() };
}

describe.skipIf(skip)('the user port does the offloads it offers in software', () => {
  it('offers CSUM, HOST_TSO4/6, HOST_ECN and GUEST_CSUM, and completes a partial UDP checksum', async () => {
    const sink = await udpSink();
    try {
      const g = await offloadGuest({}, OFFLOADS);
      expect(g.driver.features & OFFLOADS).toBe(OFFLOADS);
      const frame = udpDatagramPartial(GUEST, GATEWAY, GATEWAY_MAC, 40100, sink.port, Buffer.from('completed'));
      // Control: without the flag the partial sum is a wrong checksum, and libslirp drops the datagram.
      g.send(frame);
      await sleep(500);
      expect(sink.got).toEqual([]);
      g.send(frame, netHeader(NEEDS_CSUM, 0, 0, 34, 6));
      expect(await until(() => sink.got.length === 1)).toBe(true);
      expect(sink.got).toEqual(['completed']);
      expect(g.txErrors()).toBe(0n);
      g.driver.close();
    } finally {
      sink.close();
    }
  });

  it('cuts a 20,000-byte TSO frame into segments that reach the host byte for byte', async () => {
    const hostPort = await freePort();
    const g = await offloadGuest({ forward: `tcp:${hostPort}:8080` }, OFFLOADS);
    const client = net.connect(hostPort, '127.0.0.1');
    const received: Buffer[] = [];
    client.on('data', (d: Buffer) => received.push(d));
    client.on('error', () => {});
    try {
      const syn = await g.receive(readTcpSyn, 'TCP SYN');
      const reply = (t: TcpSegment, seq: number, flags: number, payload?: Buffer, checksum?: 'partial') =>
        tcpSegment({
          src: GUEST,
          dst: t.src,
          via: t.from,
          srcPort: 8080,
          dstPort: t.srcPort,
          seq,
          ack: t.seq + 1,
          flags,
          payload,
          checksum,
        });
      const iss = 7000;
      g.send(reply(syn, iss, TCP_SYN | TCP_ACK));
      await g.receive((f) => {
        const t = readTcp(f);
        return t && t.flags & TCP_ACK && t.ack === iss + 1 ? t : undefined;
      }, 'ACK of our SYN');
      const data = crypto.randomBytes(Math.min(20_000, syn.window - 1));
      // As Linux sends it: one frame, the checksum left partial, gso_size the MSS.
      g.send(reply(syn, iss + 1, TCP_ACK | TCP_PSH, data, 'partial'), netHeader(NEEDS_CSUM, GSO_TCPV4, 1000, 34, 16));
      expect(await until(() => Buffer.concat(received).length >= data.length)).toBe(true);
      expect(Buffer.concat(received).equals(data)).toBe(true);
      expect(g.txErrors()).toBe(0n);
    } finally {
      client.destroy();
      g.driver.close();
    }
  });

  it('drops and counts frames whose header lies, and keeps serving', async () => {
    const sink = await udpSink();
    try {
      const g = await offloadGuest({}, OFFLOADS);
      const good = (n: number) => udpDatagram(GUEST, GATEWAY, GATEWAY_MAC, 40200, sink.port, Buffer.from(`alive ${n}`));
      const lies: [string, Buffer, Buffer][] = [
        ['a TSO frame that is UDP', good(0), netHeader(NEEDS_CSUM, GSO_TCPV4, 100, 34, 6)],
        ['a TSO frame with gso_size 0', good(0), netHeader(NEEDS_CSUM, GSO_TCPV4, 0, 34, 16)],
        ['an unknown gso_type', good(0), netHeader(NEEDS_CSUM, 3, 100, 34, 6)],
        ['a checksum field past the end', good(0), netHeader(NEEDS_CSUM, 0, 0, 34, 400)],
        ['a checksum start past the end', good(0), netHeader(NEEDS_CSUM, 0, 0, 0xffff, 6)],
      ];
      for (const [i, [what, frame, header]] of lies.entries()) {
        g.send(frame, header);
        g.send(good(i + 1));
        expect(await until(() => sink.got.includes(`alive ${i + 1}`)), what).toBe(true);
        expect(g.txErrors(), what).toBe(BigInt(i + 1));
      }
      expect(sink.got).not.toContain('alive 0');
      g.driver.close();

      // A guest that did not negotiate TSO may not send TSO frames.
      const plain = await offloadGuest({}, bit(VirtioNetFeature.CSUM));
      expect(plain.driver.features & bit(VirtioNetFeature.HOST_TSO4)).toBe(0n);
      plain.send(good(0), netHeader(NEEDS_CSUM, GSO_TCPV4, 100, 34, 16));
      plain.send(good(99));
      expect(await until(() => sink.got.includes('alive 99'))).toBe(true);
      expect(plain.txErrors()).toBe(1n);
      plain.driver.close();
    } finally {
      sink.close();
    }
  });
});
