/**
 * How far apart the two CPUs are right now: the round trip of one cache line between a process on
 * the back-end's CPU and this process (on the front-end's CPU), through shared memory (a memfd mapped
 * by both, via the addon). Each side spins until the other has written its turn.
 *
 * Why: this machine is a VM, and the host places its two vCPUs where it likes, and moves them. Two
 * hyperthreads of one core see ~70 ns and share the core's execution units (two busy pollers slow
 * each other down); two cores of one L3 complex ~120 ns; farther apart, or with host load, 300 ns and
 * more. Vhost rates depend on it (every ring update crosses between the CPUs), so every run records it.
 *
 * Child usage (started by crossCpuRoundTripNs): node cpu_probe.js /proc/<pid>/fd/<fd>
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { native } from '../../binding';

const SIZE = 4096;
const READY = 1; // a[1]: the child has mapped the page
const STOP = -1; // a[0]: the child should exit

/**
 * Median round trip in nanoseconds over `rounds` batches of `iterations` ping-pongs between a child
 * pinned to `cpu` and the calling process (which should be pinned elsewhere); null if it failed.
 */
export async function crossCpuRoundTripNs(
  cpu: number,
  opts: { script?: string; env?: NodeJS.ProcessEnv; iterations?: number; rounds?: number } = {},
): Promise<number | null> {
  const iterations = opts.iterations ?? 20_000;
  const rounds = opts.rounds ?? 5;
  const fd = native.memfdCreate('vhost-user-bench-probe', SIZE);
  let mapping: ReturnType<typeof mapPage> | null = null;
  const child = spawn('taskset', ['-c', String(cpu), process.execPath, opts.script ?? __filename, `/proc/${process.pid}/fd/${fd}`], {
    stdio: 'ignore',
    env: opts.env ?? process.env,
  });
  try {
    mapping = mapPage(fd);
    const a = new Int32Array(mapping.buffer);
    const deadline = Date.now() + 5_000;
    while (Atomics.load(a, 1) !== READY) {
      if (Date.now() > deadline || child.exitCode !== null) return null;
      await new Promise((r) => setTimeout(r, 5));
    }
    const samples: number[] = [];
    let v = 0;
    for (let r = 0; r < rounds; r++) {
      const t0 = process.hrtime.bigint();
      const limit = t0 + 200_000_000n; // never spin more than 200 ms per batch
      let i = 0;
      for (; i < iterations; i++) {
        Atomics.store(a, 0, ++v); // odd: the child's turn
        while (Atomics.load(a, 0) !== v + 1) {
          if ((i & 1023) === 0 && process.hrtime.bigint() > limit) break;
        }
        if (Atomics.load(a, 0) !== v + 1) break;
        v++;
      }
      const t1 = process.hrtime.bigint();
      if (i < iterations) return null;
      samples.push(Number(t1 - t0) / iterations);
    }
    samples.sort((x, y) => x - y);
    return samples[samples.length >> 1];
  } finally {
    if (mapping) Atomics.store(new Int32Array(mapping.buffer), 0, STOP);
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, 2_000);
      child.once('close', () => {
        clearTimeout(t);
        resolve();
      });
    });
    mapping?.unmap();
    native.close(fd);
  }
}

function mapPage(fd: number) {
  return new native.Mapping(fd, SIZE);
}

/** The child: answers every odd value with the next even one until told to stop. */
function child(file: string): void {
  const fd = fs.openSync(file, 'r+');
  const m = mapPage(fd);
  const a = new Int32Array(m.buffer);
  Atomics.store(a, 1, READY);
  let idleSince = process.hrtime.bigint();
  let spins = 0;
  for (;;) {
    const v = Atomics.load(a, 0);
    if (v === STOP) break;
    if (v & 1) {
      Atomics.store(a, 0, v + 1);
      spins = 0;
      idleSince = 0n;
      continue;
    }
    // Between batches the parent may pause: give up after 3 s without a turn.
    if (++spins % 4096 === 0) {
      const now = process.hrtime.bigint();
      if (idleSince === 0n) idleSince = now;
      else if (now - idleSince > 3_000_000_000n) break;
    }
  }
  m.unmap();
  fs.closeSync(fd);
}

if (require.main === module) child(process.argv[2]);
