/**
 * Host set-up for a benchmark: the checks before it starts, the facts about the machine, a frozen copy
 * of the code under test, hugepages when asked for, and putting everything back afterwards.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { killAllBackends } from './backends';
import { fail } from './cli';
import { cleanupPrefix, ensureHugepages, killAllTestpmd } from './testpmd';
import type { Report } from './types';

// The package: dist/bench/host.js -> the folder holding dist/ and build/.
export const ROOT = path.resolve(__dirname, '..', '..');

function sh(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Fails with one line when something the benchmark needs is missing. */
export function checkPrerequisites(): void {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cli.js'))) fail('dist/cli.js is missing: build with `npx tsc -p tsconfig.json` first');
  if (!fs.existsSync(path.join(ROOT, 'build', 'Release', 'vhost_user.node')))
    fail('the native addon is missing: `npm run build:native` first');
  if (!sh('sh', ['-c', 'command -v taskset'])) fail('taskset (util-linux) is needed to pin the processes');
}

/** The harness itself (and every child it starts, unless pinned elsewhere) stays off the back-end's CPU. */
export function pinHarness(cpu: number): void {
  spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
}

/** When the back-end's build outputs were last written (another build during a run mixes versions). */
export function buildStamp(): string {
  const m = (f: string) => {
    try {
      return fs.statSync(path.join(ROOT, f)).mtime.toISOString();
    } catch {
      return 'absent';
    }
  };
  return `addon ${m('build/Release/vhost_user.node')}, dist ${m('dist/cli.js')}`;
}

export function hostInfo(): Report['host'] {
  let cpuModel = 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  } catch {
    // keep unknown
  }
  const dpdk = sh('pkg-config', ['--modversion', 'libdpdk']) ?? sh('dpkg-query', ['-W', '-f', '${Version}', 'dpdk']);
  const commit = sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no']);
  return {
    nproc: os.cpus().length,
    cpuModel,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    dpdk,
    commit: commit ? `${commit}${dirty ? ' (with uncommitted changes)' : ''}` : null,
    build: buildStamp(),
  };
}

/**
 * Copies of dist/ (the benchmark's own compiled code included) and the native addon, taken when the
 * benchmark starts. Every process it starts runs these (the addon through VHOST_USER_ADDON), so a
 * rebuild in the checkout meanwhile (`node-gyp rebuild` deletes build/ altogether) neither breaks the
 * run nor mixes two builds in one report.
 */
export interface Code {
  /** Our CLI (the back-end under test). */
  cli: string;
  /** Our front-end (VirtioNetDriver) as a child process. */
  frontendScript: string;
  /** The cross-CPU probe's child. */
  cpuProbeScript: string;
  /** The 'js' back-end: the js port with a MAC-swap echo in JavaScript. */
  jsEcho: string;
  env: NodeJS.ProcessEnv;
}

function snapshotCode(dir: string): Code {
  const root = path.join(dir, 'code');
  fs.cpSync(path.join(ROOT, 'dist'), path.join(root, 'dist'), { recursive: true });
  const addon = path.join(root, 'vhost_user.node');
  fs.copyFileSync(process.env.VHOST_USER_ADDON ?? path.join(ROOT, 'build', 'Release', 'vhost_user.node'), addon);
  const benchDir = path.join(root, 'dist', 'bench');
  return {
    cli: path.join(root, 'dist', 'cli.js'),
    frontendScript: path.join(benchDir, 'ours_frontend.js'),
    cpuProbeScript: path.join(benchDir, 'measure', 'cpu_probe.js'),
    jsEcho: path.join(benchDir, 'js_echo.js'),
    env: { ...process.env, VHOST_USER_ADDON: addon },
  };
}

/** What the machine held before a run with --memory hugepages, to put back afterwards. */
interface HugeState {
  nr: number;
  mounted: boolean;
  dirExisted: boolean;
}

function hugepagesSetup(): HugeState {
  const nr = Number(fs.readFileSync('/proc/sys/vm/nr_hugepages', 'utf8').trim());
  const dirExisted = fs.existsSync('/dev/hugepages');
  const mounted = fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === '/dev/hugepages' && l.split(' ')[2] === 'hugetlbfs');
  // Front-end 256 MiB + DPDK back-end 256 MiB, with room to spare.
  ensureHugepages(384);
  return { nr, mounted, dirExisted };
}

function hugepagesRestore(state: HugeState): void {
  const attempt = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      process.stderr.write(`bench: could not ${what}: ${(err as Error).message}\n`);
    }
  };
  for (const f of fs.existsSync('/dev/hugepages') ? fs.readdirSync('/dev/hugepages') : []) {
    if (f.startsWith(`vhu${process.pid}_`) || f.startsWith(`vhub${process.pid}_`))
      attempt(`remove /dev/hugepages/${f}`, () => fs.rmSync(path.join('/dev/hugepages', f), { force: true }));
  }
  if (!state.mounted) {
    const r = spawnSync('umount', ['/dev/hugepages'], { encoding: 'utf8' });
    if (r.status !== 0) process.stderr.write(`bench: umount /dev/hugepages failed: ${r.stderr}\n`);
    else if (!state.dirExisted) attempt('remove /dev/hugepages', () => fs.rmdirSync('/dev/hugepages'));
  }
  attempt('restore /proc/sys/vm/nr_hugepages', () => fs.writeFileSync('/proc/sys/vm/nr_hugepages', `${state.nr}\n`));
}

/** runTestpmd's own prefix is vhu<pid>_<n>_<random>: removes whatever an interrupted run left (hugepage files and EAL's runtime directory). */
function removeDpdkLeftovers(): void {
  const runtimeBase = process.getuid?.() === 0 ? '/var/run/dpdk' : path.join(process.env.XDG_RUNTIME_DIR ?? os.tmpdir(), 'dpdk');
  const prefixes = new Set<string>();
  for (const f of fs.existsSync(runtimeBase) ? fs.readdirSync(runtimeBase) : []) if (f.startsWith(`vhu${process.pid}_`)) prefixes.add(f);
  for (const f of fs.existsSync('/dev/hugepages') ? fs.readdirSync('/dev/hugepages') : []) {
    const m = /^(vhu\d+_\d+_[a-z0-9]+)map_/.exec(f);
    if (m && m[1].startsWith(`vhu${process.pid}_`)) prefixes.add(m[1]);
  }
  for (const p of prefixes) cleanupPrefix(p);
}

/** A benchmark's working folder (sockets, the frozen code) and what it changed on the host. */
export class Workspace {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-bench-'));
  readonly code = snapshotCode(this.dir);
  private huge: HugeState | null = null;
  private sockets = 0;

  useHugepages(): void {
    this.huge = hugepagesSetup();
  }

  /** A fresh socket path for the next run. */
  nextSocket(): string {
    return path.join(this.dir, `s${++this.sockets}.sock`);
  }

  /** Stops every process the benchmark started and puts the host back as found. */
  cleanup(): void {
    killAllTestpmd();
    killAllBackends();
    removeDpdkLeftovers();
    if (this.huge) hugepagesRestore(this.huge);
    this.huge = null;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
