/**
 * `vhost-user bench --switch` without running it: its options and their checks, the A B / B A order,
 * medians and the switch / testpmd ratios, the fairness cells and the Markdown tables.
 */
import { describe, expect, it } from 'vitest';
import { backendOrder, parseSwitchOptions } from '../lib/bench/switch/options';
import { fairCells, pairCells, switchMarkdown } from '../lib/bench/switch/summary';
import type { FairRun, PairRun, SwitchReport } from '../lib/bench/switch/types';

const parse = (...argv: string[]) => parseSwitchOptions(['--switch', ...argv]);

describe('bench --switch options', () => {
  it('defaults: 64 and 1518 B, 5 s, 3 rounds, queue 256 split, fairness, 2 retries; --quick is a smoke run', () => {
    expect(parse()).toMatchObject({ sizes: [64, 1518], seconds: 5, warmup: 1, rounds: 3, queueSize: 256, packed: false, fairness: true });
    expect(parse()).toMatchObject({ quietWait: 20, retries: 2 });
    expect(parse('--quick')).toMatchObject({ sizes: [64], seconds: 1, warmup: 0.5, rounds: 1, quietWait: 0, retries: 0 });
    expect(parse('--quick', '--sizes', '1518', '--no-fairness', '--packed')).toMatchObject({
      sizes: [1518],
      fairness: false,
      packed: true,
    });
    expect(parse('--help')).toBeNull();
  });

  it.each([
    [['--sizes', '64,10000'], /--sizes must be an integer from 60 to 9000/],
    [['--queue-size', '300'], /power of two/],
    [['--rounds', '0'], /--rounds/],
    [['--cpu-backend', '0', '--cpu-frontend', '0'], /must differ/],
    [['--mib', '3'], /Unknown option '--mib'.*--switch --help/],
  ])('%j is refused in one line', (argv, message) => {
    expect(() => parse(...argv)).toThrow(message);
  });

  it('alternates the order by round: A B, B A, A B', () => {
    expect([0, 1, 2].map((r) => backendOrder(['switch', 'testpmd'], r).join(' '))).toEqual([
      'switch testpmd',
      'testpmd switch',
      'switch testpmd',
    ]);
  });
});

const flow = (mpps: number) => ({ packets: mpps * 1e6, bytes: mpps * 64e6, mpps, gbps: (mpps * 64 * 8) / 1e3 });

function pair(backend: PairRun['backend'], round: number, mpps: number, error?: string): PairRun {
  return {
    kind: 'pair',
    backend,
    size: 64,
    round,
    seconds: 1,
    forward: flow(mpps / 2),
    reverse: flow(mpps / 2),
    mpps,
    gbps: (mpps * 64 * 8) / 1e3,
    backendCpu: 1,
    otherLoadBefore: 0,
    otherLoadDuring: 0,
    timeline: [],
    command: '',
    frontend: '',
    ...(error ? { error } : {}),
  };
}

function fair(backend: FairRun['backend'], flooder: FairRun['flooder'], pairMpps: number): FairRun {
  const flooderTxMpps = flooder === 'flooding' ? 4 : 0;
  return {
    kind: 'fair',
    backend,
    size: 64,
    round: 0,
    flooder,
    seconds: 1,
    pairMpps,
    flooderTxMpps,
    flooderRxMpps: 0,
    otherLoadBefore: 0,
    otherLoadDuring: 0,
    command: '',
  };
}

describe('bench --switch summary', () => {
  it('medians per back-end, the ratio of the medians, of the best rounds and per round; failed runs left out', () => {
    const runs = [
      pair('switch', 0, 8),
      pair('testpmd', 0, 10),
      pair('testpmd', 1, 8),
      pair('switch', 1, 10),
      pair('switch', 2, 1, 'stalled'),
      pair('testpmd', 2, 9),
    ];
    const [c] = pairCells(runs, [64]);
    expect(c).toMatchObject({ size: 64, switchMpps: 9, testpmdMpps: 9, switchForward: 4.5, testpmdReverse: 4.5 });
    expect(c.ratio).toBeCloseTo(1, 9);
    expect(c.bestRatio).toBeCloseTo(1, 9);
    expect(c.roundRatios.map((x) => (x === null ? null : Number(x.toFixed(3))))).toEqual([0.8, 1.25, null]);
  });

  it('fairness: what the pair keeps under the flood, per back-end', () => {
    const cells = fairCells(
      [fair('switch', 'idle', 4), fair('switch', 'flooding', 3), fair('testpmd', 'idle', 5), fair('testpmd', 'flooding', 5)],
      [64],
    );
    expect(cells.map((c) => [c.backend, c.idleMpps, c.floodingMpps, c.kept, c.flooderTxMpps])).toEqual([
      ['switch', 4, 3, 0.75, 4],
      ['testpmd', 5, 5, 1, 4],
    ]);
  });

  it('the Markdown tables', () => {
    const pairRuns = [pair('switch', 0, 8), pair('testpmd', 0, 10)];
    const fairRuns = [fair('switch', 'idle', 4), fair('switch', 'flooding', 3)];
    const report = { pairRuns, fairRuns, pairCells: pairCells(pairRuns, [64]), fairCells: fairCells(fairRuns, [64]) } as SwitchReport;
    const md = switchMarkdown(report);
    expect(md).toContain('| 64 | 8.00 (8.00) | 10.00 (10.00) | **0.80** | 0.80 | 0.80 |');
    expect(md).toContain('| switch | 64 | 4.00 | 3.00 | 0.75 | 4.00 |');
  });
});
