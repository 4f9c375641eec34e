#!/usr/bin/env python3
"""Writes seed inputs for ring_fuzzer: well-formed rings (layout of ring_fuzzer.cc) that the fuzzer mutates."""
import struct, sys, os

def seed(features, tx_frames, rx_bufs, rx_len, indirect=False, port=0):
    mem = bytearray(0x2000)
    def desc(table, i, addr, length, flags, nxt):
        struct.pack_into('<QIHH', mem, table + 16 * i, addr, length, flags, nxt)
    # tx avail at 0x000, rx avail at 0x040, tx desc 0x080, rx desc 0x180
    buf = 0x400
    for i in range(tx_frames):
        if indirect and i == 0:
            table = 0x1800
            desc(table, 0, buf, 12, 1, 1)
            desc(table, 1, buf + 12, 60, 0, 0)
            desc(0x080, i, table, 32, 4, 0)
        else:
            desc(0x080, i, buf, 12 + 60, 0, 0)
        mem[buf + 12:buf + 24] = bytes(range(1, 13))
        struct.pack_into('<H', mem, 0x000 + 4 + 2 * i, i)
        buf += 128
    struct.pack_into('<H', mem, 0x002, tx_frames)
    for i in range(rx_bufs):
        desc(0x180, i, buf, rx_len, 2, 0)
        struct.pack_into('<H', mem, 0x040 + 4 + 2 * i, i)
        buf += 256
    struct.pack_into('<H', mem, 0x042, rx_bufs)
    return bytes([3, 3, features, port]) + bytes(mem)

def packed_seed(features, tx_frames, rx_bufs, rx_len, indirect=False, port=0):
    """Packed rings (features bit 4): descriptors made available in the first lap (AVAIL set, USED clear)."""
    mem = bytearray(0x2000)
    avail = 1 << 7
    def desc(ring, i, addr, length, buf_id, flags):
        struct.pack_into('<QIHH', mem, ring + 16 * i, addr, length, buf_id, flags)
    buf = 0x400
    for i in range(tx_frames):
        if indirect and i == 0:
            table = 0x1800
            desc(table, 0, buf, 12, 0, 0)
            desc(table, 1, buf + 12, 60, 0, 0)
            desc(0x080, i, table, 32, i, avail | 4)
        else:
            desc(0x080, i, buf, 12 + 60, i, avail)
        mem[buf + 12:buf + 24] = bytes(range(1, 13))
        buf += 128
    for i in range(rx_bufs):
        desc(0x180, i, buf, rx_len, i, avail | 2)
        buf += 256
    return bytes([3, 3, 16 | features, port]) + bytes(mem)

def js_program(ring_seed, frames):
    """The js port (port 3, consumer flag 4): ring_seed's rings and buffers, and at 0x1c00 what the
    program wrote: the head of its ring (frames), the tail toward JS (0) and descriptors of 60-byte frames
    in its own slots (1 pair of 64 slots of 2048 bytes: the slots start at 8192, its own after the 64 toward JS)."""
    data = bytearray(ring_seed)
    program = struct.pack('<II', frames, 0)
    for i in range(frames):
        program += struct.pack('<II', 8192 + (64 + i) * 2048, 60)
    data[4 + 0x1c00:4 + 0x1c00 + len(program)] = program
    return bytes(data)

def tso(ring_seed, v6):
    """A TSO frame for the software offloads (FuzzOffloads): at 0x400 a virtio-net header (NEEDS_CSUM,
    TCPv4 or TCPv6, hdr_len = the frame's length, gso_size 100) and an Ethernet/IP/TCP frame of 300 payload bytes."""
    data = bytearray(ring_seed)
    ip = (struct.pack('>BBHHHBBH4s4s', 0x45, 0, 340, 1, 0x4000, 64, 6, 0, bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2]))
          if not v6 else struct.pack('>IHBB16s16s', 0x60000000, 320, 6, 64, bytes(16), bytes(15) + b'\x01'))
    tcp = struct.pack('>HHIIBBHHH', 40000, 80, 1, 0, 5 << 4, 0x18, 65535, 0, 0)
    frame = bytes(6) + bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56]) + (b'\x86\xdd' if v6 else b'\x08\x00') + ip + tcp + bytes(range(256)) + bytes(44)
    header = struct.pack('<BBHHHH', 1, 4 if v6 else 1, len(frame), 100, len(frame) - len(tcp) - 300, 16)
    data[4 + 0x400:4 + 0x400 + 10 + len(frame)] = header + frame
    return bytes(data)

def vxlan(ring_seed, vni=42):
    """A VXLAN datagram for the uplink's parser (FuzzVxlan) at 0x1e10: its length, the frame limit byte
    (14 + 4 * 100), then the header (I flag, the VNI) and a 60-byte broadcast frame."""
    data = bytearray(ring_seed)
    frame = bytes([0xff] * 6) + bytes([2, 0, 0, 0, 0, 9]) + b'\x88\xb5' + bytes(range(46))
    datagram = bytes([8, 0, 0, 0, vni >> 16, (vni >> 8) & 0xff, vni & 0xff, 0]) + frame
    blob = struct.pack('<HB', len(datagram), 100) + datagram
    data[4 + 0x1e10:4 + 0x1e10 + len(blob)] = blob
    return bytes(data)

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
for name, data in {
    'plain': seed(8, 4, 4, 200),
    'mrg-small': seed(8 | 1, 4, 8, 40),
    'indirect': seed(8 | 2, 2, 4, 200, indirect=True),
    'event-idx-legacy': seed(4, 3, 3, 100),
    'sink': seed(8, 4, 0, 200, port=1),
    'source-mrg': seed(8 | 1, 0, 8, 40, port=2 | (4 << 2)),
    'packed-plain': packed_seed(8, 4, 4, 200),
    'packed-mrg-small': packed_seed(8 | 1, 4, 8, 40),
    'packed-indirect-in-order': packed_seed(8 | 2 | 32, 2, 4, 200, indirect=True),
    'packed-event-idx': packed_seed(8 | 4, 3, 3, 100),
    'packed-source-mrg': packed_seed(8 | 1, 0, 8, 40, port=2 | (4 << 2)),
    'js': js_program(seed(8 | 1, 4, 8, 200, port=3 | 4), 3),
    'packed-js': js_program(packed_seed(8, 4, 4, 200, port=3 | 4), 3),
    'switch-flood': seed(8 | 128, 4, 8, 200),
    'packed-switch-mrg': packed_seed(8 | 1 | 128, 4, 8, 40, port=4),
    'switch-vxlan': vxlan(seed(8 | 128, 2, 8, 200)),
    'tso-v4': tso(seed(8, 1, 1, 200, port=1), False),
    'tso-v6': tso(seed(8, 1, 1, 200, port=1), True),
}.items():
    with open(os.path.join(out, 'seed-' + name), 'wb') as f:
        f.write(data)
