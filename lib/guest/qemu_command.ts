/**
 * How a test describes its guest (GuestOptions) and the QEMU command line that makes it: TCG, shared
 * memfd (or file) memory (vhost-user maps it), the serial console on stdio, and one virtio-net NIC without MSI-X
 * (QEMU 7.2 under TCG crashes when a vhost-user NIC uses it), optionally multiqueue or packed.
 */
import type { BootFiles } from './initramfs';
import { GUEST_MAC } from './scenarios';

export interface GuestOptions {
  /** The vhost-user socket. Required unless `netdev` replaces the vhost-user NIC. */
  socketPath?: string;
  /** QEMU listens on the socket (`server=on,wait=off`) and the back-end connects as a client (`--client`). */
  server?: boolean;
  /**
   * QEMU is the client and, when the back-end goes away, connects again every this many seconds
   * (`reconnect=N`), e.g. 1 for a back-end restarted under a running guest. Not with `server`.
   */
  reconnect?: number;
  /**
   * QEMU's control socket: `-qmp unix:PATH,server=on,wait=off`, for lib/guest/qmp.ts (migration, quit).
   */
  qmpSocket?: string;
  /**
   * Start as a migration destination listening on this unix socket (`-incoming unix:PATH`): the guest
   * runs once a source QEMU has migrated into it. Everything else must match the source's options.
   */
  incoming?: string;
  /** Extra `-device virtio-net-pci` properties, e.g. 'csum=off,guest_csum=off,host_tso4=off'. */
  deviceOptions?: string | readonly string[];
  /** Default GUEST_MAC. */
  mac?: string;
  /** The guest's scenarios (vhu.run), in order. Default ['link']. */
  scenarios?: readonly string[];
  /** Other guest parameters: { mb: 50, port: 5001, ip: '10.0.2.15/24', host: '10.0.2.1', count: 20, ... }. */
  params?: Readonly<Record<string, string | number>>;
  /** Raw words appended to the kernel command line. */
  kernelParams?: string | readonly string[];
  /** The guest powers itself off after this many seconds whatever it is doing (vhu.timeout). Default 120. */
  guestTimeoutSec?: number;
  /**
   * Replaces the vhost-user NIC's `-netdev` (id must be n0), e.g. 'tap,id=n0,ifname=vhut0,script=no,downscript=no'
   * to check guest scenarios and host helpers against QEMU's own back-end. `socketPath` is then unused.
   */
  netdev?: string;
  /** Run QEMU inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Virtual CPUs (`-smp`). Default 1. */
  smp?: number;
  /** Queue pairs of the vhost-user NIC: more than 1 adds `queues=N` to its netdev and `mq=on` to the device. Default 1. */
  queuePairs?: number;
  /** Ask for the packed ring (`packed=on` on the device); the guest still gets split if the back-end does not offer it. */
  packed?: boolean;
  /** Guest RAM in MiB. Default 256. */
  memoryMiB?: number;
  /** Guest RAM in KiB, in place of memoryMiB (MigratingGuest's size that QEMU 7.2 migrates intact: ram_file.ts). */
  memoryKiB?: number;
  /**
   * Guest RAM in this file (`memory-backend-file`, shared, which vhost-user maps as it does a memfd), so that
   * a test can read it: MigratingGuest compares a source's with its destination's.
   */
  ramFile?: string;
  /** `-S`: the guest does not run until QMP `cont` (a migration destination then stays paused once loaded). */
  paused?: boolean;
  /** Copy each console line to stderr as it arrives. Default: VHOST_USER_E2E_ECHO=1 in the environment. */
  echo?: boolean;
  /** More QEMU arguments. */
  extraArgs?: readonly string[];
  /**
   * The kernel and initramfs to boot instead of buildInitramfs()'s cached ones: e.g. the benchmark's private
   * copy, which another checkout's build (it removes initramfs images of other init.sh versions) cannot delete.
   */
  boot?: BootFiles;
}

const words = (v: string | readonly string[] | undefined): readonly string[] => (typeof v === 'string' ? [v] : (v ?? []));

