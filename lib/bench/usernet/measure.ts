/**
 * One run of the user-mode network benchmark: one back-end at one MTU, a fresh guest, both transfers.
 * The guest leases its address (dhcp, which applies an offered MTU), reports its link (the MTU it uses),
 * reads what the host sends to a forwarded port (tcp-sink: host -> guest) and serves its own file on
 * another (tcp-serve: guest -> host). Both are timed on the host and checked by byte count and md5.
 */
import { startGuest, type Guest } from '../../guest/guest';
import type { BootFiles } from '../../guest/initramfs';
import { processCpuSeconds, systemCpu } from '../measure/procstat';
import { startPeer, type PeerContext, type RunningPeer } from './peers';
import { now, readPort, sendTo } from './transfer';
import type { Transfer, UserNetConfig, UserNetRun } from './types';

/** The guest's ports (init.sh): tcp-sink reads on one, tcp-serve sends on the other. */
export const GUEST_SINK_PORT = 5081;
export const GUEST_SERVE_PORT = 5080;

export interface RunInput {
  round: number;
  config: UserNetConfig;
  payload: { data: Buffer; md5: string };
  /** The host's two forwarded ports: to the guest's sink (h2g) and from its server (g2h). */
  hostPorts: { h2g: number; g2h: number };
  ctx: Omit<PeerContext, 'forwards'>;
  /** The kernel and initramfs every run boots. */
  boot: BootFiles;
  otherLoadBefore: number;
}

function transfer(bytes: number, seconds: number, guestSecs: string | undefined, verified: boolean): Transfer {
  const guestSeconds = guestSecs === undefined ? null : Number(guestSecs);
  return { bytes, seconds, mbps: bytes / seconds / 1e6, guestSeconds: Number.isFinite(guestSeconds) ? guestSeconds : null, verified };
}

/** The guest for this run: the same kernel, initramfs, memory and CPU for every back-end; only the NIC's back-end differs. */
function bootGuest(peer: RunningPeer, mib: number, boot: BootFiles): Promise<Guest> {
  return startGuest({
    boot,
    socketPath: peer.socketPath,
    netdev: peer.netdev,
    deviceOptions: peer.deviceOptions,
    scenarios: ['dhcp', 'link', 'tcp-sink', 'tcp-serve'],
    params: { ip: 'none', mb: mib, sink_port: GUEST_SINK_PORT, serve_port: GUEST_SERVE_PORT },
    smp: 1,
    memoryMiB: 384,
    guestTimeoutSec: 120 + mib * 4,
  });
}

/** Host -> guest: from the host's connect to the console line the guest prints as soon as its nc has read the end. */
async function hostToGuest(guest: Guest, input: RunInput, timeoutMs: number): Promise<Transfer> {
  const bytes = input.payload.data.length;
  await guest.waitFor(/^VHU-INFO tcp-sink port=/m, 60_000);
  const end = guest.waitFor(/^VHU-INFO tcp-sink end$/m, timeoutMs).then(() => now());
  end.catch(() => {}); // the tcp-sink result below fails first, with the reason
  const sending = sendTo(input.hostPorts.h2g, input.payload.data, timeoutMs);
  const got = await guest.result('tcp-sink', timeoutMs);
  const [t0, t1, sent] = await Promise.all([sending.connected, end, sending.done]);
  const ok = got.rc === '0' && Number(got.bytes) === bytes && got.md5 === input.payload.md5 && sent.bytes === bytes;
  return transfer(bytes, t1 - t0, got.secs, ok);
}

/** Guest -> host: from the host's connect to the last byte read. */
async function guestToHost(guest: Guest, input: RunInput, timeoutMs: number): Promise<Transfer> {
  const bytes = input.payload.data.length;
  const info = await guest.waitFor(/^VHU-INFO tcp-serve md5=(\S+) bytes=(\d+)/m, 120_000);
  const got = await readPort(input.hostPorts.g2h, Number(info[2]), timeoutMs);
  // The guest's own timing, when its nc ends: with passt it may not (the host's FIN is not passed on).
  const served = await guest.result('tcp-serve', 10_000).catch(() => null);
  const ok = got.bytes === bytes && got.md5 === info[1] && (served === null || served.rc === '0');
  return transfer(got.bytes, got.seconds, served?.secs, ok);
}

const tailOf = (text: string, lines: number): string => text.trimEnd().split('\n').slice(-lines).join(' | ');

/** Runs one config once; failures end up in `error` (with the end of the console), never thrown. */
export async function measureRun(input: RunInput): Promise<UserNetRun> {
  const mib = input.payload.data.length >> 20;
  const timeoutMs = 60_000 + input.payload.data.length / 50_000; // at least 50 kB/s
  const run: UserNetRun = {
    round: input.round,
    config: input.config,
    guestMtu: null,
    lease: {},
    h2g: null,
    g2h: null,
    cpuSeconds: { qemu: null, backend: null },
    otherLoadBefore: input.otherLoadBefore,
    otherLoadDuring: null,
    commands: [],
    error: null,
  };
  let peer: RunningPeer | null = null;
  let guest: Guest | null = null;
  const t0 = now();
  const busy0 = systemCpu().busy;
  const self0 = processCpuSeconds(process.pid) ?? 0;
  try {
    const forwards = [
      { hostPort: input.hostPorts.h2g, guestPort: GUEST_SINK_PORT },
      { hostPort: input.hostPorts.g2h, guestPort: GUEST_SERVE_PORT },
    ];
    peer = await startPeer(input.config, { ...input.ctx, forwards });
    if (peer.commandLine) run.commands.push(peer.commandLine);
    guest = await bootGuest(peer, mib, input.boot);
    run.commands.push(guest.commandLine);
    run.lease = await guest.result('dhcp', 60_000);
    run.guestMtu = Number((await guest.result('link', 30_000)).mtu) || null;
    run.h2g = await hostToGuest(guest, input, timeoutMs);
    run.g2h = await guestToHost(guest, input, timeoutMs);
    if (!run.h2g.verified || !run.g2h.verified) run.error = 'a transfer did not verify (byte count or md5)';
    run.cpuSeconds = {
      qemu: guest.pid === undefined ? null : processCpuSeconds(guest.pid),
      backend: peer.process?.pid === undefined ? null : processCpuSeconds(peer.process.pid),
    };
    const own = (run.cpuSeconds.qemu ?? 0) + (run.cpuSeconds.backend ?? 0) + (processCpuSeconds(process.pid) ?? 0) - self0;
    run.otherLoadDuring = Math.max(0, (systemCpu().busy - busy0 - own) / (now() - t0));
  } catch (err) {
    const consoleTail = guest ? ` (console: ${tailOf(guest.output(), 8)}; qemu: ${tailOf(guest.stderr(), 3)})` : '';
    const backendTail = peer?.output().trim() ? ` (back-end: ${tailOf(peer.output(), 4)})` : '';
    run.error = `${(err as Error).message.split('\n')[0]}${consoleTail}${backendTail}`;
  } finally {
    await guest?.kill();
    await peer?.stop();
  }
  return run;
}
