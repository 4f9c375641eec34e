/**
 * The benchmark's 'js' back-end: the js port with a MAC-swap echo written in JavaScript (the loop of
 * examples/js-echo.mjs), doing the loopback's job with every frame crossing into JS and back. A child
 * program, pinned by the harness to the back-end's CPU like `vhost-user net`, whose main thread (the
 * echo) and native worker share that CPU the way the loopback's do:
 *
 *   node dist/bench/js_echo.js --socket SOCK [--queues N] [--poll-us N]
 *
 * It speaks like our CLI, so the harness drives both alike (lib/bench/backends.ts): the `vhost-user:
 * serving` line when ready, the back-end's log (its `features acked` line says the ring layout), the
 * per-queue statistics on SIGUSR1 and on SIGINT/SIGTERM (then it stops).
 */
import { parseArgs } from 'node:util';
import { VhostUserBackend } from '../backend';
import { VhostUserError } from '../errors';
import { formatStats } from '../net/stats';

function main(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: { socket: { type: 'string' }, queues: { type: 'string' }, 'poll-us': { type: 'string' } },
  });
  const queuePairs = Number(values.queues ?? 1);
  if (!values.socket || !Number.isInteger(queuePairs) || queuePairs < 1) {
    process.stderr.write('usage: node dist/bench/js_echo.js --socket SOCK [--queues N] [--poll-us N]\n');
    process.exit(2);
  }
  const socketPath = values.socket;
  const backend = new VhostUserBackend({
    socketPath,
    device: { port: 'js', queuePairs, ...(values['poll-us'] === undefined ? {} : { pollUs: Number(values['poll-us']) }) },
    log: (level, message) =>
      process.stdout.write(`${new Date().toISOString()} ${level === 'warn' ? 'WARN ' : ''}[${socketPath}] ${message}\n`),
  });
  backend.start();
  process.stdout.write(
    `vhost-user: serving virtio-net (js port, MAC-swap echo in JavaScript, ${queuePairs} queue pair(s)) on ${socketPath}\n`,
  );
  const printStats = () => process.stdout.write(`statistics for ${socketPath}:\n${formatStats(backend.device.stats())}\n`);
  process.on('SIGUSR1', printStats);
  const stop = (signal: string) => {
    process.stdout.write(`vhost-user: ${signal}, stopping\n`);
    printStats();
    backend.close();
    process.exit(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  void echo(backend);
}

/** One loop per connection: frames() ends when the front-end disconnects, and serves the next one. */
async function echo(backend: VhostUserBackend): Promise<void> {
  for (;;) {
    try {
      for await (const batch of backend.device.frames()) {
        for (const frame of batch) {
          // Byte by byte: no subarray (an object per frame) and no call per frame into a builtin.
          for (let i = 0; i < 6; i++) {
            const b = frame[i];
            frame[i] = frame[i + 6];
            frame[i + 6] = b;
          }
        }
        await backend.device.send(batch); // the views themselves: no copy
      }
    } catch (err) {
      if (err instanceof VhostUserError && err.code === 'ESHUTDOWN') return;
      if (!(err instanceof VhostUserError && err.code === 'ENOTCONN')) throw err; // a send cut short by a disconnect: go on
    }
  }
}

main(process.argv.slice(2));