/** The kernel command line: the console, then the guest's parameters as vhu.KEY=VALUE words for init.sh. */
function kernelCommandLine(opts: GuestOptions): string {
  for (const [k, v] of Object.entries(opts.params ?? {})) {
    if (!/^[a-z0-9_]+$/.test(k) || /\s/.test(String(v))) throw new Error(`guest parameter vhu.${k}=${v}: want [a-z0-9_] names, no spaces`);
  }
  const params: Record<string, string | number> = {
    run: (opts.scenarios ?? ['link']).join(','),
    timeout: opts.guestTimeoutSec ?? 120,
    ...opts.params,
  };
  return ['console=ttyS0', 'quiet', 'panic=-1', ...Object.entries(params).map(([k, v]) => `vhu.${k}=${v}`), ...words(opts.kernelParams)]
    .filter(Boolean)
    .join(' ');
}

/** The vhost-user socket's `-chardev`: QEMU as client (optionally reconnecting) or as server. */
function chardevSpec(socketPath: string, opts: GuestOptions): string {
  const reconnect = opts.reconnect;
  if (reconnect !== undefined && (!Number.isInteger(reconnect) || reconnect < 1)) {
    throw new Error(`startGuest: reconnect is seconds between attempts, an integer >= 1, got ${reconnect}`);
  }
  if (reconnect !== undefined && opts.server) throw new Error('startGuest: reconnect is for QEMU as the client, not with server');
  const role = opts.server ? ',server=on,wait=off' : reconnect !== undefined ? `,reconnect=${reconnect}` : '';
  return `socket,id=c0,path=${socketPath}${role}`;
}

/** The NIC's arguments: the vhost-user socket (unless `netdev` replaces it), its netdev and the device. */
function nicArgs(opts: GuestOptions): string[] {
  let netdev = opts.netdev;
  const chardev: string[] = [];
  if (!netdev) {
    if (!opts.socketPath) throw new Error('startGuest: socketPath is required for a vhost-user NIC');
    chardev.push('-chardev', chardevSpec(opts.socketPath, opts));
    netdev = 'vhost-user,id=n0,chardev=c0';
  }
  const mq = (opts.queuePairs ?? 1) > 1;
  if (mq) netdev += `,queues=${opts.queuePairs}`;
  const device = [
    'virtio-net-pci',
    'netdev=n0',
    `mac=${opts.mac ?? GUEST_MAC}`,
    'romfile=',
    'vectors=0',
    mq ? 'mq=on' : '',
    opts.packed ? 'packed=on' : '',
    ...words(opts.deviceOptions),
  ]
    .filter(Boolean)
    .join(',');
  return [...chardev, '-netdev', netdev, '-device', device];
}

/** The QEMU argv (without the program) for `opts` and `boot`. */
export function qemuArgs(boot: BootFiles, opts: GuestOptions): string[] {
  const mem = opts.memoryKiB !== undefined ? `${opts.memoryKiB}K` : `${opts.memoryMiB ?? 256}M`;
  const backend = opts.ramFile ? `memory-backend-file,mem-path=${opts.ramFile}` : 'memory-backend-memfd';
  const append = kernelCommandLine(opts);
  return [
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-accel',
    'tcg',
    '-cpu',
    'max',
    ...(opts.smp ? ['-smp', String(opts.smp)] : []),
    '-m',
    mem,
    '-machine',
    'q35,memory-backend=mem',
    '-object',
    `${backend},id=mem,size=${mem},share=on`,
    '-chardev',
    'stdio,id=con,signal=off',
    '-serial',
    'chardev:con',
    '-kernel',
    boot.kernel,
    '-initrd',
    boot.initrd,
    '-append',
    append,
    ...nicArgs(opts),
    ...(opts.qmpSocket ? ['-qmp', `unix:${opts.qmpSocket},server=on,wait=off`] : []),
    ...(opts.incoming ? ['-incoming', `unix:${opts.incoming}`] : []),
    ...(opts.paused ? ['-S'] : []),
    ...(opts.extraArgs ?? []),
  ];
}
