/**
 * The guest's boot files: the kernel (see kernel.ts) and a gzip'd cpio initramfs holding a static
 * busybox, /init from init.sh next to this file, and the virtio-net modules of that kernel.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { CACHE_FORMAT, cacheDirFor, writeAtomic } from './cache';
import { bootableKernel, findKernel } from './kernel';
import { run, runOk } from './processes';
import { DEBIAN_PACKAGE, findTool, toolOrThrow } from './tools';

/**
 * The guest's /init: lib/guest/init.sh, found from the package's root so that dist/guest/ (where tsc puts
 * this file) and lib/guest/ (the tests) reach the same script; package.json "files" ships it.
 */
export const INIT_SCRIPT = path.resolve(__dirname, '..', '..', 'lib', 'guest', 'init.sh');

/** The modules the guest needs for virtio-net over PCI; their dependencies come from modules.dep. */
export const GUEST_MODULES = ['virtio_pci', 'virtio_net'];

export interface BootFiles {
  /** The kernel QEMU boots: the uncompressed vmlinux when it could be extracted, else the bzImage. */
  kernel: string;
  initrd: string;
  version: string;
  /** Module names in the order /init loads them. */
  modules: string[];
}

interface Module {
  name: string;
  file: string;
}

const moduleName = (file: string): string =>
  path
    .basename(file)
    .replace(/\.ko(\.(xz|zst|gz))?$/, '')
    .replace(/-/g, '_');

/** `roots` and everything they depend on, dependencies first, as paths under `modulesDir`. */
export function resolveModules(modulesDir: string, roots: readonly string[]): Module[] {
  const entries = new Map<string, { file: string; deps: string[] }>();
  for (const line of fs.readFileSync(path.join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(moduleName);
    entries.set(moduleName(file), { file, deps });
  }
  const builtinFile = path.join(modulesDir, 'modules.builtin');
  const builtin = new Set(
    fs.existsSync(builtinFile) ? fs.readFileSync(builtinFile, 'utf8').split('\n').filter(Boolean).map(moduleName) : [],
  );
  const order: Module[] = [];
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
  const exe = findTool(tool);
  if (!exe) throw new Error(`${file} is compressed: install ${DEBIAN_PACKAGE[tool]} to unpack it`);
  return runOk(exe, ['-dc', file]);
}

/** The initramfs's path in `cacheDir`, named `<prefix>-<hash>` by a hash of everything that goes into it. */
export function initrdPath(cacheDir: string, init: Buffer, inputs: readonly string[], prefix = 'initrd'): string {
  const hash = crypto.createHash('sha256');
  hash.update(`${CACHE_FORMAT}\n`).update(init);
  for (const f of inputs) {
    const st = fs.statSync(f);
    hash.update(`\n${f} ${st.size} ${st.mtimeMs}`);
  }
  return path.join(cacheDir, `${prefix}-${hash.digest('hex').slice(0, 16)}.cpio.gz`);
}

/** Lays out the guest's root in `stage`: busybox and its applet links, /init, the modules and their load order. */
export async function stageRoot(stage: string, busybox: string, modules: readonly Module[]): Promise<void> {
  for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'proc', 'sys', 'dev', 'tmp', 'root', 'etc', 'lib/modules']) {
    fs.mkdirSync(path.join(stage, dir), { recursive: true });
  }
  fs.copyFileSync(busybox, path.join(stage, 'bin/busybox'));
  fs.chmodSync(path.join(stage, 'bin/busybox'), 0o755);
  // Applet links made here save the guest a `busybox --install -s` (init.sh falls back to it).
  const list = await run(busybox, ['--list-full']);
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
}

/** `stage` as a newc cpio archive owned by root, its entries sorted so that the same tree packs the same. */
export async function packCpio(cpio: string, stage: string): Promise<Buffer> {
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
  return runOk(cpio, ['--null', '-o', '-H', 'newc', '-R', '0:0', '--quiet'], { cwd: stage, input: list0 });
}

/** Removes the initramfs images `<prefix>-<hash>` in `cacheDir` other than `keep`. */
export function removeStaleInitrds(cacheDir: string, keep: string, prefix = 'initrd'): void {
  for (const f of fs.readdirSync(cacheDir)) {
    if (f.startsWith(`${prefix}-`) && /-[0-9a-f]+\.cpio\.gz$/.test(f) && path.join(cacheDir, f) !== keep) {
      fs.rmSync(path.join(cacheDir, f), { force: true });
    }
  }
}

async function build(): Promise<BootFiles> {
  const kernel = findKernel();
  if (!kernel) throw new Error('no kernel in /boot with modules in /lib/modules (install linux-image-amd64)');
  const busybox = toolOrThrow('busybox');
  const cpio = toolOrThrow('cpio');
  const busyboxReal = fs.realpathSync(busybox);
  const cacheDir = cacheDirFor(kernel.version);
  fs.mkdirSync(cacheDir, { recursive: true });

  const kernelPath = await bootableKernel(kernel, cacheDir);
  const modules = resolveModules(kernel.modulesDir, GUEST_MODULES);
  const initrd = initrdPath(cacheDir, fs.readFileSync(INIT_SCRIPT), [busyboxReal, ...modules.map((m) => m.file)]);
  const result: BootFiles = { kernel: kernelPath, initrd, version: kernel.version, modules: modules.map((m) => m.name) };
  if (fs.existsSync(initrd)) return result;

  const stage = fs.mkdtempSync(path.join(cacheDir, 'stage-'));
  try {
    await stageRoot(stage, busyboxReal, modules);
    writeAtomic(initrd, zlib.gzipSync(await packCpio(cpio, stage), { level: 6 }));
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  removeStaleInitrds(cacheDir, initrd);
  return result;
}

let building: Promise<BootFiles> | null = null;

/**
 * The kernel and a gzip'd cpio initramfs (busybox, /init from init.sh, the virtio-net modules), built
 * once per process and cached under os.tmpdir()/vhost-user-e2e-<kernel version>/; rebuilt when init.sh,
 * busybox or the modules change.
 */
export function buildInitramfs(): Promise<BootFiles> {
  building ??= build().catch((err: unknown) => {
    building = null;
    throw err;
  });
  return building;
}
