/**
 * QEMU end-to-end harness: a Linux guest (the host's Debian kernel plus a busybox initramfs whose /init
 * is test/e2e/guest/init.sh) with a virtio-net NIC on a vhost-user socket, and host-side helpers
 * (network namespaces, a TCP sink and source, md5) for tests that move traffic through the back-end.
 *
 * Facts this relies on (see the project's PEERS.md): no usable KVM, so TCG with `-cpu max`; QEMU 7.2
 * under TCG crashes when a vhost-user NIC uses MSI-X, so `vectors=0`; guest memory must be shared
 * (memfd, share=on); the uncompressed vmlinux boots (PVH) about 2 s faster than the bzImage.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { IN_CI, findProgram } from '../helpers/peers';

// ---------------------------------------------------------------------------------------------------
// Tools

/** The Debian package that provides each program the harness runs. */
const DEBIAN_PACKAGE: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  busybox: 'busybox-static',
  cpio: 'cpio',
  ip: 'iproute2',
  xz: 'xz-utils',
  zstd: 'zstd',
};

/** Fails in CI (where the e2e tests must run), returns null elsewhere (where they may be skipped). */
function missing(what: string, fix: string): null {
  if (IN_CI) throw new Error(`QEMU e2e tests: ${what}; ${fix}`);
  return null;
}

/**
 * The absolute path of program `name` on PATH. When it is missing: in CI (CI=true) throws, naming the
 * Debian package to install; elsewhere returns null so that the test can skip.
 */
export function requireTool(name: string): string | null {
  const found = findProgram(name);
  if (found) return found;
  const pkg = DEBIAN_PACKAGE[name] ?? name;
  return missing(`${name} is not on PATH`, `install it: apt-get install -y ${pkg}`);
}

/** Whether the ELF file at `file` is statically linked (has no PT_INTERP program header). */
function isStaticElf(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(64 * 1024);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    if (n < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2) return false; // ELF64 only
    const phoff = Number(head.readBigUInt64LE(0x20));
    const phentsize = head.readUInt16LE(0x36);
    const phnum = head.readUInt16LE(0x38);
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      if (at + 4 > n) return false;
      if (head.readUInt32LE(at) === 3 /* PT_INTERP */) return false;
    }
    return true;
  } finally {
    fs.closeSync(fd);
  }
}

export interface KernelInfo {
  version: string;
  /** The bzImage, /boot/vmlinuz-<version>. */
  image: string;
  /** /lib/modules/<version>. */
  modulesDir: string;
  /** /boot/config-<version>, if present. */
  config: string | null;
}

/**
 * The newest kernel in /boot whose modules are installed (or the one VHOST_USER_E2E_KERNEL names, a
 * /boot/vmlinuz-<version> path). Null if there is none.
 */
export function findKernel(): KernelInfo | null {
  const forced = process.env.VHOST_USER_E2E_KERNEL;
  const images = forced
    ? [forced]
    : (fs.existsSync('/boot') ? fs.readdirSync('/boot') : [])
        .filter((f) => f.startsWith('vmlinuz-'))
        .map((f) => path.join('/boot', f));
  const kernels: KernelInfo[] = [];
  for (const image of images) {
    const version = path.basename(image).replace(/^vmlinuz-/, '');
    const modulesDir = path.join('/lib/modules', version);
    try {
      fs.accessSync(image, fs.constants.R_OK);
      fs.accessSync(path.join(modulesDir, 'modules.dep'), fs.constants.R_OK);
    } catch {
      continue;
    }
    const config = path.join('/boot', `config-${version}`);
    kernels.push({ version, image, modulesDir, config: fs.existsSync(config) ? config : null });
  }
  kernels.sort((a, b) => b.version.localeCompare(a.version, 'en', { numeric: true }));
  return kernels[0] ?? null;
}

/**
 * Why the QEMU e2e tests cannot run here, or null if they can. In CI a missing piece throws instead
 * (naming the Debian package), so that the tests fail loudly rather than skip.
 */
export function qemuMissing(): string | null {
  for (const tool of ['qemu-system-x86_64', 'busybox', 'cpio']) {
    if (!requireTool(tool)) return `${tool} is not installed (Debian package ${DEBIAN_PACKAGE[tool]})`;
  }
  if (!findKernel()) {
    missing('no readable kernel in /boot with modules in /lib/modules', 'install it: apt-get install -y linux-image-amd64');
    return 'no readable kernel in /boot with its modules in /lib/modules (Debian package linux-image-amd64)';
  }
  const busybox = fs.realpathSync(requireTool('busybox') as string);
  if (!isStaticElf(busybox)) {
    missing(`${busybox} is dynamically linked`, 'install the static one: apt-get install -y busybox-static');
    return `${busybox} is not statically linked (Debian package busybox-static)`;
  }
  return null;
}

