/**
 * `vhost-user bench --user-net` without booting anything: its options and their checks, what a round
 * runs and in which order, medians and the ours / other ratios, and the Markdown tables.
 */
import { describe, expect, it } from 'vitest';
import { userNetMarkdown, ratioTable, throughputTable } from '../lib/bench/usernet/markdown';
import { configsOf, parseUserNetOptions, roundOrder } from '../lib/bench/usernet/options';
import { aggregate, median, ratios } from '../lib/bench/usernet/summary';
import type { Transfer, UserNetConfig, UserNetReport, UserNetRun } from '../lib/bench/usernet/types';

const parse = (...argv: string[]) => parseUserNetOptions(['--user-net', ...argv]);

describe('bench --user-net options', () => {
  it('defaults: 50 MiB, 3 rounds, all three peers, MTUs 1500 and 65520, a 20 s quiet wait', () => {
    expect(parse()).toMatchObject({ mib: 50, rounds: 3, peers: ['ours', 'qemu', 'passt'], mtus: [1500, 65520], quietWait: 20 });
    expect(parse()?.outDir).toMatch(/vhost-user-bench\/user-net$/);
  });

  it('--quick is a smoke run; explicit values win over it', () => {
    expect(parse('--quick')).toMatchObject({ mib: 2, rounds: 1, quietWait: 0 });
    expect(parse('--quick', '--mib', '5', '--rounds', '2')).toMatchObject({ mib: 5, rounds: 2 });
    expect(parse('--peers', 'ours,passt', '--mtus', '9000', '--out', '/tmp/x')).toMatchObject({
      peers: ['ours', 'passt'],
      mtus: [9000],
      outDir: '/tmp/x',
    });
  });

  it('--help gives null (the caller prints the help)', () => {
    expect(parse('--help')).toBeNull();
  });

  it.each([
    [['--mib', '0'], /--mib must be an integer from 1 to 100/],
    [['--mib', '101'], /--mib/],
    [['--rounds', '1.5'], /--rounds/],
    [['--peers', 'ours,slirp4netns'], /unknown peer 'slirp4netns'/],
    [['--peers', 'qemu,passt'], /must include ours/],
    [['--peers', 'ours,ours'], /twice/],
    [['--mtus', '65521'], /--mtus must be an integer from 576 to 65520/],
    [['--mtus', '1500,1500'], /twice/],
    [['--quiet-wait', '-1'], /--quiet-wait/],
    [['--seconds', '3'], /Unknown option '--seconds'.*--user-net --help/],
  ])('%j is refused in one line', (argv, message) => {
    expect(() => parse(...argv)).toThrow(message);
  });
});

describe('bench --user-net rounds', () => {
  it('ours and passt at each MTU, QEMU once at 1500 (its only MTU)', () => {
    const label = (cs: UserNetConfig[]) => cs.map((c) => `${c.peer}@${c.mtu}`);
    expect(label(configsOf({ peers: ['ours', 'qemu', 'passt'], mtus: [1500, 65520] }))).toEqual([
      'ours@1500',
      'qemu@1500',
      'passt@1500',
      'ours@65520',
      'passt@65520',
    ]);
    // Without 1500 asked for, QEMU still runs (at 1500) with the first group.
    expect(label(configsOf({ peers: ['ours', 'qemu', 'passt'], mtus: [65520] }))).toEqual(['ours@65520', 'qemu@1500', 'passt@65520']);
    expect(label(configsOf({ peers: ['ours'], mtus: [1500, 9000] }))).toEqual(['ours@1500', 'ours@9000']);
  });

  it('alternates the order: A B C, C B A, A B C', () => {
    const cs = configsOf({ peers: ['ours', 'qemu', 'passt'], mtus: [1500] });
    expect([0, 1, 2].map((r) => roundOrder(cs, r).map((c) => c.peer))).toEqual([
      ['ours', 'qemu', 'passt'],
      ['passt', 'qemu', 'ours'],
      ['ours', 'qemu', 'passt'],
    ]);
  });
});

function xfer(mbps: number, verified = true): Transfer {
  return { bytes: 50 << 20, seconds: (50 << 20) / (mbps * 1e6), mbps, guestSeconds: null, verified };
}

