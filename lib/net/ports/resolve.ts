/**
 * Ports as the device and the CLI see them: which port the options pick, whether its options are
 * right (each checked once, here), what it offers and what its native factory gets.
 */
import type { NativePortOptions } from '../../binding';
import { VhostUserError } from '../../errors';
import * as registry from './index';
import { integerProblem, shown, type DeviceContext, type PortOption, type PortSpec, type PortValues, type Wording } from './port';

type Registered = (typeof registry)[keyof typeof registry];
type RegisteredOption = Registered['options'][number];

/** A port kind's name: 'loopback', 'tap', ... */
export type PortKind = Registered['name'];

/** Every port's options, by their library name (tap, frameSize, ...). */
export type PortOptionValues = {
  [O in RegisteredOption as O['key']]?: O extends { type: 'integer' }
    ? number
    : O extends { type: 'flag' }
      ? boolean
      : O extends { multiple: true }
        ? string | string[]
        : string;
};

/** The registered ports in --help order; the first is the default. */
export const PORTS: readonly PortSpec[] = Object.values(registry);
export const PORT_KINDS: readonly PortKind[] = PORTS.map((p) => p.name as PortKind);

/** Options of the given ports, each once (two ports may share one). */
function optionsOf(ports: readonly PortSpec[]): readonly PortOption[] {
  return ports.flatMap((p) => p.options).filter((o, i, all) => all.findIndex((x) => x.key === o.key) === i);
}

/** Options of every port. */
export const PORT_OPTIONS: readonly PortOption[] = optionsOf(PORTS);
/** Options the CLI has flags for: those of the ports it can serve (not the library-only ones). */
export const CLI_PORT_OPTIONS: readonly PortOption[] = optionsOf(PORTS.filter((p) => !p.libraryOnly));

/** The options as given: the port's name and its options by key (NetDeviceOptions, or the CLI's). */
export interface PortInput {
  port?: string;
}

export const PORT_OPTION = { key: 'port', flag: 'port', label: 'port' };

export interface ResolvedPort {
  spec: PortSpec;
  /** Its options, checked, with defaults filled in. */
  values: PortValues;
  /** What its native factory gets. */
  native: NativePortOptions;
}

/** The port the options name, or the one an option given implies (--tap), or the first. */
export function pickPort(opts: PortInput): string {
  if (opts.port !== undefined) return opts.port;
  const given = opts as Record<string, unknown>;
  const implied = PORTS.find((p) => p.options.some((o) => o.selectsPort && given[o.key] !== undefined));
  return (implied ?? PORTS[0]).name;
}

/** The port the options pick, its options checked and defaulted; a mistake throws VhostUserError EINVAL, one line in `w`. */
export function resolvePort(opts: PortInput, device: DeviceContext, w: Wording): ResolvedPort {
  // Library callers may pass anything: every value is checked before it is used.
  const given = opts as Record<string, unknown>;
  const fail = (message: string): never => {
    throw new VhostUserError('EINVAL', message);
  };
  const kind = pickPort(opts);
  const spec =
    PORTS.find((p) => p.name === kind) ?? fail(`${w.option(PORT_OPTION)} must be one of ${PORT_KINDS.join(', ')}, got ${shown(kind)}`);
  for (const o of PORT_OPTIONS) {
    if (given[o.key] === undefined || spec.options.some((mine) => mine.key === o.key)) continue;
    const owners = PORTS.filter((p) => p.options.some((x) => x.key === o.key)).map((p) => w.port(p.name));
    fail(`--${o.flag} needs ${owners.join(' or ')}, not '${kind}'`);
  }
  const values: PortValues = {};
  for (const o of spec.options) {
    const value = given[o.key] ?? o.default;
    if (value === undefined) {
      if (o.required) fail(`${w.port(kind)} needs ${w.missing(o)}`);
      continue;
    }
    if (o.type === 'flag') {
      if (typeof value !== 'boolean') fail(`${w.option(o)} must be true or false, got ${shown(value)}`);
      values[o.key] = value as boolean;
      continue;
    }
    const each = o.multiple && Array.isArray(value) ? (value as unknown[]) : [value];
    for (const v of each) {
      if (o.type === 'integer') {
        const problem = integerProblem({ ...o, min: o.min ?? 0, max: o.max ?? Number.MAX_SAFE_INTEGER }, v, w);
        if (problem) fail(problem);
      } else if (typeof v !== 'string') {
        fail(`${w.option(o)} must be a string${o.multiple ? ' or an array of strings' : ''}, got ${shown(v)}`);
      }
      const problem = o.check?.(v as string | number);
      if (problem) fail(`${w.option(o)} ${problem}, got ${shown(v)}`);
    }
    values[o.key] = o.multiple ? (each as string[]) : (value as string | number);
  }
  if (spec.maxQueuePairs !== undefined && device.queuePairs > spec.maxQueuePairs) {
    const max = spec.maxQueuePairs;
    fail(
      `the ${kind} port serves ${max === 1 ? 'one queue pair' : `up to ${max} queue pairs`} for now (--queues ${max}, or another ${w.option(PORT_OPTION)})`,
    );
  }
  const problem = spec.check?.(values, device);
  if (problem) fail(problem);
  return { spec, values, native: spec.native(values, device) };
}