/** True when the QEMU e2e tests can run; throws in CI when they cannot (see qemuMissing). */
export function qemuAvailable(): boolean {
  const why = qemuMissing();
  if (why) console.warn(`skipping QEMU e2e tests: ${why}`);
  return why === null;
}

// ---------------------------------------------------------------------------------------------------
// Processes

interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function run(cmd: string, args: readonly string[], opts: SpawnOptions & { input?: Buffer } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const { input, ...spawnOpts } = opts;
    const child = spawn(cmd, args, { ...spawnOpts, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    child.stdin?.on('error', () => {}); // EPIPE if the program exits before reading all of it
    child.stdin?.end(input);
  });
}

async function runOk(cmd: string, args: readonly string[], opts: SpawnOptions & { input?: Buffer } = {}): Promise<Buffer> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

// ---------------------------------------------------------------------------------------------------
// Kernel and initramfs

/** The guest's /init. */
export const INIT_SCRIPT = path.join(__dirname, 'guest', 'init.sh');

/** The modules the guest needs for virtio-net over PCI; their dependencies come from modules.dep. */
export const GUEST_MODULES = ['virtio_pci', 'virtio_net'];

/** Bumped when the layout of the cached files changes, so that stale caches are rebuilt. */
const CACHE_FORMAT = 1;

export interface BootFiles {
  /** The kernel QEMU boots: the uncompressed vmlinux when it could be extracted, else the bzImage. */
  kernel: string;
  initrd: string;
  version: string;
  /** Module names in the order /init loads them. */
  modules: string[];
}

const moduleName = (file: string): string =>
  path
    .basename(file)
    .replace(/\.ko(\.(xz|zst|gz))?$/, '')
    .replace(/-/g, '_');

