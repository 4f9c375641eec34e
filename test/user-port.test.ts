/**
 * The user port (libslirp) without a VM: our front-end is the guest and sends hand-built frames. DHCP
 * and ARP show that the stack is configured as the options say and that frames go both ways through
 * the port; a ping to the gateway, a UDP exchange with a host socket through the gateway and a
 * connection to a forwarded host port show the stack's own sockets and timers are served by the
 * worker. Without libslirp at run time the CLI fails in one line naming the package. Needs libslirp0.
 */
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as path from 'node:path';
import { freePort } from '../lib/bench/usernet/transfer';
import { useBackendFixture } from './helpers/fixture';
import { lease, userGuest } from './helpers/user_guest';
import {
  GUEST_MAC,
  arpRequest,
  icmpEcho,
  readArpReply,
  readEchoReply,
  readTcpSyn,
  readUdp,
  udpDatagram,
  ipText,
} from './helpers/ip_frames';
import { hasLibrary, missing, skipUnless } from './helpers/peers';
import { sleep, until } from './helpers/until';

const skip = skipUnless(missing([[hasLibrary('libslirp.so.0'), 'libslirp (Debian package libslirp0)']]), 'user port');
const fx = useBackendFixture();
/** libslirp's MAC for its own addresses: 52:55 and the IPv4 address. */
const slirpMac = (addr: string) => Buffer.from([0x52, 0x55, ...addr.split('.').map(Number)]);

describe.skipIf(skip)('user port', () => {
  it('offers a DHCP lease and answers ARP for the gateway (default network)', async () => {
    const g = await userGuest(fx, {});
    const offer = await lease(g);
    expect(offer.xid).toBe(0x1234abcd);
    expect(offer.yiaddr).toBe('10.0.2.15');
    expect([...(offer.options.get(53) ?? [])]).toEqual([2]); // DHCPOFFER
    expect(ipText(offer.options.get(3) ?? Buffer.alloc(4))).toBe('10.0.2.2');
    expect(ipText(offer.options.get(6) ?? Buffer.alloc(4))).toBe('10.0.2.3');

    g.send(arpRequest('10.0.2.15', '10.0.2.2'));
    const arp = await g.receive(readArpReply, 'ARP reply');
    expect(arp.senderIp).toBe('10.0.2.2');
    expect(arp.senderMac).toEqual(slirpMac('10.0.2.2'));
    expect(arp.targetMac).toEqual(GUEST_MAC);
    const [rx, tx] = g.backend.device.stats();
    expect(tx.packets).toBe(2n);
    expect(rx.packets).toBeGreaterThanOrEqual(2n);
    g.driver.close();
  });

  it('follows --net', async () => {
    const g = await userGuest(fx, { net: '192.168.50.0/24' });
    const offer = await lease(g);
    expect(offer.yiaddr).toBe('192.168.50.15');
    expect(ipText(offer.options.get(3) ?? Buffer.alloc(4))).toBe('192.168.50.2');
    g.driver.close();
  });

  it('answers a ping to the gateway', async () => {
    const g = await userGuest(fx, {});
    await lease(g);
    g.send(icmpEcho('10.0.2.15', '10.0.2.2', slirpMac('10.0.2.2'), 77, 1));
    const reply = await g.receive(readEchoReply, 'ICMP echo reply');
    expect(reply).toEqual({ src: '10.0.2.2', id: 77, seq: 1 });
    g.driver.close();
  });

  it('carries UDP between the guest and a host socket on 127.0.0.1 through the gateway', async () => {
    const server = dgram.createSocket('udp4');
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
    server.on('message', (msg, from) => server.send(Buffer.concat([Buffer.from('re: '), msg]), from.port, from.address));
    try {
      const g = await userGuest(fx, {});
      await lease(g);
      const port = server.address().port;
      g.send(udpDatagram('10.0.2.15', '10.0.2.2', slirpMac('10.0.2.2'), 40000, port, Buffer.from('hello host')));
      const reply = await g.receive((f) => readUdp(f), 'UDP answer');
      expect(reply.src).toBe('10.0.2.2');
      expect(reply.srcPort).toBe(port);
      expect(reply.dstPort).toBe(40000);
      expect(reply.payload.toString()).toBe('re: hello host');
      expect(reply.checksumOk).toBe(true);
      g.driver.close();
    } finally {
      server.close();
    }
  });

  it('--dns: queries to the DNS address reach the resolver named; answers come from the DNS address', async () => {
    const resolver = dgram.createSocket('udp4');
    await new Promise<void>((r) => resolver.bind(0, '127.0.0.1', r));
    resolver.on('message', (msg, from) => resolver.send(Buffer.concat([Buffer.from('answer to '), msg]), from.port, from.address));
    try {
      const g = await userGuest(fx, { dns: `127.0.0.1:${resolver.address().port}` });
      await lease(g);
      // With a UDP checksum: libslirp drops a datagram whose checksum the rewrite got wrong.
      g.send(udpDatagram('10.0.2.15', '10.0.2.3', slirpMac('10.0.2.3'), 40001, 53, Buffer.from('query'), true));
      const answer = await g.receive((f) => readUdp(f), 'DNS answer');
      expect(answer).toMatchObject({ src: '10.0.2.3', srcPort: 53, dstPort: 40001, checksumOk: true, ipChecksumOk: true });
      expect(answer.payload.toString()).toBe('answer to query');
      g.driver.close();
    } finally {
      resolver.close();
    }
  });

  it('turns a connection to a --forward host port into a SYN to the guest', async () => {
    const hostPort = await freePort();
    const g = await userGuest(fx, { forward: `tcp:${hostPort}:8022` });
    await lease(g); // libslirp learns the guest's MAC from it
    const client = net.connect(hostPort, '127.0.0.1');
    client.on('error', () => {});
    try {
      const syn = await g.receive(readTcpSyn, 'TCP SYN');
      expect(syn.dst).toBe('10.0.2.15');
      expect(syn.dstPort).toBe(8022);
    } finally {
      client.destroy();
      g.driver.close();
    }
  });
});

