/** The back-end under test in each kind of run: what it runs for a mode, and how it is started. */
import { startBackend, type BackendKind, type BackendProcess, type DpdkForwardMode } from '../backends';
import type { Options } from '../cli';
import { ROOT, type Code } from '../host';
import { checkLayout, negotiatedFeatures } from '../layout';
import type { Mode, OursWorker, RunResult } from '../types';

/**
 * What each back-end runs in a mode: both do the same job for the front-end.
 *  - io, flowgen: return every frame (ours: loopback port; js: the js port with a MAC-swap echo in
 *    JavaScript; DPDK: macswap);
 *  - txonly: take and discard what the guest sends (ours: sink port; DPDK: rxonly);
 *  - rxonly: generate frames of `size` bytes for the guest (ours: source port; DPDK: txonly).
 * The js back-end echoes only: it has no part in txonly and rxonly (plan.ts skips those runs).
 */
export function backendRole(mode: Mode, size: number, oursArgs: string[]): { oursArgs: string[]; dpdk: DpdkForwardMode } {
  if (mode === 'txonly') return { oursArgs: ['--port', 'sink', ...oursArgs], dpdk: 'rxonly' };
  if (mode === 'rxonly') return { oursArgs: ['--port', 'source', '--frame-size', String(size), ...oursArgs], dpdk: 'txonly' };
  return { oursArgs, dpdk: 'macswap' };
}

/** Our CLI's arguments for a worker mode. */
export function workerArgs(opts: Options, worker: OursWorker | undefined): string[] {
  return worker === 'event-driven' ? ['--poll-us', '0', ...opts.oursArgs] : opts.oursArgs;
}

/** Starts a back-end on the back-end's CPU, running the frozen code, with the run's memory mode. */
export function startBackendUnderTest(
  opts: Options,
  code: Code,
  backend: {
    kind: BackendKind;
    socketPath: string;
    extraArgs: string[];
    forwardMode: DpdkForwardMode;
    txPkts?: number;
    queuePairs?: number;
  },
): Promise<BackendProcess> {
  return startBackend({
    ...backend,
    cpu: opts.cpuBackend,
    root: ROOT,
    cliPath: code.cli,
    jsEchoPath: code.jsEcho,
    env: code.env,
    memory: opts.memory,
    memoryMb: 256,
  });
}

/** The tail of a process's output, for an error message. */
export function excerpt(text: string, n = 1500): string {
  return text.length > n ? `…${text.slice(-n)}` : text;
}

/** Starts the back-end of a throughput run with what its mode needs (port for ours, engine for DPDK). */
export function startThroughputBackend(opts: Options, code: Code, run: RunResult, socketPath: string): Promise<BackendProcess> {
  const role = backendRole(run.mode, run.size, opts.oursArgs);
  return startBackendUnderTest(opts, code, {
    kind: run.backend,
    socketPath,
    extraArgs: run.backend === 'js' ? opts.jsArgs : role.oursArgs,
    forwardMode: role.dpdk,
    txPkts: run.size,
    queuePairs: run.pairs,
  });
}

/**
 * Records the layout the back-end negotiated in the run; throws (the run fails, its figures unset)
 * when it is not the layout the cell asked for.
 */
export function requireAskedLayout(run: RunResult, be: BackendProcess): void {
  const check = checkLayout(run.backend, run.layout, negotiatedFeatures(run.backend, be.output()));
  run.negotiatedLayout = check.negotiated;
  if (check.features) run.features = check.features;
  if (check.invalid) throw new Error(check.invalid);
}
