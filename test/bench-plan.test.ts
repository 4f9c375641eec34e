/**
 * The benchmark's dimensions without running anything: the plan over ring layouts and queue pairs,
 * the check of the layout a back-end negotiated, per-pair figures and fairness, the faster-layout
 * ratio of the report, and the js back-end (the JS echo on the js port) in the plan and the report.
 */
import { describe, expect, it } from 'vitest';
import { parseOurStatsBlocks } from '../lib/bench/backends';
import type { Options } from '../lib/bench/cli';
import { STAT_NAMES, formatStats, type QueueStats } from '../lib/net/stats';
import { checkLayout, layoutOf, negotiatedFeatures, parseLayouts } from '../lib/bench/layout';
import { fairness, pairFigures, parsePairs, parseStreamStats } from '../lib/bench/pairs';
import { buildPlan } from '../lib/bench/plan';
import { formatJsTable, jsMarkdown } from '../lib/bench/report/js_table';
import { layoutRatios } from '../lib/bench/report/layouts';
import { summarise } from '../lib/bench/report/summary';
import type { RunResult } from '../lib/bench/types';

function options(over: Partial<Options> = {}): Options {
  return {
    quick: false,
    seconds: 1,
    warmup: 0,
    sizes: [64],
    queueSizes: [256],
    modes: ['io'],
    layouts: ['split', 'packed'],
    pairs: [1],
    rounds: 1,
    frontend: 'dpdk',
    backends: ['ours', 'dpdk'],
    memory: 'no-huge',
    mrgRxbuf: true,
    inOrder: true,
    latency: false,
    latencyCount: 10,
    idle: false,
    cpuBackend: 0,
    cpuFrontend: 1,
    quietWait: 0,
    outDir: '/nonexistent',
    oursArgs: [],
    jsArgs: [],
    retries: 0,
    maxOtherLoad: 0.3,
    ...over,
  };
}

describe('benchmark plan over layouts and pairs', () => {
  it('expands every (size, mode) over pairs and layouts, each cell A B per round, the layouts of a pair count adjacent', () => {
    const plan = buildPlan(options({ sizes: [64, 1518], modes: ['io', 'txonly'], pairs: [1, 2], rounds: 2 }));
    expect(plan.throughput).toHaveLength(2 * 2 * 2 * 2 * 2 * 2);
    const cells = [...new Set(plan.throughput.map((r) => r.cell))];
    expect(cells.slice(0, 4)).toEqual(['q256-64B-io-split-1p', 'q256-64B-io-packed-1p', 'q256-64B-io-split-2p', 'q256-64B-io-packed-2p']);
    expect(cells).toHaveLength(16);
    const first = plan.throughput.filter((r) => r.cell === 'q256-64B-io-packed-2p');
    expect(first.map((r) => `${r.backend}${r.round}`)).toEqual(['ours1', 'dpdk1', 'ours2', 'dpdk2']);
    expect(first.every((r) => r.layout === 'packed' && r.pairs === 2 && !r.skipped)).toBe(true);
  });

  it('skips what our own front-end cannot drive (packed rings, more than one pair), saying why', () => {
    const plan = buildPlan(options({ frontend: 'ours', pairs: [1, 2] }));
    const byCell = (cell: string) => plan.throughput.filter((r) => r.cell === cell);
    expect(byCell('q256-64B-io-split-1p').every((r) => !r.skipped)).toBe(true);
    expect(byCell('q256-64B-io-packed-1p')[0].skipped).toMatch(/split rings only/);
    expect(byCell('q256-64B-io-split-2p')[0].skipped).toMatch(/one queue pair/);
  });

  it('refuses unknown layouts and pair counts with one line', () => {
    expect(parseLayouts('split,packed')).toEqual(['split', 'packed']);
    expect(parseLayouts('packed')).toEqual(['packed']);
    expect(parseLayouts('foo')).toBe("unknown ring layout 'foo' (available: split, packed)");
    expect(parseLayouts('split,split')).toMatch(/twice/);
    expect(parsePairs('1,2')).toEqual([1, 2]);
    for (const bad of ['0', 'x', '1.5', '9', '']) expect(parsePairs(bad)).toMatch(/^--pairs takes queue pair counts 1\.\.8, got/);
  });
});