/** Connects to 127.0.0.1:port: resolves 'connected' or the error code. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve('connected');
    });
    c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

/** A UDP server on 127.0.0.1 that answers 're: ' + what it got, and counts what it got. */
async function udpServer() {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const server = { socket, port: socket.address().port, received: 0 };
  socket.on('message', (msg, from) => {
    server.received++;
    socket.send(Buffer.concat([Buffer.from('re: '), msg]), from.port, from.address);
  });
  return server;
}

describe.skipIf(skip)('user port isolation', () => {
  it('--restrict: no gateway in the lease, no UDP to the host; forwards (several) still reach the guest', async () => {
    const server = await udpServer();
    const [p1, p2] = [await freePort(), await freePort()];
    try {
      const g = await userGuest(fx, { restrict: true, forward: [`tcp:${p1}:8001`, `tcp:${p2}:8002`] });
      const offer = await lease(g);
      expect(offer.yiaddr).toBe('10.0.2.15');
      expect(offer.options.has(3)).toBe(false); // libslirp names no router when restricted
      g.send(udpDatagram('10.0.2.15', '10.0.2.2', slirpMac('10.0.2.2'), 40002, server.port, Buffer.from('let me out')));
      const clients = [p1, p2].map((p) => net.connect(p, '127.0.0.1').on('error', () => {}));
      const syns = [await g.receive(readTcpSyn, 'first SYN'), await g.receive(readTcpSyn, 'second SYN')];
      expect(syns.map((t) => t.dstPort).sort()).toEqual([8001, 8002]);
      for (const c of clients) c.destroy();
      await sleep(300); // the positive case above answers within milliseconds
      expect(server.received).toBe(0);
      g.driver.close();
    } finally {
      server.socket.close();
    }
  });

  it("--no-host-loopback: the gateway does not lead to the host's 127.0.0.1", async () => {
    const server = await udpServer();
    try {
      const g = await userGuest(fx, { noHostLoopback: true });
      await lease(g);
      g.send(udpDatagram('10.0.2.15', '10.0.2.2', slirpMac('10.0.2.2'), 40003, server.port, Buffer.from('knock')));
      g.send(icmpEcho('10.0.2.15', '10.0.2.2', slirpMac('10.0.2.2'), 78, 1)); // the gateway itself still answers
      expect(await g.receive(readEchoReply, 'ICMP echo reply')).toEqual({ src: '10.0.2.2', id: 78, seq: 1 });
      await sleep(300);
      expect(server.received).toBe(0);
      g.driver.close();
    } finally {
      server.socket.close();
    }
  });

  it('checks the flags: booleans, and --dns on the loopback needs it', () => {
    expect(() => fx.start({ port: 'user', restrict: 1 as unknown as boolean })).toThrow(
      'restricted user network must be true or false, got 1',
    );
    expect(() => fx.start({ port: 'user', noHostLoopback: true, dns: '127.0.0.1:5353' })).toThrow(/drop --no-host-loopback/);
  });
});