/** `roots` and everything they depend on, dependencies first, as paths under `modulesDir`. */
export function resolveModules(modulesDir: string, roots: readonly string[]): { name: string; file: string }[] {
  const entries = new Map<string, { file: string; deps: string[] }>();
  for (const line of fs.readFileSync(path.join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(moduleName);
    entries.set(moduleName(file), { file, deps });
  }
  const builtinFile = path.join(modulesDir, 'modules.builtin');
  const builtin = new Set(
    fs.existsSync(builtinFile) ? fs.readFileSync(builtinFile, 'utf8').split('\n').filter(Boolean).map(moduleName) : [],
  );
  const order: { name: string; file: string }[] = [];
  const seen = new Set<string>();
  const visit = (name: string, from: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    const entry = entries.get(name);
    if (!entry) {
      if (builtin.has(name)) return; // built into this kernel: nothing to load
      throw new Error(`module ${name} (needed by ${from}) is not in ${modulesDir}/modules.dep`);
    }
    for (const dep of entry.deps) visit(dep, name);
    order.push({ name, file: path.join(modulesDir, entry.file) });
  };
  for (const root of roots) visit(root.replace(/-/g, '_'), 'the guest');
  return order;
}

async function moduleBytes(file: string): Promise<Buffer> {
  if (file.endsWith('.ko')) return fs.readFileSync(file);
  if (file.endsWith('.ko.gz')) return zlib.gunzipSync(fs.readFileSync(file));
  const tool = file.endsWith('.ko.xz') ? 'xz' : file.endsWith('.ko.zst') ? 'zstd' : null;
  if (!tool) throw new Error(`unknown module compression: ${file}`);
  const exe = requireTool(tool);
  if (!exe) throw new Error(`${file} is compressed: install ${DEBIAN_PACKAGE[tool]} to unpack it`);
  return runOk(exe, ['-dc', file]);
}

/**
 * The vmlinux inside a bzImage: the setup header (boot protocol >= 2.08) gives the offset and length of
 * the compressed payload. Null when it cannot be done cheaply (old header, unknown compression, no tool).
 */
async function extractVmlinux(image: string): Promise<Buffer | null> {
  const d = fs.readFileSync(image);
  if (d.length < 0x250 || d.readUInt32LE(0x202) !== 0x53726448 /* "HdrS" */ || d.readUInt16LE(0x206) < 0x208) {
    return null;
  }
  const setupSects = d[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + d.readUInt32LE(0x248);
  const payload = d.subarray(start, start + d.readUInt32LE(0x24c));
  let out: Buffer | null = null;
  try {
    if (payload[0] === 0x1f && payload[1] === 0x8b) {
      out = zlib.gunzipSync(payload);
    } else if (payload.subarray(0, 6).equals(Buffer.from('fd377a585a00', 'hex'))) {
      const xz = findProgram('xz');
      if (xz) out = await runOk(xz, ['-dc', '--single-stream'], { input: payload });
    } else if (payload.readUInt32LE(0) === 0xfd2fb528) {
      // The kernel appends the uncompressed size (4 bytes) after the zstd frame.
      const zstd = findProgram('zstd');
      if (zstd) out = await runOk(zstd, ['-dc'], { input: payload.subarray(0, payload.length - 4) });
    }
  } catch {
    return null;
  }
  return out && out.readUInt32BE(0) === 0x7f454c46 ? out : null;
}

function writeAtomic(file: string, data: Buffer | string): void {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/**
 * The kernel to boot, cached in `cacheDir`: the vmlinux extracted from the bzImage when the kernel can
 * boot as a PVH ELF (CONFIG_PVH=y), else the bzImage itself.
 */
async function bootableKernel(kernel: KernelInfo, cacheDir: string): Promise<string> {
  const st = fs.statSync(kernel.image);
  const key = `${CACHE_FORMAT} ${kernel.image} ${st.size} ${st.mtimeMs}`;
  const vmlinux = path.join(cacheDir, 'vmlinux');
  const keyFile = path.join(cacheDir, 'vmlinux.key');
  const unusable = path.join(cacheDir, 'vmlinux.unusable');
  if (fs.existsSync(vmlinux) && fs.existsSync(keyFile) && fs.readFileSync(keyFile, 'utf8') === key) return vmlinux;
  if (fs.existsSync(unusable) && fs.readFileSync(unusable, 'utf8') === key) return kernel.image;
  const pvh = kernel.config !== null && /^CONFIG_PVH=y$/m.test(fs.readFileSync(kernel.config, 'utf8'));
  const elf = pvh ? await extractVmlinux(kernel.image) : null;
  if (!elf) {
    writeAtomic(unusable, key);
    return kernel.image;
  }
  writeAtomic(vmlinux, elf);
  writeAtomic(keyFile, key);
  return vmlinux;
}

/** The directory the kernel and initramfs are cached in. */
export function cacheDirFor(version: string): string {
  return path.join(os.tmpdir(), `vhost-user-e2e-${version}`);
}

async function build(): Promise<BootFiles> {
  const kernel = findKernel();
  if (!kernel) throw new Error('no kernel in /boot with modules in /lib/modules (install linux-image-amd64)');
  const busybox = requireTool('busybox');
  const cpio = requireTool('cpio');
  if (!busybox || !cpio) throw new Error('busybox and cpio are needed to build the initramfs');
  const busyboxReal = fs.realpathSync(busybox);
  const cacheDir = cacheDirFor(kernel.version);
  fs.mkdirSync(cacheDir, { recursive: true });

  const kernelPath = await bootableKernel(kernel, cacheDir);
  const modules = resolveModules(kernel.modulesDir, GUEST_MODULES);
  const init = fs.readFileSync(INIT_SCRIPT);

  const hash = crypto.createHash('sha256');
  hash.update(`${CACHE_FORMAT}\n`).update(init);
  for (const f of [busyboxReal, ...modules.map((m) => m.file)]) {
    const st = fs.statSync(f);
    hash.update(`\n${f} ${st.size} ${st.mtimeMs}`);
  }
  const initrd = path.join(cacheDir, `initrd-${hash.digest('hex').slice(0, 16)}.cpio.gz`);
  const result: BootFiles = { kernel: kernelPath, initrd, version: kernel.version, modules: modules.map((m) => m.name) };
  if (fs.existsSync(initrd)) return result;

  const stage = fs.mkdtempSync(path.join(cacheDir, 'stage-'));
  try {
    for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'root', 'etc', 'lib/modules']) {
      fs.mkdirSync(path.join(stage, dir), { recursive: true });
    }
    fs.copyFileSync(busyboxReal, path.join(stage, 'bin/busybox'));
    fs.chmodSync(path.join(stage, 'bin/busybox'), 0o755);
    // Applet links made here save the guest a `busybox --install -s` (init.sh falls back to it).
    const list = await run(busyboxReal, ['--list-full']);
    if (list.code === 0) {
      for (const applet of list.stdout.toString().split('\n').filter(Boolean)) {
        const link = path.join(stage, applet);
        if (applet === 'bin/busybox' || fs.existsSync(link)) continue;
        fs.mkdirSync(path.dirname(link), { recursive: true });
        fs.symlinkSync('/bin/busybox', link);
      }
    }
    fs.copyFileSync(INIT_SCRIPT, path.join(stage, 'init'));
    fs.chmodSync(path.join(stage, 'init'), 0o755);
    for (const m of modules) fs.writeFileSync(path.join(stage, 'lib/modules', `${m.name}.ko`), await moduleBytes(m.file));
    fs.writeFileSync(path.join(stage, 'lib/modules/order'), modules.map((m) => m.name).join('\n') + '\n');

    const files = await runOk('find', ['.', '-mindepth', '1'], { cwd: stage });
    const list0 = Buffer.from(
      files
        .toString()
        .split('\n')
        .filter(Boolean)
        .sort()
        .map((f) => f + '\0')
        .join(''),
    );
    const archive = await runOk(cpio, ['--null', '-o', '-H', 'newc', '-R', '0:0', '--quiet'], { cwd: stage, input: list0 });
    writeAtomic(initrd, zlib.gzipSync(archive, { level: 6 }));
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  for (const f of fs.readdirSync(cacheDir)) {
    if (/^initrd-[0-9a-f]+\.cpio\.gz$/.test(f) && path.join(cacheDir, f) !== initrd) {
      fs.rmSync(path.join(cacheDir, f), { force: true });
    }
  }
  return result;
}

let building: Promise<BootFiles> | null = null;

/**
 * The kernel and a gzip'd cpio initramfs (busybox, /init from guest/init.sh, the virtio-net modules),
 * built once and cached under os.tmpdir()/vhost-user-e2e-<kernel version>/; rebuilt when init.sh, busybox
 * or the modules change.
 */
export function buildInitramfs(): Promise<BootFiles> {
  building ??= build().catch((err: unknown) => {
    building = null;
    throw err;
  });
  return building;
}

// ---------------------------------------------------------------------------------------------------
// The guest

export const GUEST_MAC = '52:54:00:12:34:56';
export const GUEST_IP = '10.0.2.15';
export const HOST_IP = '10.0.2.1';
export const PREFIX_LEN = 24;

export interface GuestOptions {
  /** The vhost-user socket. Required unless `netdev` replaces the vhost-user NIC. */
  socketPath?: string;
  /** QEMU listens on the socket (`server=on,wait=off`) and the back-end connects as a client. */
  server?: boolean;
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
  /** Guest RAM in MiB. Default 256. */
  memoryMiB?: number;
  /** Copy each console line to stderr as it arrives. Default: VHOST_USER_E2E_ECHO=1 in the environment. */
  echo?: boolean;
  /** More QEMU arguments. */
  extraArgs?: readonly string[];
}

export interface GuestExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Guest {
  /** argv, QEMU first. */
  readonly args: readonly string[];
  /** The command line, shell-quoted, for logs. */
  readonly commandLine: string;
  /** Date.now() when QEMU was spawned. */
  readonly startedAt: number;
  readonly pid: number | undefined;
  /** The serial console so far (\r removed). */
  output(): string;
  /** QEMU's stderr so far. */
  stderr(): string;
  /**
   * Resolves with the first match of `re` in the console output from offset `since` (default 0) on,
   * searched in complete lines only (so `.*` never sees half a line); the match's `index` is an offset
   * into output(), e.g. the `since` of the next wait. Rejects after `timeoutMs` (default 30 s), when QEMU
   * exits first, or when the guest reports VHU-ERROR or a kernel panic.
   */
  waitFor(re: RegExp, timeoutMs?: number, since?: number): Promise<RegExpMatchArray>;
  /** Waits for `VHU-RESULT <scenario> k=v ...` and returns its fields. */
  result(scenario: string, timeoutMs?: number): Promise<Record<string, string>>;
  /** Resolves when QEMU has exited and its output is collected. */
  readonly exited: Promise<GuestExit>;
  /** SIGTERM, then SIGKILL after 3 s; resolves when QEMU is gone. Safe to call more than once. */
  kill(): Promise<GuestExit>;
}

/** virtio and virtio-net feature bits by number (virtio 1.2, 5.1.3 and 6). */
export const VIRTIO_NET_FEATURE_NAMES: Readonly<Record<number, string>> = {
  0: 'CSUM', 1: 'GUEST_CSUM', 2: 'CTRL_GUEST_OFFLOADS', 3: 'MTU', 5: 'MAC', 7: 'GUEST_TSO4', 8: 'GUEST_TSO6',
  9: 'GUEST_ECN', 10: 'GUEST_UFO', 11: 'HOST_TSO4', 12: 'HOST_TSO6', 13: 'HOST_ECN', 14: 'HOST_UFO',
  15: 'MRG_RXBUF', 16: 'STATUS', 17: 'CTRL_VQ', 18: 'CTRL_RX', 19: 'CTRL_VLAN', 20: 'CTRL_RX_EXTRA',
  21: 'GUEST_ANNOUNCE', 22: 'MQ', 23: 'CTRL_MAC_ADDR', 24: 'NOTIFY_ON_EMPTY', 27: 'ANY_LAYOUT',
  28: 'RING_INDIRECT_DESC', 29: 'RING_EVENT_IDX', 32: 'VERSION_1', 33: 'ACCESS_PLATFORM', 34: 'RING_PACKED',
  35: 'IN_ORDER', 36: 'ORDER_PLATFORM', 37: 'SR_IOV', 38: 'NOTIFICATION_DATA', 61: 'RSC_EXT', 62: 'STANDBY',
};

/**
 * Names of the features set in the guest's view (`features=` of the link scenario: the virtio device's
 * sysfs `features`, one character per bit, bit 0 first).
 */
export function guestFeatureNames(bits: string): string[] {
  const names: string[] = [];
  for (let i = 0; i < bits.length; i++) if (bits[i] === '1') names.push(VIRTIO_NET_FEATURE_NAMES[i] ?? `bit${i}`);
  return names;
}

/** Fields of a `VHU-RESULT <scenario> k=v ...` line, or null if `line` is not one for `scenario`. */
export function parseResult(line: string, scenario?: string): Record<string, string> | null {
  const m = /^VHU-RESULT (\S+)(?: (.*))?$/.exec(line.trim());
  if (!m || (scenario !== undefined && m[1] !== scenario)) return null;
  const fields: Record<string, string> = { scenario: m[1] };
  for (const word of (m[2] ?? '').split(/\s+/).filter(Boolean)) {
    const eq = word.indexOf('=');
    if (eq > 0) fields[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return fields;
}

const FAIL_RE = /^(VHU-ERROR .*|.*Kernel panic.*)$/m;

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Last resort if a test forgot its teardown: no QEMU (or netns helper) outlives the test process.
    process.once('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
}

/** Kills every QEMU and TCP helper this process started that is still running. */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...liveChildren].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
          setTimeout(() => c.kill('SIGKILL'), 3000).unref();
        }),
    ),
  );
}

