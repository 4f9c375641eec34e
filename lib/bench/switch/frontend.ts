/**
 * The front-ends: DPDK testpmd with two virtio-user ports, on the front-end CPU.
 *
 * The well-behaved pair (ports P0 on S0 and P1 on S1) runs the io engine: `start tx_first N` puts N
 * bursts of frames on each port, and from then on every frame a port receives goes out of the other.
 * Each frame is addressed to the other port's MAC (`--eth-peer`): P0's frames (source P0, destination
 * P1) always enter the switch through S0 and P1's through S1, so after the first frames both MACs are
 * learnt and all traffic is learned unicast, one copy per frame, VM to VM. The loop is closed: no
 * frame is created or lost after the injection, so the rate is the back-end's forwarding rate with
 * a fixed population in flight (half of each ring), the same measure as the main benchmark's io mode.
 *
 * The flooder (ports F0 on S2 and F1 on S3) runs flowgen to the broadcast address: every iteration it
 * frees what it received and sends a burst, as fast as its rings take frames. Idle, it runs rxonly:
 * the same spinning lcore on the same CPU, sending nothing.
 */
import { runTestpmd, type TestpmdOptions, type TestpmdResult } from '../testpmd';

export const PAIR_MACS = ['02:00:00:5e:00:a0', '02:00:00:5e:00:a1'];
export const FLOODER_MACS = ['02:00:00:5e:00:b0', '02:00:00:5e:00:b1'];
const BROADCAST = 'ff:ff:ff:ff:ff:ff';

export interface FrontendSetup {
  queueSize: number;
  packed: boolean;
  cpu: number;
  size: number;
}

function common(
  s: FrontendSetup,
): Pick<TestpmdOptions, 'queueSize' | 'packedVq' | 'mrgRxbuf' | 'inOrder' | 'cpu' | 'memoryMb' | 'burst' | 'pollMs'> {
  return { queueSize: s.queueSize, packedVq: s.packed, mrgRxbuf: true, inOrder: true, cpu: s.cpu, memoryMb: 256, burst: 32, pollMs: 500 };
}

/** The pair: a warm-up phase and the measured one, `afterPhase` called at the end of each. */
export function runPair(
  s: FrontendSetup,
  sockets: [string, string],
  warmup: number,
  seconds: number,
  afterPhase: (index: number) => Promise<void>,
): Promise<TestpmdResult> {
  return runTestpmd({
    ...common(s),
    socketPath: sockets[0],
    moreSocketPaths: [sockets[1]],
    macs: PAIR_MACS,
    forwardMode: 'io',
    txPkts: s.size,
    txFirstBursts: Math.max(1, Math.floor(s.queueSize / 64)),
    durationMs: warmup * 1000,
    timeoutMs: warmup * 1000 + 10_000,
    thenPhases: [{ forwardMode: 'io', durationMs: seconds * 1000, timeoutMs: seconds * 1000 + 10_000 }],
    // `start` would otherwise drop what waits in the RX rings: the population.
    extraAppArgs: ['--no-flush-rx', `--eth-peer=0,${PAIR_MACS[1]}`, `--eth-peer=1,${PAIR_MACS[0]}`],
    afterPhase: (_p, i) => afterPhase(i),
  });
}

/** A running flooder: resolves `forwarding` once it forwards; `stop()` ends it and gives its result. */
export interface Flooder {
  forwarding: Promise<boolean>;
  stop(): Promise<TestpmdResult>;
}

export function startFlooder(s: FrontendSetup, sockets: [string, string], flooding: boolean): Flooder {
  let stopping = false;
  let up: (ok: boolean) => void = () => {};
  const forwarding = new Promise<boolean>((r) => (up = r));
  const result = runTestpmd({
    ...common(s),
    socketPath: sockets[0],
    moreSocketPaths: [sockets[1]],
    macs: FLOODER_MACS,
    forwardMode: flooding ? 'flowgen' : 'rxonly',
    // flowgen takes 4 bytes off --txpkts for an FCS the virtio path never carries.
    txPkts: s.size + 4,
    timeoutMs: 600_000,
    until: () => {
      up(true);
      return stopping;
    },
    extraAppArgs: [`--eth-peer=0,${BROADCAST}`, `--eth-peer=1,${BROADCAST}`],
  });
  void result.then(() => up(false));
  return {
    forwarding,
    stop: () => {
      stopping = true;
      return result;
    },
  };
}
