/**
 * What a port kind declares in its own file: its name, its options (their CLI flag, library name,
 * type, range and help), the features it offers, its help text and the plain values its native
 * factory gets. index.ts lists the ports; resolve.ts reads these declarations for the device and
 * the CLI, so nothing else names a port or one of its options.
 */
import type { NativePortOptions } from '../../binding';

/** How an option is named: its key in NetDeviceOptions, its CLI flag (without --), the words for it. */
export interface OptionName {
  key: string;
  flag: string;
  label: string;
}

export interface IntegerBounds {
  min: number;
  max: number;
  /** Appended to the range in messages (' bytes', ' µs'). */
  unit?: string;
}

export interface PortOption extends OptionName, Partial<IntegerBounds> {
  /** 'flag': true when given (a CLI flag without a value; a boolean in the library). */
  type: 'string' | 'integer' | 'flag';
  /** A string option that may be given several times (the library takes a string or an array). */
  multiple?: boolean;
  /** The value's placeholder in --help: NAME, N; empty for a flag. */
  metavar: string;
  /** --help text after the flag; lines after the first are indented by the CLI. */
  help: string;
  /** Used when the option is not given. */
  default?: string | number;
  /** The port cannot work without it. */
  required?: boolean;
  /** Giving the option picks this port when none is named (--tap NAME means --port tap). */
  selectsPort?: boolean;
  /** It names a host resource (a listening port) that only one device can hold: the CLI refuses it with several --socket. */
  oneDevice?: boolean;
  /** What is wrong with a value of the right type (a phrase after the option's name), or undefined. */
  check?(value: string | number): string | undefined;
}

/** An option's value after checking: a string, an integer or a boolean per its type; strings for a multiple one. */
export type PortValues = Record<string, string | number | boolean | string[] | undefined>;

/** What a port sees of the rest of the device when it checks its values against it. */
export interface DeviceContext {
  queuePairs: number;
  /** The MTU the device offers, if any. */
  mtu: number | undefined;
}

export interface PortSpec<N extends string = string, O extends readonly PortOption[] = readonly PortOption[]> {
  name: N;
  /** --help text for --port: what happens to what the guest sends and receives. */
  help: string;
  options: O;
  /** virtio-net feature bits the port offers on top of the data path's own (offloads it honours). */
  features?: bigint;
  /** Most queue pairs the port serves, when it cannot serve MAX_QUEUE_PAIRS. */
  maxQueuePairs?: number;
  /** Only a program can use it (the js port): the CLI refuses it. */
  libraryOnly?: boolean;
  /** Served on the program's thread (lib/net/frames.ts), not by worker threads: the device gets none. */
  servedInline?: boolean;
  /**
   * Served by a switch's thread (lib/net/switch.ts), not by worker threads: the device gets none, and
   * `vhost-user net` refuses it (`vhost-user switch` serves it).
   */
  hosted?: boolean;
  /** The port's resource cannot be shared between devices: the CLI serves one --socket with it. */
  singleDevice?: boolean;
  /** Checks its checked and defaulted values against the device; returns what to change, or undefined. */
  check?(values: PortValues, device: DeviceContext): string | undefined;
  /** Words after "<name> port" in the CLI's serving line: ' tap0', ' of 64-byte frames'. */
  describe?(values: PortValues): string;
  /**
   * Host -> guest forwards at run time (device.addForward/removeForward): the spec as the native port
   * takes it (Port::OnForward), or what is wrong with it. Absent: the port has no forwards.
   */
  forward?(spec: unknown, add: boolean, values: PortValues): { native: string } | { problem: string };
  /** The plain values the native factory of the same name gets (native/net/ports/registry.cc). */
  native(values: PortValues, device: DeviceContext): NativePortOptions;
}

/** Declares a port, keeping its name and option keys as literal types (for PortKind and NetDeviceOptions). */
export function definePort<const N extends string, const O extends readonly PortOption[]>(spec: PortSpec<N, O>): PortSpec<N, O> {
  return spec;
}

/**
 * How messages name an option and a port: the CLI by its flags, the library by words. The fix a
 * message proposes is always written in flags (the README and --help document them).
 */
export interface Wording {
  option(o: OptionName): string;
  /** An option that must be given, with its placeholder. */
  missing(o: OptionName & { metavar: string }): string;
  port(kind: string): string;
}

export const LIBRARY_WORDING: Wording = {
  option: (o) => o.label,
  missing: (o) => `the ${o.label} (option '${o.key}', --${o.flag} ${o.metavar})`,
  port: (kind) => `the ${kind} port`,
};

export const CLI_WORDING: Wording = {
  option: (o) => `--${o.flag}`,
  missing: (o) => `--${o.flag} ${o.metavar}`,
  port: (kind) => `--port ${kind}`,
};

/** A value as a message quotes it: strings in quotes, the rest as JS prints it. */
export function shown(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value);
}

/** What is wrong with an integer option's value, or undefined when it is an integer within its bounds. */
export function integerProblem(o: OptionName & IntegerBounds, value: unknown, w: Wording): string | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= o.min && value <= o.max) return undefined;
  return `${w.option(o)} must be an integer in ${o.min}..${o.max}${o.unit ?? ''}, got ${shown(value)}`;
}