const shellQuote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/** The QEMU argv (without the program) for `opts` and `boot`. */
export function qemuArgs(boot: BootFiles, opts: GuestOptions): string[] {
  const mem = `${opts.memoryMiB ?? 256}M`;
  for (const [k, v] of Object.entries(opts.params ?? {})) {
    if (!/^[a-z0-9_]+$/.test(k) || /\s/.test(String(v))) throw new Error(`guest parameter vhu.${k}=${v}: want [a-z0-9_] names, no spaces`);
  }
  const params: Record<string, string | number> = {
    run: (opts.scenarios ?? ['link']).join(','),
    timeout: opts.guestTimeoutSec ?? 120,
    ...opts.params,
  };
  const append = [
    'console=ttyS0',
    'quiet',
    'panic=-1',
    ...Object.entries(params).map(([k, v]) => `vhu.${k}=${v}`),
    ...(typeof opts.kernelParams === 'string' ? [opts.kernelParams] : (opts.kernelParams ?? [])),
  ]
    .filter(Boolean)
    .join(' ');
  let netdev = opts.netdev;
  const chardev: string[] = [];
  if (!netdev) {
    if (!opts.socketPath) throw new Error('startGuest: socketPath is required for a vhost-user NIC');
    chardev.push('-chardev', `socket,id=c0,path=${opts.socketPath}${opts.server ? ',server=on,wait=off' : ''}`);
    netdev = 'vhost-user,id=n0,chardev=c0';
  }
  const extra = typeof opts.deviceOptions === 'string' ? [opts.deviceOptions] : (opts.deviceOptions ?? []);
  const device = ['virtio-net-pci', 'netdev=n0', `mac=${opts.mac ?? GUEST_MAC}`, 'romfile=', 'vectors=0', ...extra]
    .filter(Boolean)
    .join(',');
  return [
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-accel', 'tcg',
    '-cpu', 'max',
    '-m', mem,
    '-machine', 'q35,memory-backend=mem',
    '-object', `memory-backend-memfd,id=mem,size=${mem},share=on`,
    '-chardev', 'stdio,id=con,signal=off',
    '-serial', 'chardev:con',
    '-kernel', boot.kernel,
    '-initrd', boot.initrd,
    '-append', append,
    ...chardev,
    '-netdev', netdev,
    '-device', device,
    ...(opts.extraArgs ?? []),
  ];
}

