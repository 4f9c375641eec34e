/**
 * The switch (lib/net/switch.ts, native/net/switch/) with three and four of our own front-ends:
 * flooding of unknown unicast, broadcast and multicast; learned unicast to one port only; VLANs kept
 * apart; a MAC that moves relearnt; a detached or disconnected port forgotten at once; bytes and
 * counters exact; ageing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BROADCAST, MULTICAST, startSwitchRig, tagged, tagsOf, type SwitchRig } from './helpers/switch_rig';

let rig: SwitchRig | undefined;
afterEach(() => {
  rig?.close();
  rig = undefined;
});

/** g1..g3 on one VLAN. */
async function three(): Promise<SwitchRig> {
  rig = await startSwitchRig({ vlans: [1, 1, 1] });
  return rig;
}

describe('switch of three front-ends', () => {
  it('floods unknown unicast to both others, then sends learned unicast to its port only', async () => {
    const r = await three();
    const [g1, g2, g3] = r.guests;
    // g2's MAC is unknown yet: g1's frame to it floods to g2 and g3.
    await r.send(0, [tagged(g2.mac, g1.mac, 1, 1)]);
    expect(await r.waitFor(1, '1:1')).toBe(true);
    expect(await r.waitFor(2, '1:1')).toBe(true);
    // g2 answers: g1 is known (it sent), so only g1 gets it; and now g2 is known too.
    await r.send(1, [tagged(g1.mac, g2.mac, 2, 1)]);
    await r.settle(1, [0, 2]);
    await r.send(0, [tagged(g2.mac, g1.mac, 1, 2)]);
    await r.settle(0, [1, 2]);
    expect(tagsOf(g1)).toEqual(['2:1']);
    expect(tagsOf(g2)).toEqual(['1:1', '1:2']);
    expect(tagsOf(g3)).toEqual(['1:1']);
    expect(
      r.sw
        .macTable()
        .map((e) => `${e.mac} ${e.vlan} ${e.port}`)
        .sort(),
    ).toEqual(['02:00:00:00:00:01 1 g1', '02:00:00:00:00:02 1 g2']);
    expect(r.sw.counters()).toMatchObject({ macs: 2, refused: 0n, moves: 0n });
    expect(r.warnings).toEqual([]);
  });

  it('sends broadcast and multicast to every other port, never back to the sender', async () => {
    const r = await three();
    const [g1, g2, g3] = r.guests;
    await r.send(0, [tagged(BROADCAST, g1.mac, 1, 1), tagged(MULTICAST, g1.mac, 1, 2)]);
    await r.send(2, [tagged(BROADCAST, g3.mac, 3, 1)]);
    await r.settle(0, [1, 2]);
    await r.settle(2, [0, 1]);
    expect(tagsOf(g1)).toEqual(['3:1']);
    expect(tagsOf(g2)).toEqual(['1:1', '1:2', '3:1']);
    expect(tagsOf(g3)).toEqual(['1:1', '1:2']);
    const rx2 = g2.backend.device.stats()[0];
    expect(rx2.broadcast).toBe(2n + 2n); // and the two markers
    expect(rx2.multicast).toBe(1n);
  });
});