describe.skipIf(skip)('user port forwards at run time', () => {
  it('addForward opens a host port into the guest, removeForward closes it', async () => {
    const hostPort = await freePort();
    const g = await userGuest(fx, {});
    await lease(g);
    g.backend.device.addForward(`tcp:127.0.0.1:${hostPort}:8023`);
    const client = net.connect(hostPort, '127.0.0.1');
    client.on('error', () => {});
    const syn = await g.receive(readTcpSyn, 'TCP SYN');
    client.destroy();
    expect(syn.dstPort).toBe(8023);
    g.backend.device.removeForward(`tcp:${hostPort}`);
    expect(await tryConnect(hostPort)).toBe('ECONNREFUSED');
    g.driver.close();
  });

  it('refuses what it cannot do, in one line each', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const g = await userGuest(fx, {});
      const device = g.backend.device;
      const busyPort = (busy.address() as net.AddressInfo).port;
      expect(() => device.addForward(`tcp:${busyPort}:22`)).toThrow(expect.objectContaining({ code: 'EADDRINUSE' }));
      expect(() => device.addForward('tcp:80')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      const unused = await freePort();
      expect(() => device.removeForward(`udp:${unused}`)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
      g.driver.close();
    } finally {
      busy.close();
    }
    const other = fx.start({ port: 'loopback' });
    expect(() => other.device.addForward('tcp:8080:80')).toThrow(/the loopback port has no forwards/);
  });
});

describe.skipIf(skip)('user port from the CLI', () => {
  it('takes --forward several times and the isolation flags', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const cli = path.resolve(__dirname, '../dist/cli.js');
    const args = [cli, 'net', '--socket', path.join(fx.dir, 'net.sock'), '--port', 'user', '--forward', `tcp:${p1}:22`];
    args.push('--forward', `tcp:127.0.0.1:${p2}:23`, '--restrict', '--no-host-loopback', '--no-ipv6');
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      expect(await until(() => out.includes('serving virtio-net (user port on 10.0.2.0/24'), 10_000), out).toBe(true);
      expect([await tryConnect(p1), await tryConnect(p2)]).toEqual(['connected', 'connected']);
    } finally {
      child.kill('SIGTERM');
    }
    const help = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' }).stdout;
    expect(help).toMatch(/\n {2}--restrict {2,}\S/);
    expect(help).toMatch(/\n {2}--forward SPEC {2,}\S/);
  });
});

describe('user port without libslirp', () => {
  it('fails in one line naming the package, exit code 1', () => {
    const cli = path.resolve(__dirname, '../dist/cli.js');
    const sock = path.join(fx.dir, 'net.sock');
    const env = { ...process.env, VHOST_USER_LIBSLIRP: '/nonexistent/libslirp.so.0' };
    const r = spawnSync(process.execPath, [cli, 'net', '--socket', sock, '--port', 'user'], { encoding: 'utf8', env, timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^vhost-user: the user port needs libslirp.*libslirp0/);
  });
});
