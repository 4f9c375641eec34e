/**
 * The figures of the user-mode network benchmark: per back-end and MTU the median MB/s of each direction
 * over the rounds whose transfer verified, and ours / each other back-end as the ratio of the medians.
 */
import { DIRECTIONS, type Direction, type UserNetAggregate, type UserNetConfig, type UserNetRatio, type UserNetRun } from './types';

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const sameConfig = (a: UserNetConfig, b: UserNetConfig): boolean => a.peer === b.peer && a.mtu === b.mtu;

/** A config as people read it: "ours @ 65520". */
export function configLabel(c: UserNetConfig): string {
  return `${c.peer} @ ${c.mtu}`;
}

export const DIRECTION_LABEL: Readonly<Record<Direction, string>> = {
  h2g: 'host -> guest',
  g2h: 'guest -> host',
};

/** One aggregate per config and direction, in the order of `configs`. */
export function aggregate(configs: readonly UserNetConfig[], runs: readonly UserNetRun[]): UserNetAggregate[] {
  const out: UserNetAggregate[] = [];
  for (const config of configs) {
    const mine = runs.filter((r) => sameConfig(r.config, config));
    for (const direction of DIRECTIONS) {
      const ok = mine.filter((r) => r[direction]?.verified);
      const rates = ok.map((r) => r[direction]!.mbps);
      const mtus = [...new Set(ok.map((r) => r.guestMtu).filter((m): m is number => m !== null))].sort((a, b) => a - b);
      out.push({
        config,
        direction,
        runs: ok.length,
        mbps: median(rates),
        min: rates.length ? Math.min(...rates) : null,
        max: rates.length ? Math.max(...rates) : null,
        guestMtus: mtus,
      });
    }
  }
  return out;
}

/**
 * ours at each of its MTUs against every other config at the same MTU, and against QEMU at its only MTU
 * when QEMU has none there (ours at 65520 / qemu at 1500 is what a user switching gains).
 */
export function ratios(aggregates: readonly UserNetAggregate[]): UserNetRatio[] {
  const configs: UserNetConfig[] = [];
  for (const a of aggregates) if (!configs.some((c) => sameConfig(c, a.config))) configs.push(a.config);
  const pairs: [UserNetConfig, UserNetConfig][] = [];
  for (const ours of configs.filter((c) => c.peer === 'ours')) {
    for (const other of configs.filter((c) => c.peer !== 'ours')) {
      const sameMtu = other.mtu === ours.mtu;
      const qemuElsewhere = other.peer === 'qemu' && !configs.some((c) => c.peer === 'qemu' && c.mtu === ours.mtu);
      if (sameMtu || qemuElsewhere) pairs.push([ours, other]);
    }
  }
  const find = (c: UserNetConfig, d: Direction) => aggregates.find((a) => a.direction === d && sameConfig(a.config, c));
  const out: UserNetRatio[] = [];
  for (const direction of DIRECTIONS) {
    for (const [ours, other] of pairs) {
      const a = find(ours, direction)?.mbps ?? null;
      const b = find(other, direction)?.mbps ?? null;
      out.push({ direction, ours, other, ratio: a !== null && b !== null && b > 0 ? a / b : null });
    }
  }
  return out;
}
