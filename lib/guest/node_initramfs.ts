/**
 * An initramfs that runs this package inside the guest: the usual root (busybox, /init from init.sh),
 * plus Node and the shared libraries it and the addon load, the package itself under /pkg (dist/, the
 * built addon, package.json, the production node_modules) and the kernel's vhost-net, bridge and pktgen
 * modules. For tests that need what this machine lacks, such as /dev/vhost-net (test/e2e/qemu-vhost-net.test.ts).
 * Cached like initramfs.ts's, under its own prefix; about 45 MB (gzip -1) and 1 GiB of guest RAM to boot.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { cacheDirFor, writeAtomic } from './cache';
import { INIT_SCRIPT, initrdPath, packCpio, removeStaleInitrds, resolveModules, stageRoot, type BootFiles } from './initramfs';
import { bootableKernel, findKernel } from './kernel';
import { runOk } from './processes';
import { toolOrThrow } from './tools';

/** vhost_net pulls in vhost, vhost_iotlb, tap and tun; bridge pulls in stp and llc; pktgen: the benchmark's RX source. */
export const NODE_GUEST_MODULES = ['vhost_net', 'bridge', 'pktgen'];
/** Where the package lies in the guest. */
export const PACKAGE_IN_GUEST = '/pkg';
const PREFIX = 'node-initrd';
const ROOT = path.resolve(__dirname, '..', '..');
const ADDON = path.join(ROOT, 'build', 'Release', 'vhost_user.node');

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : [p];
  });
}

/** The shared libraries `ldd` names for `binary`, the dynamic loader included. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const out = (await runOk('ldd', [binary])).toString();
  return [...out.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)].map((m) => m[1]);
}

/** The package directories of the production dependencies, found from package.json as Node would. */
function dependencyDirs(): string[] {
  const dirs = new Set<string>();
  const visit = (name: string): void => {
    const dir = path.join(ROOT, 'node_modules', name);
    if (dirs.has(dir) || !fs.existsSync(path.join(dir, 'package.json'))) return;
    dirs.add(dir);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep);
  };
  const own = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  for (const dep of Object.keys(own.dependencies ?? {})) visit(dep);
  return [...dirs];
}

/** Copies `from` to the same absolute path under `stage` (its content, not a link). */
function copyAt(stage: string, from: string, to = from): void {
  const dest = path.join(stage, to);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.cpSync(fs.realpathSync(from), dest, { recursive: true, dereference: true });
}

async function build(): Promise<BootFiles> {
  const kernel = findKernel();
  if (!kernel) throw new Error('no kernel in /boot with modules in /lib/modules (install linux-image-amd64)');
  for (const need of [path.join(ROOT, 'dist', 'guest', 'vhost_net_traffic.js'), ADDON]) {
    if (!fs.existsSync(need)) throw new Error(`${need} is missing: build the package first (npm run build)`);
  }
  const busybox = fs.realpathSync(toolOrThrow('busybox'));
  const cpio = toolOrThrow('cpio');
  const cacheDir = cacheDirFor(kernel.version);
  fs.mkdirSync(cacheDir, { recursive: true });
  const kernelPath = await bootableKernel(kernel, cacheDir);
  const modules = resolveModules(kernel.modulesDir, NODE_GUEST_MODULES);
  const node = fs.realpathSync(process.execPath);
  const libs = [...new Set([...(await sharedLibraries(node)), ...(await sharedLibraries(ADDON))])];
  const dist = filesUnder(path.join(ROOT, 'dist'));
  const deps = dependencyDirs();
  const inputs = [busybox, node, ADDON, ...libs, ...dist, ...modules.map((m) => m.file), ...deps.map((d) => path.join(d, 'package.json'))];
  const initrd = initrdPath(cacheDir, fs.readFileSync(INIT_SCRIPT), inputs, PREFIX);
  const result: BootFiles = { kernel: kernelPath, initrd, version: kernel.version, modules: modules.map((m) => m.name) };
  if (fs.existsSync(initrd)) return result;

  const stage = fs.mkdtempSync(path.join(cacheDir, 'stage-'));
  try {
    await stageRoot(stage, busybox, modules);
    copyAt(stage, node, '/usr/bin/node');
    for (const lib of libs) copyAt(stage, lib);
    const inPackage = (p: string) => path.join(PACKAGE_IN_GUEST, path.relative(ROOT, p));
    for (const f of [...dist, ADDON, path.join(ROOT, 'package.json')]) copyAt(stage, f, inPackage(f));
    for (const d of deps) copyAt(stage, d, inPackage(d));
    // gzip -1: Node's binary dominates, and the guest unpacks it faster than a smaller archive.
    writeAtomic(initrd, zlib.gzipSync(await packCpio(cpio, stage), { level: 1 }));
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  removeStaleInitrds(cacheDir, initrd, PREFIX);
  return result;
}

let building: Promise<BootFiles> | null = null;

/** The kernel and the Node initramfs, built once per process and cached (rebuilt when an input changes). */
export function buildNodeInitramfs(): Promise<BootFiles> {
  building ??= build().catch((err: unknown) => {
    building = null;
    throw err;
  });
  return building;
}