function run(round: number, peer: UserNetConfig['peer'], mtu: number, h2g: number | null, g2h: number | null, verified = true): UserNetRun {
  return {
    round,
    config: { peer, mtu },
    guestMtu: mtu,
    lease: {},
    h2g: h2g === null ? null : xfer(h2g, verified),
    g2h: g2h === null ? null : xfer(g2h, verified),
    cpuSeconds: { qemu: null, backend: null },
    otherLoadBefore: 0,
    otherLoadDuring: 0,
    commands: [],
    error: h2g === null ? 'boom' : null,
  };
}

describe('bench --user-net figures', () => {
  const configs = configsOf({ peers: ['ours', 'qemu', 'passt'], mtus: [1500, 65520] });
  const runs = [
    ...[0, 1, 2].map((r) => run(r, 'ours', 1500, 10 + r, 8)),
    run(0, 'qemu', 1500, 5, 4),
    run(1, 'qemu', 1500, 6, 4),
    run(2, 'qemu', 1500, 100, 100, false), // did not verify: left out
    run(0, 'passt', 1500, 20, null),
    run(0, 'ours', 65520, 30, 16),
    run(0, 'passt', 65520, null, null), // failed
  ];
  const aggs = aggregate(configs, runs);

  it('median of the verified rounds, with their range and the guest MTUs seen', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(median([])).toBeNull();
    const ours = aggs.find((a) => a.config.peer === 'ours' && a.config.mtu === 1500 && a.direction === 'h2g');
    expect(ours).toMatchObject({ runs: 3, mbps: 11, min: 10, max: 12, guestMtus: [1500] });
    const qemu = aggs.find((a) => a.config.peer === 'qemu' && a.direction === 'h2g');
    expect(qemu).toMatchObject({ runs: 2, mbps: 5.5 });
    expect(aggs.find((a) => a.config.peer === 'passt' && a.config.mtu === 1500 && a.direction === 'g2h')).toMatchObject({
      runs: 0,
      mbps: null,
    });
  });

  it('ours / other at the same MTU, and ours at 65520 / QEMU at its 1500; null where a side failed', () => {
    const r = ratios(aggs).map((x) => [x.direction, `${x.ours.peer}@${x.ours.mtu}`, `${x.other.peer}@${x.other.mtu}`, x.ratio]);
    expect(r).toEqual([
      ['h2g', 'ours@1500', 'qemu@1500', 11 / 5.5],
      ['h2g', 'ours@1500', 'passt@1500', 11 / 20],
      ['h2g', 'ours@65520', 'qemu@1500', 30 / 5.5],
      ['h2g', 'ours@65520', 'passt@65520', null],
      ['g2h', 'ours@1500', 'qemu@1500', 2],
      ['g2h', 'ours@1500', 'passt@1500', null],
      ['g2h', 'ours@65520', 'qemu@1500', 4],
      ['g2h', 'ours@65520', 'passt@65520', null],
    ]);
  });

  it('Markdown: a row per back-end and MTU, a row per ratio, errors listed', () => {
    const report = { aggregates: aggs, ratios: ratios(aggs) };
    const t = throughputTable(report);
    expect(t[0]).toMatch(/^\| back-end @ MTU \| host -> guest MB\/s \| guest -> host MB\/s \| guest MTU \| rounds \|$/);
    expect(t).toContain('| ours @ 1500 | 11.0 (10.0–12.0) | 8.0 (8.0–8.0) | 1500 | 3 |');
    expect(t).toContain('| passt @ 65520 | failed | failed | — | 0 |');
    expect(t).toHaveLength(2 + configs.length);
    const q = ratioTable(report);
    expect(q).toContain('| ours @ 65520 / qemu @ 1500 | 5.45 | 4.00 |');
    expect(q).toContain('| ours @ 1500 / passt @ 1500 | 0.55 | — |');
    const full = userNetMarkdown({
      ...report,
      setup: { mib: 50, rounds: 3, peers: ['ours', 'qemu', 'passt'], mtus: [1500, 65520], guest: '', pinning: '' },
      host: { nproc: 2, cpuModel: 'cpu', kernel: 'Linux', node: 'v20', qemu: '7.2', passt: 'p', commit: 'abc' },
      startedAt: '2026-11-30T06:00:00.000Z',
      errors: ['round 1 passt @ 65520: boom'],
    } as UserNetReport);
    expect(full).toMatch(/^50 MiB per transfer, 3 round\(s\), 2 × cpu/);
    expect(full).toMatch(/- error: round 1 passt @ 65520: boom/);
  });
});
