/**
 * The host side of traffic tests, kept off the machine's own network: network namespaces (iproute2,
 * root), interfaces moved or created in them, and programs run inside them (argv from lib/guest/processes).
 */
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { argvInNetns, run, runOk, spawnTracked } from '../../../lib/guest/processes';
import { HOST_IP, PREFIX_LEN } from '../../../lib/guest/scenarios';
import { requireTool, requiredInCi } from './tools';

/**
 * Why network-namespace tests cannot run here, or null. Needs `ip` (iproute2) and root; in CI a missing
 * piece throws.
 */
export function netnsMissing(): string | null {
  if (!requireTool('ip')) return 'ip is not installed (Debian package iproute2)';
  if (process.getuid?.() !== 0) {
    requiredInCi('ip netns needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)', 'run the tests as root');
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
  return spawnTracked(argvInNetns(name, [cmd, ...args]), opts);
}

/** Runs `cmd args...` inside network namespace `name` to completion; returns its stdout, throws on failure. */
export async function netnsExec(name: string, cmd: string, args: readonly string[]): Promise<string> {
  const [program, ...rest] = argvInNetns(name, [cmd, ...args]);
  return (await runOk(program, rest)).toString();
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