describe('the negotiated ring layout', () => {
  const PACKED = 1n << 34n;
  const SPLIT_FEATURES = 0x950008000n;

  it('reads the last features line of each back-end', () => {
    const ours = `vhost-user: serving\n2026 [s] features acked: 0x1\n2026 [s] features acked: 0x${(SPLIT_FEATURES | PACKED).toString(16)} (VERSION_1 ...)\n`;
    expect(negotiatedFeatures('ours', ours)).toBe(SPLIT_FEATURES | PACKED);
    expect(negotiatedFeatures('dpdk', 'VHOST_CONFIG: (/s) negotiated Virtio features: 0xd50448000\n')).toBe(0xd50448000n);
    expect(negotiatedFeatures('ours', 'vhost-user: serving\n')).toBeNull();
    expect(layoutOf(0xd50448000n)).toBe('packed');
    expect(layoutOf(SPLIT_FEATURES)).toBe('split');
  });

  it('accepts the asked layout and refuses another, or an unknown one for ours', () => {
    expect(checkLayout('ours', 'packed', SPLIT_FEATURES | PACKED)).toEqual({ negotiated: 'packed', features: '0xd50008000' });
    expect(checkLayout('ours', 'split', SPLIT_FEATURES)).toEqual({ negotiated: 'split', features: '0x950008000' });
    const split = checkLayout('ours', 'packed', SPLIT_FEATURES);
    expect(split.negotiated).toBe('split');
    expect(split.invalid).toBe(
      'asked for packed rings but our back-end negotiated split (VIRTIO_F_RING_PACKED not offered); features 0x950008000',
    );
    expect(checkLayout('dpdk', 'packed', SPLIT_FEATURES).invalid).toMatch(/DPDK's vhost PMD negotiated split/);
    expect(checkLayout('ours', 'packed', null).invalid).toMatch(/^ring layout unknown/);
    expect(checkLayout('dpdk', 'packed', null)).toEqual({ negotiated: null });
  });
});

describe('queue pairs', () => {
  const STOP_OUTPUT = `
  ------- Forward Stats for RX Port= 0/Queue= 0 -> TX Port= 0/Queue= 0 -------
  RX-packets: 3000           TX-packets: 2990           TX-dropped: 10

  ------- Forward Stats for RX Port= 0/Queue= 1 -> TX Port= 0/Queue= 1 -------
  RX-packets: 1000           TX-packets: 1000           TX-dropped: 0

  ---------------------- Forward statistics for port 0  ----------------------
  RX-packets: 4000           RX-dropped: 0             RX-total: 4000
`;

  it('reads per-stream counters and turns them into per-pair rates', () => {
    const streams = parseStreamStats(STOP_OUTPUT);
    expect(streams).toEqual([
      { rxQueue: 0, txQueue: 0, rxPackets: 3000, txPackets: 2990, txDropped: 10 },
      { rxQueue: 1, txQueue: 1, rxPackets: 1000, txPackets: 1000, txDropped: 0 },
    ]);
    expect(pairFigures('rx', 3, streams, 0.001)).toEqual([
      { pair: 0, packets: 3000, mpps: 3 },
      { pair: 1, packets: 1000, mpps: 1 },
      { pair: 2, packets: 0, mpps: 0 },
    ]);
    expect(pairFigures('tx', 2, streams, 0.001).map((p) => p.packets)).toEqual([2990, 1000]);
  });

  it("gives Jain's index and slowest / fastest", () => {
    expect(fairness([2, 2])).toEqual({ jain: 1, minMax: 1 });
    expect(fairness([3, 1])).toEqual({ jain: 0.8, minMax: 1 / 3 });
    expect(fairness([1, 0])).toEqual({ jain: 0.5, minMax: 0 });
    expect(fairness([1])).toBeNull();
    expect(fairness([0, 0])).toBeNull();
  });
});

describe("ours / DPDK's faster layout", () => {
  const run = (backend: 'ours' | 'dpdk', layout: 'split' | 'packed', mpps: number | null, pairs = 1): RunResult => ({
    cell: `q256-64B-io-${layout}-${pairs}p`,
    mode: 'io',
    size: 64,
    queueSize: 256,
    layout,
    pairs,
    backend,
    round: 1,
    ...(mpps === null ? { error: 'asked for packed rings but our back-end negotiated split' } : { mpps, gbps: mpps }),
  });

  it('compares each back-end at its own faster layout', () => {
    const cells = summarise(
      [run('ours', 'split', 10), run('dpdk', 'split', 8), run('ours', 'packed', 12), run('dpdk', 'packed', 9)],
      ['ours', 'dpdk'],
    );
    const [r] = layoutRatios(cells);
    expect(r).toMatchObject({ mode: 'io', size: 64, pairs: 1, ours: { layout: 'packed', mpps: 12 }, dpdk: { layout: 'packed', mpps: 9 } });
    expect(r.ratio).toBeCloseTo(12 / 9);
    expect(r.unmeasured).toEqual([]);

    const mixed = layoutRatios(
      summarise([run('ours', 'split', 10), run('dpdk', 'split', 6), run('ours', 'packed', 9), run('dpdk', 'packed', 8)], ['ours', 'dpdk']),
    );
    expect(mixed[0]).toMatchObject({ ours: { layout: 'split', mpps: 10 }, dpdk: { layout: 'packed', mpps: 8 }, ratio: 10 / 8 });
  });

  it('never counts a layout that failed, and says which are missing; one entry per pair count', () => {
    const runs = [run('ours', 'split', 10), run('dpdk', 'split', 8), run('ours', 'packed', null), run('dpdk', 'packed', 20)];
    runs.push(run('ours', 'split', 4, 2), run('dpdk', 'split', 2, 2));
    const ratios = layoutRatios(summarise(runs, ['ours', 'dpdk']));
    expect(ratios).toHaveLength(2);
    expect(ratios[0]).toMatchObject({ pairs: 1, ours: { layout: 'split', mpps: 10 }, dpdk: { layout: 'packed', mpps: 20 }, ratio: 0.5 });
    expect(ratios[0].unmeasured).toEqual(['ours packed']);
    expect(ratios[1]).toMatchObject({ pairs: 2, ratio: 2, unmeasured: [] });
  });
});

describe('the js back-end (a MAC-swap echo in JavaScript on the js port)', () => {
  const run = (backend: 'ours' | 'js' | 'dpdk', round: number, mpps: number, mode: 'io' | 'txonly' = 'io'): RunResult => ({
    cell: `q256-64B-${mode}-split-1p`,
    mode,
    size: 64,
    queueSize: 256,
    layout: 'split',
    pairs: 1,
    backend,
    round,
    mpps,
    gbps: mpps,
  });

  it('runs in io and flowgen, alternating with the others; txonly and rxonly are skipped saying why; no latency or idle runs', () => {
    const opts = options({ modes: ['io', 'flowgen', 'txonly', 'rxonly'], layouts: ['split'], backends: ['ours', 'js', 'dpdk'], rounds: 2 });
    const plan = buildPlan({ ...opts, latency: true, idle: true });
    const io = plan.throughput.filter((r) => r.cell === 'q256-64B-io-split-1p');
    expect(io.map((r) => `${r.backend}${r.round}${r.skipped ? '-' : ''}`)).toEqual(['ours1', 'js1', 'dpdk1', 'ours2', 'js2', 'dpdk2']);
    expect(plan.throughput.filter((r) => r.mode === 'flowgen' && r.backend === 'js' && !r.skipped)).toHaveLength(2);
    for (const mode of ['txonly', 'rxonly']) {
      const runs = plan.throughput.filter((r) => r.mode === mode);
      expect(runs.filter((r) => r.skipped).map((r) => r.backend)).toEqual(['js', 'js']);
      expect(runs.find((r) => r.backend === 'js')?.skipped).toBe('the js back-end is a MAC-swap echo: io and flowgen only');
    }
    expect(plan.latency.length).toBeGreaterThan(0);
    expect([...plan.latency, ...plan.idle].some((r) => r.backend === 'js')).toBe(false);
  });

  it('reports js / ours (the native loopback) of the medians, the best rounds and each round, and js / DPDK', () => {
    const runs = [run('ours', 1, 8), run('js', 1, 2), run('dpdk', 1, 4), run('ours', 2, 10), run('js', 2, 4), run('dpdk', 2, 5)];
    const [c] = summarise(runs, ['ours', 'js', 'dpdk']);
    expect(c.js?.aggregate?.mpps).toBe(3);
    expect(c.js?.perOurs).toBeCloseTo(3 / 9);
    expect(c.js?.bestPerOurs).toBeCloseTo(4 / 10);
    expect(c.js?.roundRatios).toEqual([0.25, 0.4]);
    expect(c.js?.perDpdk).toBeCloseTo(3 / 4.5);
    // The ours / DPDK figures are as without the js back-end.
    expect(c.ratio).toBeCloseTo(9 / 4.5);
    expect(c.roundRatios).toEqual([2, 2]);
    expect(summarise(runs, ['ours', 'dpdk'])[0].js).toBeUndefined();
  });

  it('has a table of its own on the terminal and in Markdown, for the cells where it ran', () => {
    const skipped: RunResult = {
      ...run('js', 1, 0, 'txonly'),
      mpps: undefined,
      skipped: 'the js back-end is a MAC-swap echo: io and flowgen only',
    };
    const cells = summarise(
      [run('ours', 1, 8), run('js', 1, 2), run('dpdk', 1, 4), run('ours', 1, 9, 'txonly'), skipped],
      ['ours', 'js', 'dpdk'],
    );
    const table = formatJsTable(cells).split('\n');
    expect(table[0]).toMatch(/js Mpps .* ours Mpps js\/ours .* DPDK Mpps js\/DPDK/);
    expect(table).toHaveLength(3); // head, rule, the io cell (txonly: not run)
    expect(table[2]).toMatch(/^ +256 +64 io \(round trip\) +split +1 +2\.00 +2\.00 +8\.00 +0\.25 +0\.25 0\.25 +4\.00 +0\.50/);
    const md = jsMarkdown(cells);
    expect(md.filter((l) => l.startsWith('| 256 '))).toEqual([
      '| 256 | 64 | io (round trip) | split | 1 | 2.00 | 2.00 | 8.00 | 0.25 | 0.25 | 0.25 | 4.00 | 0.50 | — | — |',
    ]);
    expect(formatJsTable(summarise([run('ours', 1, 8), run('dpdk', 1, 4)], ['ours', 'dpdk']))).toBe('');
    expect(jsMarkdown(summarise([run('ours', 1, 8)], ['ours']))).toEqual([]);
  });

  it('says its ring layout like ours (features acked), and a wrong one fails the run', () => {
    const out = `vhost-user: serving virtio-net (js port, ...)\n2026 [s] features acked: 0x${((1n << 34n) | 0x950008000n).toString(16)} (VERSION_1 ...)\n`;
    expect(negotiatedFeatures('js', out)).toBe((1n << 34n) | 0x950008000n);
    expect(checkLayout('js', 'packed', negotiatedFeatures('js', out))).toEqual({ negotiated: 'packed', features: '0xd50008000' });
    expect(checkLayout('js', 'split', 0xd50008000n).invalid).toBe(
      'asked for split rings but our back-end (js port) negotiated packed; features 0xd50008000',
    );
    expect(checkLayout('js', 'split', null).invalid).toMatch(/ring layout unknown/);
  });
});

describe("our back-end's statistics as the benchmark reads them", () => {
  it('parses what the CLI prints on SIGUSR1 (formatStats), every pair', () => {
    const queue = (q: number) => Object.fromEntries(STAT_NAMES.map((n, i) => [n, BigInt(1000 * q + i)])) as QueueStats;
    const text = `statistics for /s:\n${formatStats([0, 1, 2, 3].map(queue))}\nmore output\n`;
    const [block] = parseOurStatsBlocks(text, '/s', 2);
    expect(block.pairs).toHaveLength(2);
    expect(block.pairs[1].tx).toEqual({ packets: 3000, bytes: 3001, drops: 3012, errors: 3013, kicks: 3014, calls: 3015 });
    expect(block.rx.packets).toBe(0 + 2000);
    expect(block.tx.calls).toBe(1015 + 3015);
  });
});