/**
 * Boots the guest. The caller must `kill()` it in teardown (or call killAll()); the guest also powers
 * itself off after its scenarios, and after `guestTimeoutSec` at the latest.
 */
export async function startGuest(opts: GuestOptions): Promise<Guest> {
  const qemu = requireTool('qemu-system-x86_64');
  if (!qemu) throw new Error('qemu-system-x86_64 is not installed (Debian package qemu-system-x86)');
  const boot = await buildInitramfs();
  const args = [qemu, ...qemuArgs(boot, opts)];
  const argv = opts.netns ? [requireTool('ip') ?? 'ip', 'netns', 'exec', opts.netns, ...args] : args;
  const echo = opts.echo ?? process.env.VHOST_USER_E2E_ECHO === '1';

  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  const startedAt = Date.now();
  let out = '';
  let err = '';
  let complete = 0; // out[0..complete) ends with a newline
  let done = false;
  let echoed = 0;

  type Waiter = { check: () => boolean };
  const waiters = new Set<Waiter>();
  const poke = (): void => {
    for (const w of [...waiters]) if (w.check()) waiters.delete(w);
  };

  child.stdout?.setEncoding('utf8'); // a character split between chunks is decoded whole
  child.stdout?.on('data', (d: string) => {
    out += d.replace(/\r/g, '');
    const nl = out.lastIndexOf('\n');
    if (nl >= 0) complete = nl + 1;
    if (echo) {
      process.stderr.write(
        out
          .slice(echoed, complete)
          .split('\n')
          .filter((l, i, a) => i < a.length - 1 || l)
          .map((l) => `[guest +${((Date.now() - startedAt) / 1000).toFixed(1)}s] ${l}\n`)
          .join(''),
      );
      echoed = complete;
    }
    poke();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    if (echo) process.stderr.write(`[qemu stderr] ${d.toString()}`);
  });

  const exited = new Promise<GuestExit>((resolve) => {
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (done) return;
      done = true;
      complete = out.length;
      poke();
      resolve({ code, signal });
    };
    child.on('error', (e) => {
      err += `${argv[0]}: ${e.message}\n`;
      if (child.pid === undefined) finish(null, null); // never started: no 'close' to wait for
    });
    child.on('close', finish);
  });

  const tail = (): string => {
    const lines = out.trimEnd().split('\n').slice(-25).join('\n');
    return `\n--- console (last lines) ---\n${lines}\n--- qemu stderr ---\n${err.trim()}`;
  };

  const waitFor = (re: RegExp, timeoutMs = 30_000, since = 0): Promise<RegExpMatchArray> => {
    const plain = new RegExp(re.source, re.flags.replace(/[gy]/g, ''));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`guest: no ${plain} within ${timeoutMs} ms${tail()}`));
      }, timeoutMs);
      const w: Waiter = {
        check: () => {
          const text = out.slice(since, complete);
          const m = plain.exec(text);
          if (m) {
            clearTimeout(timer);
            m.index = (m.index ?? 0) + since; // an offset into output(), usable as the next `since`
            resolve(m);
            return true;
          }
          const fail = FAIL_RE.exec(text);
          if (fail || done) {
            clearTimeout(timer);
            const why = fail ? `guest failed: ${fail[1]}` : `QEMU exited (${child.exitCode ?? child.signalCode})`;
            reject(new Error(`${why} before ${plain} appeared${tail()}`));
            return true;
          }
          return false;
        },
      };
      if (!w.check()) waiters.add(w);
    });
  };

  let killing: Promise<GuestExit> | null = null;
  const kill = (): Promise<GuestExit> => {
    if (!killing) {
      killing = done || child.exitCode !== null || child.signalCode !== null ? exited : (child.kill('SIGTERM'), exited);
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      void exited.then(() => clearTimeout(timer));
    }
    return killing;
  };

  return {
    args,
    commandLine: argv.map(shellQuote).join(' '),
    startedAt,
    pid: child.pid,
    output: () => out,
    stderr: () => err,
    waitFor,
    result: async (scenario, timeoutMs) => {
      const esc = scenario.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const m = await waitFor(new RegExp(`^VHU-RESULT ${esc}(?: .*)?$`, 'm'), timeoutMs);
      return parseResult(m[0], scenario) as Record<string, string>;
    },
    exited,
    kill,
  };
}

