/**
 * The guest's kernel: the host's own Debian kernel from /boot, booted as the uncompressed vmlinux (PVH)
 * when it can be, since that boots about 2 s faster under TCG than the bzImage.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { findProgram } from '../bench/find_program';
import { CACHE_FORMAT, writeAtomic } from './cache';
import { runOk } from './processes';

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
    : (fs.existsSync('/boot') ? fs.readdirSync('/boot') : []).filter((f) => f.startsWith('vmlinuz-')).map((f) => path.join('/boot', f));
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

/**
 * The kernel to boot, cached in `cacheDir`: the vmlinux extracted from the bzImage when the kernel can
 * boot as a PVH ELF (CONFIG_PVH=y), else the bzImage itself.
 */
export async function bootableKernel(kernel: KernelInfo, cacheDir: string): Promise<string> {
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
