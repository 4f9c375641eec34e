/**
 * The command line of `vhost-user bench --user-net`: guest <-> host TCP through our user port, QEMU's
 * `-netdev user` and passt, on the same guest. Parsing is pure (a bad option is an Error with one line)
 * so that the tests can check it without running anything.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { USER_NET_PEERS, type UserNetConfig, type UserNetPeer } from './types';

export const USER_NET_HELP = `Usage: vhost-user bench --user-net [options]

Guest <-> host TCP throughput of one Linux guest (QEMU, TCG, -smp 1) through three user-mode networks:
ours (vhost-user net --port user, libslirp in our back-end), qemu (QEMU's own -netdev user, libslirp in
QEMU) and passt (socket mode, -netdev stream). Both directions through port forwards: the host sends N
MiB to a guest reader, and reads N MiB from a guest server; timed on the host. MB/s and the
ratios ours / qemu and ours / passt, medians over rounds; the back-ends alternate within each round.

  --mib N           MiB per transfer (default 50; 1..100)
  --rounds N        rounds (default 3); the order is reversed every other round (A B C, C B A, ...)
  --peers LIST      ours,qemu,passt (default all three)
  --mtus LIST       MTUs ours and passt run at (default 1500,65520; each 576..65520); QEMU's -netdev user
                    has no MTU setting and always runs at 1500
  --quick           smoke run: --mib 2 --rounds 1 --quiet-wait 0
  --quiet-wait S    before each run wait up to S seconds for other load to drop (default 20)
  --out DIR         results directory (default ./vhost-user-bench/user-net)
  -h, --help        this text
`;

export interface UserNetOptions {
  mib: number;
  rounds: number;
  peers: UserNetPeer[];
  mtus: number[];
  quietWait: number;
  outDir: string;
}

/** QEMU's -netdev user (libslirp inside QEMU 7.2) has no MTU option: it is 1500. */
export const QEMU_USER_MTU = 1500;

function int(value: string | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
  return n;
}

function peerList(value: string | undefined): UserNetPeer[] {
  if (value === undefined) return [...USER_NET_PEERS];
  const peers = value.split(',').map((s) => s.trim()) as UserNetPeer[];
  for (const p of peers) if (!USER_NET_PEERS.includes(p)) throw new Error(`unknown peer '${p}' (available: ${USER_NET_PEERS.join(', ')})`);
  if (new Set(peers).size !== peers.length) throw new Error('--peers lists a peer twice');
  if (!peers.includes('ours')) throw new Error('--peers must include ours (every figure is a ratio to it)');
  return peers;
}

function mtuList(value: string | undefined): number[] {
  if (value === undefined) return [1500, 65520];
  const mtus = value.split(',').map((s) => int(s.trim(), 'mtus', 576, 65520) as number);
  if (new Set(mtus).size !== mtus.length) throw new Error('--mtus lists an MTU twice');
  return mtus;
}

/** The options, or null after --help; throws an Error with one line for a bad option. */
export function parseUserNetOptions(argv: readonly string[]): UserNetOptions | null {
  let v;
  try {
    v = parseArgs({
      args: argv.filter((a) => a !== '--user-net'),
      options: {
        mib: { type: 'string' },
        rounds: { type: 'string' },
        peers: { type: 'string' },
        mtus: { type: 'string' },
        quick: { type: 'boolean' },
        'quiet-wait': { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new Error(`${(err as Error).message} (vhost-user bench --user-net --help lists the options)`);
  }
  if (v.help) return null;
  const quick = !!v.quick;
  const quietWait = v['quiet-wait'] === undefined ? undefined : Number(v['quiet-wait']);
  if (quietWait !== undefined && !(quietWait >= 0)) throw new Error('--quiet-wait must be a number >= 0');
  return {
    mib: int(v.mib, 'mib', 1, 100) ?? (quick ? 2 : 50),
    rounds: int(v.rounds, 'rounds', 1, 100) ?? (quick ? 1 : 3),
    peers: peerList(v.peers),
    mtus: mtuList(v.mtus),
    quietWait: quietWait ?? (quick ? 0 : 20),
    outDir: path.resolve(v.out ?? path.join('vhost-user-bench', 'user-net')),
  };
}

/**
 * What one round measures: ours and passt at each MTU, QEMU at its only MTU (with the first MTU group
 * when 1500 is not asked for), grouped by MTU in the order of --mtus and --peers.
 */
export function configsOf(opts: Pick<UserNetOptions, 'peers' | 'mtus'>): UserNetConfig[] {
  const out: UserNetConfig[] = [];
  const qemuGroup = opts.mtus.includes(QEMU_USER_MTU) ? QEMU_USER_MTU : opts.mtus[0];
  for (const mtu of opts.mtus) {
    for (const peer of opts.peers) {
      if (peer !== 'qemu') out.push({ peer, mtu });
      else if (mtu === qemuGroup) out.push({ peer, mtu: QEMU_USER_MTU });
    }
  }
  return out;
}

/** Round r's order (0-based): the configs forward in even rounds, backward in odd ones (A B C, C B A, ...). */
export function roundOrder(configs: readonly UserNetConfig[], round: number): UserNetConfig[] {
  return round % 2 === 0 ? [...configs] : [...configs].reverse();
}