// ---------------------------------------------------------------------------------------------------
// Host side: network namespaces, a TCP sink and source, md5

/**
 * Why network-namespace tests cannot run here, or null. Needs `ip` (iproute2) and root; in CI a missing
 * piece throws.
 */
export function netnsMissing(): string | null {
  if (!requireTool('ip')) return 'ip is not installed (Debian package iproute2)';
  if (process.getuid?.() !== 0) {
    missing('ip netns needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)', 'run the tests as root');
    return 'ip netns needs root';
  }
  return null;
}

const ipTool = (): string => requireTool('ip') ?? 'ip';

/** Runs `ip ARGS...`; throws with its stderr on failure. */
export async function ip(...args: string[]): Promise<string> {
  return (await runOk(ipTool(), args)).toString();
}

/** Creates network namespace `name` (replacing a stale one of that name) with lo up. */
export async function createNetns(name: string): Promise<void> {
  await deleteNetns(name);
  await ip('netns', 'add', name);
  await ip('-n', name, 'link', 'set', 'lo', 'up');
}

/** Deletes network namespace `name` if it exists (its interfaces go with it). */
export async function deleteNetns(name: string): Promise<void> {
  if (fs.existsSync(path.join('/run/netns', name)) || fs.existsSync(path.join('/var/run/netns', name))) {
    await run(ipTool(), ['netns', 'del', name]);
  }
}

