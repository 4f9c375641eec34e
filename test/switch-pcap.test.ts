/**
 * The pcap of a switch as a whole (Switch.capture, `vhost-user switch --pcap`): every frame that
 * enters the switch recorded once, as it leaves its source port, however many ports it then reaches
 * (flooded, unicast, or to nobody); bytes whole; a second capture refused; close() ends a running one.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readPcap } from './helpers/pcap';
import { BROADCAST, startSwitchRig, tagged, type SwitchRig } from './helpers/switch_rig';

let rig: SwitchRig | undefined;
const files: string[] = [];
afterEach(() => {
  rig?.close();
  rig = undefined;
  for (const f of files.splice(0)) fs.rmSync(f, { force: true });
});

function pcapFile(): string {
  const f = path.join(os.tmpdir(), `vhost-user-switch-all-${process.pid}-${files.length}.pcap`);
  files.push(f);
  return f;
}

/** Frames from guest g's TX (markers included): the device's own count. */
const txPackets = (r: SwitchRig) => r.guests.reduce((n, g) => n + g.backend.device.stats()[1].packets, 0n);

describe('switch pcap', () => {
  it('records every frame entering the switch once, whatever it is forwarded to', async () => {
    const r = (rig = await startSwitchRig({ vlans: [1, 1, 1, 2] }));
    const [g1, g2, g3, g4] = r.guests;
    const file = pcapFile();
    const capture = r.sw.capture(file);
    const unknown = Buffer.from('02ffffffff01', 'hex');
    const sent: Buffer[][] = [[], [], [], []];
    const send = async (i: number, frames: Buffer[]) => {
      sent[i].push(...frames);
      await r.send(i, frames);
    };
    // Flooded (unknown unicast, broadcast), learned unicast, alone in its VLAN: each recorded once.
    await send(
      0,
      Array.from({ length: 100 }, (_, k) => tagged(unknown, g1.mac, 1, k, 60 + k * 7)),
    );
    await send(1, [tagged(g1.mac, g2.mac, 2, 1, 1514), tagged(BROADCAST, g2.mac, 2, 2)]);
    await send(2, [tagged(g2.mac, g3.mac, 3, 1, 300)]);
    await send(3, [tagged(BROADCAST, g4.mac, 4, 1, 90)]);
    for (const [i, others] of [
      [0, [1, 2]],
      [1, [0, 2]],
      [2, [0, 1]],
    ] as const)
      await r.settle(i, [...others]);
    const counts = await capture.stop();
    const records = readPcap(file).records;
    // The markers settle() sent are frames into the switch too.
    expect(BigInt(records.length)).toBe(txPackets(r));
    expect(counts).toEqual({ frames: records.length, dropped: 0 });
    for (const rec of records) expect(rec.data.length).toBe(rec.length);
    const hex = (f: Buffer) => f.toString('hex');
    const recorded = records.map((x) => hex(x.data));
    // Each sender's frames, in its order, each exactly once.
    for (const [i, g] of r.guests.entries()) {
      const fromG = recorded.filter((h) => h.slice(12, 24) === hex(g.mac) && h.slice(24, 28) === '88b5');
      const markers = fromG.filter((h) => parseInt(h.slice(32, 40), 16) >= 1_000_000);
      expect(
        fromG.filter((h) => !markers.includes(h)),
        `g${i + 1}`,
      ).toEqual(sent[i].map(hex));
    }
    expect(new Set(recorded).size).toBe(recorded.length);
    expect(r.warnings).toEqual([]);
  });

  it('refuses a second capture; close() ends a running one and its file is whole', async () => {
    const r = (rig = await startSwitchRig({ vlans: [1, 1] }));
    const file = pcapFile();
    const capture = r.sw.capture(file);
    expect(() => r.sw.capture(pcapFile())).toThrow(`a capture to ${file} is running on this switch: stop it first`);
    await r.send(0, [tagged(BROADCAST, r.guests[0].mac, 1, 1)]);
    await r.settle(0, [1]);
    r.sw.close();
    const counts = await capture.stop();
    expect(counts).toEqual({ frames: 2, dropped: 0 });
    expect(readPcap(file).records.map((x) => x.length)).toEqual([60, 60]);
  });
});
