/**
 * `vhost-user bench --vhost-net`: inside one TCG guest (Node and this package in its initramfs), our
 * VirtioNetDriver on a tap served by the kernel's vhost-net, then by our back-end's tap port, alternating
 * every round (lib/guest/vhost_net_bench.ts runs there). Guest TX and RX Mpps, medians over rounds, and
 * the ratios ours / kernel: under TCG only the ratios mean anything. See bench/README.md, "vhost-net".
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { startGuest } from '../../guest/guest';
import { PACKAGE_IN_GUEST, buildNodeInitramfs } from '../../guest/node_initramfs';
import { killAll } from '../../guest/processes';
import { parseResult } from '../../guest/scenarios';
import { guestGap } from '../../guest/tools';
import { hostInfo } from '../host';
import { saveReportJson } from '../report/files';

export const VHOST_NET_HELP = `Usage: vhost-user bench --vhost-net [options]

Inside one QEMU guest (TCG, -smp 1), the same virtio-net driver (ours, in Node) on a tap, served by the
kernel's vhost-net or by our vhost-user back-end's tap port; the two alternate every round. Guest TX:
frames sent back to back into the tap. Guest RX: the kernel's pktgen transmits on the tap. Mpps per run,
medians, and the ratios ours / kernel (under TCG only the ratios mean anything).

  --frames N        frames per direction per run (default 200000; 1000..10000000)
  --rounds N        rounds (default 3)
  --size N          frame size in bytes (default 60; 60..1514)
  --quick           smoke run: --frames 20000 --rounds 1
  --out DIR         results directory (default ./vhost-user-bench/vhost-net)
  -h, --help        this text
`;

interface Options {
  frames: number;
  rounds: number;
  size: number;
  outDir: string;
}

interface Run {
  back: 'kernel' | 'user';
  round: number;
  txMpps: number | null;
  rxMpps: number | null;
  rxDelivered: number | null;
  error?: string;
}

function int(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
  return n;
}

/** The options, or null after --help; throws an Error with one line for a bad option. */
export function parseVhostNetOptions(argv: readonly string[]): Options | null {
  const { values: v } = parseArgs({
    args: argv.filter((a) => a !== '--vhost-net'),
    options: {
      frames: { type: 'string' },
      rounds: { type: 'string' },
      size: { type: 'string' },
      quick: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) return null;
  return {
    frames: int(v.frames, 'frames', 1000, 10_000_000, v.quick ? 20_000 : 200_000),
    rounds: int(v.rounds, 'rounds', 1, 20, v.quick ? 1 : 3),
    size: int(v.size, 'size', 60, 1514, 60),
    outDir: path.resolve(v.out ?? './vhost-user-bench/vhost-net'),
  };
}

const median = (xs: number[]): number | null => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** A result line of the guest's program as a run. */
function runOf(fields: Record<string, string>): Run {
  const back = fields.back as Run['back'];
  const round = Number(fields.round);
  if (fields.error) return { back, round, txMpps: null, rxMpps: null, rxDelivered: null, error: fields.error };
  const mpps = (frames: string, secs: string) => Number(frames) / Number(secs) / 1e6;
  return {
    back,
    round,
    txMpps: mpps(fields.tx_frames, fields.tx_s),
    rxMpps: mpps(fields.rx_frames, fields.rx_s),
    rxDelivered: Number(fields.rx_frames) / Number(fields.rx_offered),
  };
}

async function main(argv: string[]): Promise<number> {
  const opts = parseVhostNetOptions(argv);
  if (!opts) {
    process.stdout.write(VHOST_NET_HELP);
    return 0;
  }
  const gap = guestGap();
  if (gap) throw new Error(`${gap.what}: the benchmark boots a guest (Debian package ${gap.pkg})`);
  const started = new Date();
  const guest = await startGuest({
    boot: await buildNodeInitramfs(),
    netdev: 'hubport,id=n0,hubid=0',
    memoryMiB: 1024,
    scenarios: ['node'],
    params: {
      iface: 'none',
      node: `${PACKAGE_IN_GUEST}/dist/guest/vhost_net_bench.js`,
      frames: opts.frames,
      rounds: opts.rounds,
      size: opts.size,
    },
    guestTimeoutSec: 60 + Math.ceil((opts.rounds * opts.frames) / 2000),
  });
  await guest.waitFor(/^VHU-RESULT vhost-net-bench-done$/m, (60 + (opts.rounds * opts.frames) / 2000) * 1000);
  await guest.kill();
  const runs = guest
    .output()
    .split('\n')
    .map((l) => parseResult(l, 'vhost-net-bench'))
    .filter((f): f is Record<string, string> => f !== null)
    .map(runOf);
  for (const r of runs)
    process.stdout.write(
      `round ${r.round + 1} ${r.back.padEnd(6)} ${r.error ?? `TX ${r.txMpps?.toFixed(4)} Mpps, RX ${r.rxMpps?.toFixed(4)} Mpps`}\n`,
    );
  const med = (back: Run['back'], key: 'txMpps' | 'rxMpps') =>
    median(runs.filter((r) => r.back === back && r[key] !== null).map((r) => r[key] as number));
  const ratio = (key: 'txMpps' | 'rxMpps') => {
    const [ours, kernel] = [med('user', key), med('kernel', key)];
    return ours !== null && kernel ? ours / kernel : null;
  };
  const h = hostInfo();
  const report = {
    kind: 'vhost-net',
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    argv,
    host: { nproc: h.nproc, cpuModel: h.cpuModel, kernel: h.kernel, node: h.node, commit: h.commit },
    setup: { ...opts, guest: 'the host kernel + Node initramfs (lib/guest/node_initramfs.ts), TCG -cpu max, -smp 1, 1 GiB' },
    runs,
    medians: {
      kernel: { tx: med('kernel', 'txMpps'), rx: med('kernel', 'rxMpps') },
      ours: { tx: med('user', 'txMpps'), rx: med('user', 'rxMpps') },
    },
    ratios: { tx: ratio('txMpps'), rx: ratio('rxMpps') },
    errors: runs.filter((r) => r.error).map((r) => `round ${r.round + 1} ${r.back}: ${r.error}`),
  };
  const file = saveReportJson(opts.outDir, report);
  const fmt = (x: number | null) => (x === null ? '—' : x.toFixed(2));
  process.stdout.write(`\nours / kernel vhost-net: guest TX ${fmt(report.ratios.tx)}, guest RX ${fmt(report.ratios.rx)}\n`);
  process.stdout.write(`results: ${path.relative(process.cwd(), file)} (latest.json points to it)\n`);
  return report.errors.length || report.ratios.tx === null ? 1 : 0;
}

/** `vhost-user bench --vhost-net ARGS`: runs the benchmark and exits with its status. */
export function vhostNetBenchMain(argv: string[]): void {
  main(argv).then(
    (status) => process.exit(status),
    (err: unknown) => {
      process.stderr.write(`bench: ${(err as Error)?.message ?? String(err)}\n`);
      void killAll().then(() => process.exit(1));
    },
  );
}