/** Spawns `cmd args...` inside network namespace `name`. The caller owns the process. */
export function inNetns(name: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(ipTool(), ['netns', 'exec', name, cmd, ...args], opts);
  track(child);
  return child;
}

/** Runs `cmd args...` inside network namespace `name` to completion; returns its stdout, throws on failure. */
export async function netnsExec(name: string, cmd: string, args: readonly string[]): Promise<string> {
  return (await runOk(ipTool(), ['netns', 'exec', name, cmd, ...args])).toString();
}

/**
 * Moves interface `ifname` (e.g. the back-end's tap) into namespace `ns`, gives it `cidr` (default
 * 10.0.2.1/24, the guest's vhu.host) and brings it up.
 */
export async function moveLinkToNetns(ifname: string, ns: string, cidr = `${HOST_IP}/${PREFIX_LEN}`): Promise<void> {
  await ip('link', 'set', 'dev', ifname, 'netns', ns);
  await ip('-n', ns, 'addr', 'add', cidr, 'dev', ifname);
  await ip('-n', ns, 'link', 'set', 'dev', ifname, 'up');
}

/**
 * Creates tap `ifname` in namespace `ns` (persistent, so QEMU's `-netdev tap,ifname=...` attaches to it)
 * with `cidr` (default 10.0.2.1/24) and brings it up. Its carrier comes when a process attaches.
 */
export async function addTap(ns: string, ifname: string, cidr = `${HOST_IP}/${PREFIX_LEN}`): Promise<void> {
  await ip('-n', ns, 'tuntap', 'add', 'dev', ifname, 'mode', 'tap');
  await ip('-n', ns, 'addr', 'add', cidr, 'dev', ifname);
  await ip('-n', ns, 'link', 'set', 'dev', ifname, 'up');
}

export interface TcpTransfer {
  bytes: number;
  md5: string;
  /** From the connection's accept to its end. */
  ms: number;
  /** sink: 'count' (got the bytes asked for) or 'eof'; source: 'sent'; or 'error:<code>'. */
  how: string;
}

export interface TcpPeer {
  /** Resolves when the peer is listening. */
  readonly ready: Promise<void>;
  /** Resolves when one connection has been served. Rejects if the process ends without serving one. */
  readonly done: Promise<TcpTransfer>;
  readonly process: ChildProcess;
  kill(): void;
}

