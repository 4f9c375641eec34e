/**
 * The checks of the guest's ping, tcp-tx and tcp-rx scenarios (init.sh), shared by the traffic
 * suites: every ping answered, the guest's upload whole at the host's sink, and its download whole
 * with the md5 the host's source sent.
 */
import { expect } from 'vitest';
import type { Guest } from '../../../lib/guest/guest';
import type { TcpPeer } from './tcp_peers';

export interface TrafficExpectation {
  /** Pings the guest sends (its `count` parameter). */
  pings: number;
  /** Bytes each way (its `mb` parameter, in bytes). */
  bytes: number;
  /** md5 of the file the host's source sends. */
  sentMd5: string;
  pingMs: number;
  /** Wait for each TCP scenario's result. */
  tcpMs: number;
}

export async function expectPingAndTcp(guest: Guest, sink: TcpPeer, source: TcpPeer, want: TrafficExpectation): Promise<void> {
  const ping = await guest.result('ping', want.pingMs);
  expect(ping).toMatchObject({ transmitted: String(want.pings), received: String(want.pings), rc: '0' });

  const tx = await guest.result('tcp-tx', want.tcpMs);
  expect(tx.rc).toBe('0');
  expect(await sink.done).toMatchObject({ bytes: want.bytes, md5: tx.md5 });

  const rx = await guest.result('tcp-rx', want.tcpMs);
  expect((await source.done).md5).toBe(want.sentMd5);
  expect(rx).toMatchObject({ rc: '0', bytes: String(want.bytes), md5: want.sentMd5 });
}
