/**
 * The back-end's side of the protocol, request by request, against a real socket: what it offers,
 * how it refuses what it does not support (REPLY_ACK nack, or closing the connection with the
 * reason logged), that every fd a refused request carried is closed, ring indices and set-up order,
 * features it did not offer, and memory slots. The socket itself (byte stream, connections, the
 * socket file, isolation) is in backend-socket.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { native } from '../lib/binding';
import type { VhostUserFrontend } from '../lib/frontend/frontend';
import { encodeRequest, type MemoryRegion } from '../lib/protocol/codec';
import { HEADER_SIZE, HeaderFlag, ProtocolFeature, Request, VRING_NOFD_MASK, VirtioFeature, bit, hasBit } from '../lib/protocol/constants';
import { VirtioNetFeature } from '../lib/net/features';
import { ALL_PROTOCOL, expectNack, mappingsOf, memfd, useControlFixture } from './helpers/control';
import { within } from './helpers/until';
import { fdKinds } from './helpers/frames';
import { rawHeader as header } from './helpers/messages';

const t = useControlFixture('vhost-user-protocol-');
const { connect, negotiated, warnings, expectClosedByBackend } = t;

describe('negotiation', () => {
  it('offers the features it honours, one queue pair, 509 memory slots, and keeps the status', async () => {
    const fe = connect();
    const features = await fe.requestU64({ request: Request.GET_FEATURES });
    expect(features).toBe(t.backend.device.features);
    for (const n of [
      VirtioFeature.VERSION_1,
      VirtioNetFeature.MRG_RXBUF,
      VirtioFeature.RING_EVENT_IDX,
      VirtioFeature.RING_INDIRECT_DESC,
      VirtioFeature.PROTOCOL_FEATURES,
      VirtioFeature.RING_PACKED,
      VirtioFeature.IN_ORDER,
      VirtioFeature.LOG_ALL,
    ]) {
      expect(hasBit(features, n), `feature bit ${n}`).toBe(true);
    }
    expect(hasBit(features, VirtioFeature.ACCESS_PLATFORM)).toBe(false);

    const protocol = await fe.requestU64({ request: Request.GET_PROTOCOL_FEATURES });
    expect(protocol).toBe(ALL_PROTOCOL);
    expect(hasBit(protocol, ProtocolFeature.LOG_SHMFD)).toBe(true); // migration: dirty-page logging
    expect(hasBit(protocol, ProtocolFeature.INFLIGHT_SHMFD)).toBe(false);
    await fe.request({ request: Request.SET_PROTOCOL_FEATURES, value: protocol });
    fe.protocolFeatures = protocol;

    expect(await fe.requestU64({ request: Request.GET_QUEUE_NUM })).toBe(1n);
    expect(t.backend.device.queuePairs).toBe(1);
    expect(t.backend.device.queueCount).toBe(2);
    expect(await fe.requestU64({ request: Request.GET_MAX_MEM_SLOTS })).toBe(509n);

    expect(await fe.request({ request: Request.SET_STATUS, value: 0x0bn }, { needReply: true })).toEqual({
      kind: 'u64',
      value: 0n,
    });
    expect(await fe.requestU64({ request: Request.GET_STATUS })).toBe(0x0bn);
    await fe.request({ request: Request.SET_STATUS, value: 0x0fn }, { needReply: true });
    expect(await fe.requestU64({ request: Request.GET_STATUS })).toBe(0x0fn);
    expect(warnings()).toEqual([]);
  });

  it('refuses GET_MAX_MEM_SLOTS until CONFIGURE_MEM_SLOTS is negotiated (closing: it has a reply)', async () => {
    const reason = await expectClosedByBackend(async (fe) => {
      await expect(within(fe.requestU64({ request: Request.GET_MAX_MEM_SLOTS }), 2000, 'close')).rejects.toThrow();
    });
    expect(reason?.message).toMatch(/GET_MAX_MEM_SLOTS.*CONFIGURE_MEM_SLOTS/);
    expect(warnings().some((w) => /GET_MAX_MEM_SLOTS.*CONFIGURE_MEM_SLOTS/.test(w))).toBe(true);
  });

  it('acks a NEED_REPLY request that resets the device (RESET_OWNER) when REPLY_ACK was negotiated', async () => {
    // The front-end negotiated REPLY_ACK and set NEED_REPLY: whatever the request does to the
    // session, the ack it asked for is owed (DPDK acks on the NEED_REPLY bit alone).
    const fe = await negotiated();
    const ack = await within(fe.request({ request: Request.RESET_OWNER }, { needReply: true }), 1000, 'the RESET_OWNER ack');
    expect(ack).toEqual({ kind: 'u64', value: 0n });
    expect(fe.isOpen).toBe(true);
  });
});

describe('unsupported requests', () => {
  it('are nacked with REPLY_ACK + NEED_REPLY; the connection stays and their fds are closed', async () => {
    const fe = await negotiated();
    const before = fdKinds();

    const reqFd = native.eventfd();
    const p1 = fe.request({ request: Request.SET_BACKEND_REQ_FD, fd: reqFd }, { needReply: true });
    native.close(reqFd);
    await expectNack(p1);
    expect(fdKinds()).toEqual(before);

    // SET_LOG_FD (with LOG_SHMFD) is accepted and its eventfd closed: nothing signals log writes.
    const logFd = native.eventfd();
    const p2 = fe.request({ request: Request.SET_LOG_FD, fd: logFd }, { needReply: true });
    native.close(logFd);
    expect(await p2).toEqual({ kind: 'u64', value: 0n });
    expect(fdKinds()).toEqual(before);

    await expectNack(fe.request({ request: Request.SET_VRING_ENDIAN, index: 0, num: 1 }, { needReply: true }));

    expect(fe.isOpen).toBe(true);
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(t.backend.device.features);
    expect(t.backend.connected).toBe(true);
    expect(fdKinds()).toEqual(before);
    const w = warnings();
    expect(w.some((m) => m.includes('SET_BACKEND_REQ_FD') && m.includes('nacked'))).toBe(true);
    expect(w.some((m) => m.includes('SET_LOG_FD'))).toBe(false);
    expect(w.some((m) => m.includes('SET_VRING_ENDIAN') && m.includes('nacked'))).toBe(true);
  });

  it('nacks an unknown request code sent with NEED_REPLY, skipping its payload', async () => {
    const peer = t.rawPeer();
    peer.send(header(Request.SET_PROTOCOL_FEATURES, HeaderFlag.VERSION, 8));
    const pf = Buffer.alloc(8);
    pf.writeBigUInt64LE(ALL_PROTOCOL);
    peer.send(pf);
    peer.send(Buffer.concat([header(99, HeaderFlag.VERSION | HeaderFlag.NEED_REPLY, 5), Buffer.from('junk!')]));
    const nack = await peer.reply();
    expect(nack.header.request).toBe(99);
    expect(nack.header.flags).toBe(HeaderFlag.VERSION | HeaderFlag.REPLY);
    expect(nack.payload.readBigUInt64LE(0)).not.toBe(0n);
    peer.send(header(Request.GET_FEATURES, HeaderFlag.VERSION, 0));
    const r = await peer.reply();
    expect(r.header.request).toBe(Request.GET_FEATURES);
    expect(r.payload.readBigUInt64LE(0)).toBe(t.backend.device.features);
    expect(warnings().some((m) => m.includes('UNKNOWN(99)'))).toBe(true);
  });

  it('SET_LOG_BASE with a log it cannot use (always answered, so never nacked) closes the connection, saying why', async () => {
    const reason = await expectClosedByBackend(
      async (fe) => {
        // Not sealed against shrinking: truncated under a worker, it would make the next mark fault.
        const fd = native.memfdCreate(`vhu-log-${process.pid}`, 4096, false);
        const p = fe.request({ request: Request.SET_LOG_BASE, mmapSize: 4096n, mmapOffset: 0n, fd }, { needReply: true });
        native.close(fd);
        await expect(within(p, 2000, 'close')).rejects.toThrow();
      },
      { protocol: ALL_PROTOCOL },
    );
    expect(reason?.message).toContain('SET_LOG_BASE');
    expect(reason?.message).toContain('not sealed against shrinking');
  });

  it('without REPLY_ACK close the connection, with a warning naming the request, and close their fds', async () => {
    const cases: { name: string; act: (fe: VhostUserFrontend) => void }[] = [
      {
        name: 'SET_BACKEND_REQ_FD',
        act: (fe) => {
          const fd = native.eventfd();
          void fe.request({ request: Request.SET_BACKEND_REQ_FD, fd }, { needReply: true });
          native.close(fd);
        },
      },
      {
        name: 'SET_LOG_FD',
        act: (fe) => {
          const fd = native.eventfd();
          void fe.request({ request: Request.SET_LOG_FD, fd });
          native.close(fd);
        },
      },
      {
        name: 'SET_VRING_ENDIAN',
        act: (fe) => void fe.request({ request: Request.SET_VRING_ENDIAN, index: 0, num: 0 }),
      },
      {
        name: 'SET_LOG_BASE',
        act: (fe) => {
          const m = memfd(4096);
          fe.request({ request: Request.SET_LOG_BASE, mmapSize: 4096n, mmapOffset: 0n, fd: m.fd }).catch(() => {});
          native.close(m.fd);
        },
      },
    ];
    for (const c of cases) {
      const warned = warnings().length;
      const reason = await expectClosedByBackend(c.act);
      expect(reason?.message, c.name).toContain(c.name);
      const newWarnings = warnings().slice(warned);
      expect(
        newWarnings.some((w) => w.includes(c.name)),
        `${c.name}: ${newWarnings.join(' | ')}`,
      ).toBe(true);
    }
  });

  it('with REPLY_ACK negotiated but NEED_REPLY clear also close the connection', async () => {
    const reason = await expectClosedByBackend((fe) => void fe.request({ request: Request.SET_VRING_ENDIAN, index: 0, num: 0 }), {
      protocol: ALL_PROTOCOL,
    });
    expect(reason?.message).toContain('SET_VRING_ENDIAN');
  });
});

describe('wrong fd counts', () => {
  it('GET_FEATURES with an fd attached: closed, the fd closed in the back-end', async () => {
    const reason = await expectClosedByBackend((fe) => {
      const { bytes } = encodeRequest({ request: Request.GET_FEATURES }, false);
      const efd = native.eventfd();
      fe.sendRaw(bytes, [efd]);
      native.close(efd);
    });
    expect(reason?.message).toMatch(/GET_FEATURES.*fd/);
  });

  it('SET_VRING_KICK with the NOFD bit clear and no fd: closed', async () => {
    const reason = await expectClosedByBackend((fe) => {
      // An fd number makes the encoder leave NOFD clear; the fd itself is not sent.
      const { bytes } = encodeRequest({ request: Request.SET_VRING_KICK, index: 0, fd: 1000 }, false);
      expect(bytes.readBigUInt64LE(HEADER_SIZE) & BigInt(VRING_NOFD_MASK)).toBe(0n);
      fe.sendRaw(bytes, []);
    });
    expect(reason?.message).toMatch(/SET_VRING_KICK.*NOFD/);
  });

  it('SET_VRING_CALL with the NOFD bit set and an fd anyway: closed, fd closed', async () => {
    await expectClosedByBackend((fe) => {
      const { bytes } = encodeRequest({ request: Request.SET_VRING_CALL, index: 0, fd: null }, false);
      const efd = native.eventfd();
      fe.sendRaw(bytes, [efd]);
      native.close(efd);
    });
  });

  it('SET_MEM_TABLE with fewer fds than regions: closed, the fd that came closed, nothing mapped', async () => {
    const m = memfd(2 << 20);
    await expectClosedByBackend((fe) => {
      const regions = [0, 1].map((i) => ({
        guestPhysAddr: BigInt(i) << 32n,
        size: 1n << 20n,
        userAddr: 0x7f00_0000_0000n + (BigInt(i) << 32n),
        mmapOffset: BigInt(i) << 20n,
        fd: m.fd,
      }));
      const { bytes } = encodeRequest({ request: Request.SET_MEM_TABLE, regions }, false);
      fe.sendRaw(bytes, [m.fd]);
    });
    expect(mappingsOf(m.name)).toBe(0);
    native.close(m.fd);
  });

  it('more fds with one message than any message carries (9): closed, all of them closed', async () => {
    await expectClosedByBackend((fe) => {
      const fds = Array.from({ length: 9 }, () => native.eventfd());
      const { bytes } = encodeRequest({ request: Request.GET_FEATURES }, false);
      fe.sendRaw(bytes, fds);
      for (const fd of fds) native.close(fd);
    });
  });

  it('with REPLY_ACK + NEED_REPLY a wrong fd count is nacked instead, and the stray fd closed', async () => {
    const peer = t.rawPeer();
    peer.send(encodeRequest({ request: Request.SET_PROTOCOL_FEATURES, value: ALL_PROTOCOL }, false).bytes);
    peer.send(encodeRequest({ request: Request.GET_FEATURES }, false).bytes);
    await peer.reply();
    const before = fdKinds();
    const efd = native.eventfd();
    peer.send(encodeRequest({ request: Request.SET_VRING_ENABLE, index: 0, num: 1 }, true).bytes, [efd]);
    native.close(efd);
    const nack = await peer.reply();
    expect(nack.header.request).toBe(Request.SET_VRING_ENABLE);
    expect(nack.payload.readBigUInt64LE(0)).not.toBe(0n);
    expect(fdKinds()).toEqual(before);
    peer.send(encodeRequest({ request: Request.GET_FEATURES }, false).bytes);
    expect((await peer.reply()).payload.readBigUInt64LE(0)).toBe(t.backend.device.features);
  });
});

describe('ring indices out of range', () => {
  it('are nacked (index 2 of a 1-pair device, 0x10000, 255) and nothing breaks', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const ack = { needReply: true };
    await expectNack(fe.request({ request: Request.SET_VRING_NUM, index: 2, num: 256 }, ack));
    await expectNack(fe.request({ request: Request.SET_VRING_NUM, index: 0x10000, num: 256 }, ack));
    await expectNack(fe.request({ request: Request.SET_VRING_NUM, index: 0xffffffff, num: 256 }, ack));
    await expectNack(fe.request({ request: Request.SET_VRING_BASE, index: 2, num: 0 }, ack));
    await expectNack(fe.request({ request: Request.SET_VRING_ENABLE, index: 2, num: 1 }, ack));
    await expectNack(
      fe.request(
        {
          request: Request.SET_VRING_ADDR,
          index: 2,
          flags: 0,
          descUserAddr: 0x1000n,
          usedUserAddr: 0x3000n,
          availUserAddr: 0x2000n,
          logGuestAddr: 0n,
        },
        ack,
      ),
    );
    for (const [request, index] of [
      [Request.SET_VRING_KICK, 2],
      [Request.SET_VRING_CALL, 255],
      [Request.SET_VRING_ERR, 3],
    ] as const) {
      const efd = native.eventfd();
      const p = fe.request({ request, index, fd: efd }, ack);
      native.close(efd);
      await expectNack(p);
    }
    expect(fdKinds()).toEqual(before);
    expect(warnings().filter((w) => /ring index \d+ out of range/.test(w)).length).toBe(9);
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(t.backend.device.features);
    // The valid indices still work.
    await fe.request({ request: Request.SET_VRING_NUM, index: 1, num: 256 }, ack);
  });

  it('GET_VRING_BASE of ring 2 (it has a reply) closes the connection; the back-end serves the next one', async () => {
    const reason = await expectClosedByBackend(
      async (fe) => {
        const p = fe.request({ request: Request.GET_VRING_BASE, index: 2, num: 0 });
        await expect(within(p, 2000, 'close')).rejects.toThrow();
      },
      { protocol: ALL_PROTOCOL },
    );
    expect(reason?.message).toMatch(/GET_VRING_BASE.*out of range/);
    const fe = connect();
    expect(await fe.requestU64({ request: Request.GET_FEATURES })).toBe(t.backend.device.features);
  });
});

describe('features the device did not offer', () => {
  it('are nacked with REPLY_ACK (ACCESS_PLATFORM, BACKEND_REQ) and the previous negotiation stands', async () => {
    const fe = await negotiated();
    const offered = t.backend.device.features;
    await expectNack(
      fe.request({ request: Request.SET_FEATURES, value: offered | bit(VirtioFeature.ACCESS_PLATFORM) }, { needReply: true }),
    );
    await expectNack(
      fe.request({ request: Request.SET_PROTOCOL_FEATURES, value: ALL_PROTOCOL | bit(ProtocolFeature.BACKEND_REQ) }, { needReply: true }),
    );
    // Still negotiated: CONFIGURE_MEM_SLOTS and STATUS answer.
    expect(await fe.requestU64({ request: Request.GET_MAX_MEM_SLOTS })).toBe(509n);
    expect(await fe.requestU64({ request: Request.GET_STATUS })).toBe(0n);
    await fe.request({ request: Request.SET_FEATURES, value: offered }, { needReply: true });
    expect(warnings().some((w) => w.includes('SET_FEATURES') && w.includes('did not offer'))).toBe(true);
    expect(warnings().some((w) => w.includes('SET_PROTOCOL_FEATURES') && w.includes('did not offer'))).toBe(true);
  });

  it('close the connection without REPLY_ACK', async () => {
    const r1 = await expectClosedByBackend(
      (fe) => void fe.request({ request: Request.SET_FEATURES, value: bit(VirtioFeature.VERSION_1) | bit(VirtioFeature.ACCESS_PLATFORM) }),
    );
    expect(r1?.message).toMatch(/SET_FEATURES.*did not offer/);
    const r2 = await expectClosedByBackend(
      (fe) => void fe.request({ request: Request.SET_PROTOCOL_FEATURES, value: bit(ProtocolFeature.BACKEND_REQ) }),
    );
    expect(r2?.message).toMatch(/SET_PROTOCOL_FEATURES.*did not offer/);
  });
});

describe('ring set-up order and sizes', () => {
  it('nacks SET_VRING_ADDR before SET_MEM_TABLE, saying so', async () => {
    const fe = await negotiated();
    await fe.request({ request: Request.SET_VRING_NUM, index: 0, num: 256 }, { needReply: true });
    await expectNack(
      fe.request(
        {
          request: Request.SET_VRING_ADDR,
          index: 0,
          flags: 0,
          descUserAddr: 0x7f00_0000_0000n,
          usedUserAddr: 0x7f00_0000_2000n,
          availUserAddr: 0x7f00_0000_1000n,
          logGuestAddr: 0n,
        },
        { needReply: true },
      ),
    );
    expect(warnings().some((w) => w.includes('SET_VRING_ADDR') && w.includes('before SET_MEM_TABLE'))).toBe(true);
    expect(fe.isOpen).toBe(true);
  });

  it('nacks SET_VRING_NUM 0, 3, 65536 (and 0x10000 + 1) and accepts 1 and 32768', async () => {
    const fe = await negotiated();
    for (const num of [0, 3, 65536, 65537, 0xffffffff]) {
      await expectNack(fe.request({ request: Request.SET_VRING_NUM, index: 0, num }, { needReply: true }));
    }
    for (const num of [1, 32768, 256]) {
      await fe.request({ request: Request.SET_VRING_NUM, index: 0, num }, { needReply: true });
    }
    expect(fe.isOpen).toBe(true);
  });

  it('nacks SET_VRING_BASE above 16 bits and SET_VRING_ADDR with the log flag', async () => {
    const fe = await negotiated();
    await expectNack(fe.request({ request: Request.SET_VRING_BASE, index: 0, num: 0x10000 }, { needReply: true }));
    await expectNack(
      fe.request(
        {
          request: Request.SET_VRING_ADDR,
          index: 0,
          flags: 1,
          descUserAddr: 0n,
          usedUserAddr: 0n,
          availUserAddr: 0n,
          logGuestAddr: 0n,
        },
        { needReply: true },
      ),
    );
  });

  it('nacks SET_VRING_KICK with an fd that is not an eventfd, and closes it', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const m = memfd(4096);
    const p = fe.request({ request: Request.SET_VRING_KICK, index: 0, fd: m.fd }, { needReply: true });
    native.close(m.fd);
    await expectNack(p);
    expect(fdKinds()).toEqual(before);
    expect(warnings().some((w) => w.includes('not an eventfd'))).toBe(true);
  });
});

// The slot limit (509) and a full table carrying traffic: memory-slots.test.ts.
describe('memory slots (CONFIGURE_MEM_SLOTS)', () => {
  const region = (i: number, size = 1n << 20n): MemoryRegion => ({
    guestPhysAddr: 0x1_0000_0000n * BigInt(i + 1),
    size,
    userAddr: 0x7e00_0000_0000n + 0x1_0000_0000n * BigInt(i),
    mmapOffset: 0n,
  });

  it('ADD_MEM_REG maps a region, REM_MEM_REG unmaps it, an unknown region is nacked', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const m = memfd(1 << 20);
    expect(mappingsOf(m.name)).toBe(0);
    await fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    native.close(m.fd);
    expect(mappingsOf(m.name)).toBe(1);
    expect(fdKinds()).toEqual(before);

    await fe.request({ request: Request.REM_MEM_REG, region: region(0), fd: null }, { needReply: true });
    expect(mappingsOf(m.name)).toBe(0);
    await expectNack(fe.request({ request: Request.REM_MEM_REG, region: region(0), fd: null }, { needReply: true }));
    await expectNack(fe.request({ request: Request.REM_MEM_REG, region: region(5), fd: null }, { needReply: true }));
    expect(warnings().some((w) => w.includes('REM_MEM_REG'))).toBe(true);
    expect(fdKinds()).toEqual(before);
    expect(fe.isOpen).toBe(true);
  });

  it('closes the fd an older front-end sends with REM_MEM_REG, and an overlapping or oversized ADD_MEM_REG', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const m = memfd(1 << 20);
    await fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });

    // Same guest range again, from another front-end address: overlap.
    const p1 = fe.request(
      { request: Request.ADD_MEM_REG, region: { ...region(0), userAddr: region(5).userAddr }, fd: m.fd },
      { needReply: true },
    );
    await expectNack(p1);
    // Beyond the end of the file.
    const p2 = fe.request({ request: Request.ADD_MEM_REG, region: region(1, 2n << 20n), fd: m.fd }, { needReply: true });
    await expectNack(p2);
    expect(mappingsOf(m.name)).toBe(1);

    await fe.request({ request: Request.REM_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    native.close(m.fd);
    expect(mappingsOf(m.name)).toBe(0);
    expect(fdKinds()).toEqual(before);
  });

  it('counts an identical ADD_MEM_REG (QEMU before 8.0 sends one per queue pair): mapped once, gone with the last REM_MEM_REG', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const m = memfd(1 << 20);
    await fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    await fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    expect(mappingsOf(m.name)).toBe(1);
    await fe.request({ request: Request.REM_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    expect(mappingsOf(m.name)).toBe(1);
    await fe.request({ request: Request.REM_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    native.close(m.fd);
    expect(mappingsOf(m.name)).toBe(0);
    expect(fdKinds()).toEqual(before);
  });

  it('bounds that count: the 1025th identical ADD_MEM_REG is nacked, its fd closed, the region kept', async () => {
    const fe = await negotiated();
    const before = fdKinds();
    const m = memfd(1 << 20);
    for (let i = 0; i < 1024; i++) await fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    await expectNack(fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true }));
    expect(mappingsOf(m.name)).toBe(1);
    expect(warnings().some((w) => /added 1024 times already \(limit 1024\)/.test(w))).toBe(true);
    for (let i = 0; i < 1024; i++) await fe.request({ request: Request.REM_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    native.close(m.fd);
    expect(mappingsOf(m.name)).toBe(0);
    expect(fdKinds()).toEqual(before);
  });

  it('refuses ADD_MEM_REG when CONFIGURE_MEM_SLOTS was not negotiated, closing its fd', async () => {
    const fe = await negotiated(bit(ProtocolFeature.REPLY_ACK));
    const before = fdKinds();
    const m = memfd(1 << 20);
    const p = fe.request({ request: Request.ADD_MEM_REG, region: region(0), fd: m.fd }, { needReply: true });
    native.close(m.fd);
    await expectNack(p);
    expect(mappingsOf(m.name)).toBe(0);
    expect(fdKinds()).toEqual(before);
  });
});
