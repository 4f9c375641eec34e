/**
 * What the commands of the command line share (`net` in cli.ts, `switch` in switch_cli.ts): one-line
 * errors without a stack trace, the checks of integer flags, the per-socket log line, the capture's
 * line, --metrics and the way a command stops.
 */
import type { VhostUserBackend } from './backend';
import { parseListenAddress, type ListenAddress } from './observe/address';
import type { PcapCapture } from './observe/pcap';
import type { MetricsSource } from './observe/readings';
import { serveMetrics } from './observe/server';
import type { LogLevel, Logger } from './protocol/session';

/** A wrong command line: one line, a pointer to the help, exit 2. */
export function fail(message: string, help = 'vhost-user --help'): never {
  process.stderr.write(`vhost-user: ${message}\nTry '${help}'.\n`);
  process.exit(2);
}

/** A failure while starting (a socket or tap the system refused): one line, exit 1. */
export function die(err: unknown): never {
  process.stderr.write(`vhost-user: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

/** An integer flag's value: a number when it is written as one, else the text, for the check to quote. */
export function integer(value: string | undefined): number | string | undefined {
  return value !== undefined && /^[0-9]+$/.test(value) ? Number.parseInt(value, 10) : value;
}

export function intOption(
  name: string,
  value: string | undefined,
  min: number,
  max: number,
  radix = 10,
  help?: string,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number.parseInt(value, radix);
  if (!/^[0-9]+$/.test(value) || !Number.isInteger(n) || n < min || n > max) {
    fail(`--${name} must be an integer in ${min}..${max}${radix === 8 ? ' (octal)' : ''}, got '${value}'`, help);
  }
  return n;
}

/** --message-timeout S, in ms for the back-end (0: wait for ever); undefined: the back-end's default. */
export function messageTimeoutOption(value: string | undefined, help?: string): number | undefined {
  const seconds = intOption('message-timeout', value, 0, 3600, 10, help);
  return seconds === undefined ? undefined : seconds * 1000;
}

/** The log of one socket's back-end: timestamped lines, warnings on stderr, info dropped when quiet. */
export function socketLogger(socketPath: string, quiet: boolean | undefined): Logger {
  return (level: LogLevel, message: string) => {
    if (level === 'info' && quiet) return;
    const line = `${new Date().toISOString()} ${level === 'warn' ? 'WARN ' : ''}[${socketPath}] ${message}\n`;
    (level === 'warn' ? process.stderr : process.stdout).write(line);
  };
}

/** --metrics HOST:PORT as given and as read. */
export interface MetricsFlag {
  text: string;
  at: ListenAddress;
}

/** --metrics HOST:PORT checked (a bad address fails in one line); undefined without the flag. */
export function metricsOption(text: string | undefined, help?: string): MetricsFlag | undefined {
  if (text === undefined) return undefined;
  try {
    return { text, at: parseListenAddress(text, '--metrics') };
  } catch (err) {
    fail((err as Error).message, help);
  }
}

/**
 * Serves the metrics at `at` (metricsOption) over `source`, which the server reads at every request (so
 * it may start before the devices do). A failure to listen runs `stop` and exits in one line.
 */
export function serveMetricsAt(flag: MetricsFlag | undefined, source: readonly VhostUserBackend[] | MetricsSource, stop: () => void): void {
  if (flag === undefined) return;
  serveMetrics(source, flag.at).then(
    (server) => process.stdout.write(`vhost-user: metrics at ${server.url}metrics, live page at ${server.url}\n`),
    (err) => {
      stop();
      die(`--metrics ${flag.text}: ${(err as Error).message}`);
    },
  );
}

/** The capture's counts in the statistics ('captured') and at exit ('written'). */
export function captureLine(pcap: PcapCapture, c: { frames: number; dropped: number }, verb: string): string {
  return `pcap ${pcap.path}: ${c.frames} frames ${verb}, ${c.dropped} not captured (the writer fell behind)\n`;
}

/**
 * On SIGINT or SIGTERM, once: says so, runs `stop` (the statistics, everything closed), then writes
 * out what the capture's rings still hold and exits 0; 1 with one line if that fails.
 */
export function stopOnSignals(stop: () => void, pcap: PcapCapture | undefined): void {
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`vhost-user: ${signal}, stopping\n`);
    stop();
    const flushed = pcap ? pcap.stop().then((c) => process.stdout.write(captureLine(pcap, c, 'written'))) : Promise.resolve();
    flushed.then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`vhost-user: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
}
