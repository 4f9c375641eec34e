/** Shapes of the user-mode network benchmark's results (<out>/<stamp>.json). */

/** The user-mode networks compared: our user port, QEMU's own `-netdev user`, passt in socket mode. */
export const USER_NET_PEERS = ['ours', 'qemu', 'passt'] as const;
export type UserNetPeer = (typeof USER_NET_PEERS)[number];

/** Host -> guest (the guest reads from a host server through the gateway) or guest -> host (a forward). */
export type Direction = 'h2g' | 'g2h';
export const DIRECTIONS: readonly Direction[] = ['h2g', 'g2h'];

/** One back-end at one MTU: what a run measures. */
export interface UserNetConfig {
  peer: UserNetPeer;
  /** The MTU the back-end offers (ours: --mtu through the virtio-net MTU feature; passt: DHCP; QEMU: fixed). */
  mtu: number;
}

/** One transfer, timed on the host. */
export interface Transfer {
  bytes: number;
  /** Host -> guest: the host's accept to the close of the connection (the guest's nc ends after the last byte).
   * Guest -> host: the host's connect to the last byte read. */
  seconds: number;
  /** Decimal megabytes per second: bytes / seconds / 1e6. */
  mbps: number;
  /** The guest's own timing of the same transfer (its uptime clock around nc). */
  guestSeconds: number | null;
  /** Byte count and md5 equal on both sides. */
  verified: boolean;
}

export interface UserNetRun {
  round: number;
  config: UserNetConfig;
  /** The MTU of the guest's interface after DHCP (sysfs), what the guest actually used. */
  guestMtu: number | null;
  /** The lease the guest's udhcpc got (ip, router, mtu...). */
  lease: Record<string, string>;
  h2g: Transfer | null;
  g2h: Transfer | null;
  /** CPU seconds of QEMU and of the separate back-end process (ours or passt) over the guest's life. */
  cpuSeconds: { qemu: number | null; backend: number | null };
  /** Other processes' load (CPUs) seen just before the run, after waiting for a quiet machine. */
  otherLoadBefore: number;
  /** Other processes' load (CPUs) while it ran: the machine's busy time less the harness's, QEMU's and the back-end's. */
  otherLoadDuring: number | null;
  /** The back-end's and QEMU's command lines. */
  commands: string[];
  error: string | null;
}

/** Median MB/s of one config in one direction over the rounds that verified. */
export interface UserNetAggregate {
  config: UserNetConfig;
  direction: Direction;
  runs: number;
  mbps: number | null;
  min: number | null;
  max: number | null;
  /** The guest MTUs seen in those runs (one value when all agree). */
  guestMtus: number[];
}

/** ours / another back-end, one direction: the ratio of the medians. */
export interface UserNetRatio {
  direction: Direction;
  ours: UserNetConfig;
  other: UserNetConfig;
  ratio: number | null;
}

export interface UserNetReport {
  kind: 'user-net';
  startedAt: string;
  finishedAt: string;
  argv: string[];
  host: { nproc: number; cpuModel: string; kernel: string; node: string; qemu: string | null; passt: string | null; commit: string | null };
  setup: { mib: number; rounds: number; peers: UserNetPeer[]; mtus: number[]; guest: string; pinning: string };
  runs: UserNetRun[];
  aggregates: UserNetAggregate[];
  ratios: UserNetRatio[];
  errors: string[];
}
