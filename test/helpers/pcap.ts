/** A small pcap reader for the capture tests: the global header and every record, checked as it goes. */
import * as fs from 'node:fs';

export interface PcapFile {
  /** Timestamps in nanoseconds (magic 0xa1b23c4d) rather than microseconds (0xa1b2c3d4). */
  nanoseconds: boolean;
  littleEndian: boolean;
  version: [number, number];
  snaplen: number;
  linktype: number;
  records: PcapRecord[];
}

export interface PcapRecord {
  seconds: number;
  /** Nanoseconds or microseconds, as the magic says. */
  fraction: number;
  /** The frame's length on the wire; data may be shorter (snaplen). */
  length: number;
  data: Buffer;
}

export function readPcap(path: string): PcapFile {
  const b = fs.readFileSync(path);
  if (b.length < 24) throw new Error(`${path}: ${b.length} bytes, shorter than a pcap header`);
  const magics: Record<number, [boolean, boolean]> = { 0xa1b23c4d: [true, true], 0xa1b2c3d4: [false, true] };
  let littleEndian = true;
  let kind = magics[b.readUInt32LE(0)];
  if (!kind) {
    littleEndian = false;
    kind = magics[b.readUInt32BE(0)];
  }
  if (!kind) throw new Error(`${path}: not a pcap file (magic ${b.readUInt32LE(0).toString(16)})`);
  const u32 = (at: number) => (littleEndian ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const u16 = (at: number) => (littleEndian ? b.readUInt16LE(at) : b.readUInt16BE(at));
  const file: PcapFile = {
    nanoseconds: kind[0],
    littleEndian,
    version: [u16(4), u16(6)],
    snaplen: u32(16),
    linktype: u32(20),
    records: [],
  };
  let at = 24;
  while (at < b.length) {
    if (at + 16 > b.length) throw new Error(`${path}: truncated record header at ${at}`);
    const caplen = u32(at + 8);
    const length = u32(at + 12);
    if (caplen > file.snaplen || caplen > length)
      throw new Error(`${path}: record at ${at} keeps ${caplen} of ${length} bytes (snaplen ${file.snaplen})`);
    if (at + 16 + caplen > b.length) throw new Error(`${path}: truncated record at ${at}`);
    const fraction = u32(at + 4);
    if (fraction >= (file.nanoseconds ? 1e9 : 1e6)) throw new Error(`${path}: record at ${at} has fraction ${fraction}`);
    file.records.push({ seconds: u32(at), fraction, length, data: b.subarray(at + 16, at + 16 + caplen) });
    at += 16 + caplen;
  }
  return file;
}