// Both peers listen (the guest's nc is the client both ways), serve one connection, print one JSON line
// per event on stdout (written synchronously, so none is lost on exit) and exit.
const PEER_COMMON = `
const net = require('net'), fs = require('fs'), crypto = require('crypto');
const say = (o) => fs.writeSync(1, JSON.stringify(o) + '\\n');
const [host, port, arg] = [process.argv[1], Number(process.argv[2]), process.argv[3]];
let served = false;
function serve(onConn) {
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    server.close();
    if (served) return sock.destroy();
    served = true;
    const t0 = Date.now(), h = crypto.createHash('md5');
    let n = 0, finished = false;
    const finish = (how) => {
      if (finished) return;
      finished = true;
      say({ event: 'done', bytes: n, md5: h.digest('hex'), ms: Date.now() - t0, how });
      sock.end();
      sock.on('close', () => process.exit(0));
      setTimeout(() => process.exit(0), 2000);
    };
    sock.on('error', (e) => finish('error:' + e.code));
    onConn(sock, (d) => { if (!finished) { h.update(d); n += d.length; } }, () => n, finish);
  });
  server.on('error', (e) => { say({ event: 'error', message: e.message }); process.exit(1); });
  server.listen(port, host, () => say({ event: 'listening', port }));
}
`;

const SINK_SCRIPT = `${PEER_COMMON}
const want = arg ? Number(arg) : Infinity;
serve((sock, count, got, finish) => {
  sock.on('data', (d) => {
    const left = want - got();
    count(d.length > left ? d.subarray(0, left) : d);
    if (got() >= want) finish('count');
  });
  sock.on('end', () => finish('eof'));
});
`;

const SOURCE_SCRIPT = `${PEER_COMMON}
serve((sock, count, got, finish) => {
  const file = fs.createReadStream(arg);
  file.on('data', (d) => count(d));
  file.on('error', (e) => finish('error:' + e.code));
  file.on('end', () => finish('sent'));
  file.pipe(sock, { end: false });
});
`;

function startPeer(script: string, opts: { netns?: string; host?: string; port: number }, arg: string): TcpPeer {
  const args = ['-e', script, opts.host ?? '0.0.0.0', String(opts.port), arg];
  const child = opts.netns
    ? inNetns(opts.netns, process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (!opts.netns) track(child);
  let stderr = '';
  let buf = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let onReady: () => void = () => {};
  let onDone: (t: TcpTransfer) => void = () => {};
  let failed: (e: Error) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    failed = reject;
  });
  const done = new Promise<TcpTransfer>((resolve, reject) => {
    onDone = resolve;
    const prev = failed;
    failed = (e) => {
      prev(e);
      reject(e);
    };
  });
  done.catch(() => {}); // a caller that only awaits `ready` must not get an unhandled rejection
  ready.catch(() => {});
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        const ev = JSON.parse(line) as { event: string } & TcpTransfer & { message?: string };
        if (ev.event === 'listening') onReady();
        else if (ev.event === 'done') onDone({ bytes: ev.bytes, md5: ev.md5, ms: ev.ms, how: ev.how });
        else if (ev.event === 'error') failed(new Error(`tcp peer on port ${opts.port}: ${ev.message}`));
      } catch {
        // not ours
      }
    }
  });
  child.on('close', (code, signal) =>
    failed(new Error(`tcp peer on port ${opts.port} ended (${code ?? signal}) without serving a connection: ${stderr.trim()}`)),
  );
  return { ready, done, process: child, kill: () => void child.kill('SIGKILL') };
}

/**
 * Listens on host:port (default 0.0.0.0, in `netns` if given), takes one connection and reads until
 * `bytes` bytes (if given) or EOF; `done` gives the byte count and md5 of what arrived.
 */
export function startTcpSink(opts: { netns?: string; host?: string; port: number; bytes?: number }): TcpPeer {
  return startPeer(SINK_SCRIPT, opts, opts.bytes === undefined ? '' : String(opts.bytes));
}

/** Listens on host:port (in `netns` if given), sends `file` to the first connection and closes it. */
export function startTcpSource(opts: { netns?: string; host?: string; port: number; file: string }): TcpPeer {
  return startPeer(SOURCE_SCRIPT, opts, opts.file);
}

export function md5(data: Buffer | string): string {
  return crypto.createHash('md5').update(data).digest('hex');
}

export function md5File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('md5');
    fs.createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Writes `bytes` random bytes to `file`; returns their md5. */
export async function writeRandomFile(file: string, bytes: number): Promise<string> {
  const h = crypto.createHash('md5');
  const fd = fs.openSync(file, 'w');
  try {
    for (let left = bytes; left > 0; ) {
      const chunk = crypto.randomBytes(Math.min(left, 1 << 20));
      h.update(chunk);
      fs.writeSync(fd, chunk);
      left -= chunk.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}
