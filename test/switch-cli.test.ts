/** `vhost-user switch` as a user runs it: flags checked in one line, three ports switched, statistics on SIGUSR1 and exit. */
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { readPcap } from './helpers/pcap';
import { parsePrometheusText } from './helpers/prom_text';
import { BROADCAST, macOf, tagged } from './helpers/switch_rig';
import { sleep, until } from './helpers/until';

const CLI = path.resolve(__dirname, '../dist/cli.js');

/**
 * `vhost-user switch ARGS...` with our own front-end on each of `socks` once it serves: its output so
 * far, its exit code, what each front-end received; close() kills it and closes the front-ends.
 */
async function runSwitch(socks: string[], args: string[]) {
  const child = spawn(process.execPath, [CLI, 'switch', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const memories = socks.map(() => new GuestMemory());
  const received: Buffer[][] = socks.map(() => []);
  const drivers: VirtioNetDriver[] = [];
  const close = () => {
    child.kill('SIGKILL');
    for (const d of drivers) d.close();
    for (const m of memories) m.close();
  };
  try {
    expect(await until(() => out.includes(`switching ${socks.length} ports`)), out).toBe(true);
    for (const [i, socketPath] of socks.entries())
      drivers.push(await VirtioNetDriver.start({ socketPath, memory: memories[i], onFrames: (f) => received[i].push(...f) }));
  } catch (e) {
    close();
    throw e;
  }
  return { child, output: () => out, exited, received, drivers, close };
}

describe('vhost-user switch', () => {
  it('documents its flags in --help, and the net help points to it', () => {
    const r = spawnSync(process.execPath, [CLI, 'switch', '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const flag of [
      '--socket PATH[,vlan=N]',
      '--tap NAME[,vlan=N]',
      '--pcap FILE',
      '--metrics HOST:PORT',
      '--snaplen N',
      '--client',
      '--ageing',
      '--mac-table',
      '--mtu',
      '--poll-us',
      '--socket-mode',
      '--message-timeout',
      '--stats-interval',
      '--quiet',
    ])
      expect(r.stdout).toContain(flag);
    expect(spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }).stdout).toContain('vhost-user switch --socket');
  });

  it('starts from a copy of dist/ with no node_modules beside it (as the benchmark runs it): prom-client only for --metrics', () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-dist-'));
    try {
      fs.cpSync(path.resolve(__dirname, '../dist'), path.join(copy, 'dist'), { recursive: true });
      const env = { ...process.env, VHOST_USER_ADDON: path.resolve(__dirname, '../build/Release/vhost_user.node') };
      for (const args of [['switch', '--help'], ['--help']]) {
        const r = spawnSync(process.execPath, [path.join(copy, 'dist/cli.js'), ...args], { encoding: 'utf8', env });
        expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      }
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('refuses bad flags in one line that says what to do', () => {
    const cases: [string[], string][] = [
      [['switch'], '--socket PATH is required (one per port)'],
      [['switch', '--socket', '/tmp/a.sock,vlan=0'], '--socket /tmp/a.sock,vlan=0: vlan must be an integer in 1..4094, got 0'],
      [['switch', '--socket', '/tmp/a.sock,vlan=x'], "--socket /tmp/a.sock,vlan=x: vlan must be an integer in 1..4094, got 'x'"],
      [['switch', '--socket', '/tmp/a.sock,color=red'], "--socket /tmp/a.sock,color=red: unknown setting 'color=red' (only vlan=N)"],
      [['switch', '--socket', '/tmp/a.sock', '--socket', '/tmp/a.sock,vlan=2'], 'each --socket must be a different path'],
      [
        ['switch', '--socket', '/tmp/a.sock', '--tap', 'vhu0,vlan=5000'],
        '--tap vhu0,vlan=5000: vlan must be an integer in 1..4094, got 5000',
      ],
      [['switch', '--socket', '/tmp/a.sock', '--tap', ',vlan=2'], '--tap ,vlan=2: the name is empty'],
      [['switch', '--socket', '/tmp/a.sock', '--tap', 'vhu0', '--tap', 'vhu0'], 'each --tap must be a different interface'],
      [['switch', '--socket', '/tmp/a.sock', '--snaplen', '100'], '--snaplen needs --pcap FILE'],
      [['switch', '--socket', '/tmp/a.sock', '--ageing', '0'], '--ageing must be an integer in 1..1000000 s, got 0'],
      [['switch', '--socket', '/tmp/a.sock', '--mac-table', '2000000'], '--mac-table must be an integer in 1..1048576, got 2000000'],
      [['switch', '--socket', '/tmp/a.sock', '--mtu', '9'], '--mtu must be an integer in 68..65535, got 9'],
      [['switch', '--socket', '/tmp/a.sock', '--port', 'tap'], "Unknown option '--port'"],
      [['switch', '--socket', '/tmp/a.sock', '--metrics', 'x:y'], '--metrics must be PORT or HOST:PORT with a port in 0..65535'],
      [['switch', '--socket', '/tmp/a.sock', '--vxlan', '192.0.2.7'], '--vxlan needs --vni N (the VXLAN network identifier, 0..16777215)'],
      [['switch', '--socket', '/tmp/a.sock', '--vni', '5'], '--vni needs --vxlan REMOTE'],
      [
        ['switch', '--socket', '/tmp/a.sock', '--vxlan', '192.0.2.7', '--vni', '16777216'],
        '--vni must be an integer in 0..16777215, got 16777216',
      ],
      [
        ['switch', '--socket', '/tmp/a.sock', '--vxlan', 'host.example', '--vni', '5'],
        "--vxlan 'host.example' is not ADDR, ADDR:PORT or [IPv6]:PORT",
      ],
      [['switch', '--socket', '/tmp/a.sock', '--vxlan', '192.0.2.7:0', '--vni', '5'], "--vxlan '192.0.2.7:0': the port must be 1..65535"],
      [
        ['switch', '--socket', '/tmp/a.sock', '--vxlan', '[2001:db8::7]', '--vni', '5', '--local', '192.0.2.1'],
        '--vxlan 2001:db8::7 is not of the same family (IPv4) as the --local',
      ],
      [
        ['switch', '--socket', '/tmp/a.sock', '--vxlan', '192.0.2.7', '--vxlan', '192.0.2.7:4790', '--vni', '5'],
        'each --vxlan must be a different address',
      ],
      [
        ['switch', '--socket', '/tmp/a.sock', '--vxlan', '192.0.2.7', '--vni', '5', '--local', 'here'],
        "--local 'here' is not ADDR, ADDR:PORT or [IPv6]:PORT",
      ],
      [['net', '--socket', '/tmp/a.sock', '--port', 'switch'], '--port switch belongs to `vhost-user switch'],
    ];
    for (const [args, message] of cases) {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(`vhost-user: ${message}`);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(2);
    }
  });

  it('switches three ports in two VLANs, prints per-port and switch statistics on SIGUSR1 and exit', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-switch-cli-'));
    const socks = ['a', 'b', 'c'].map((n) => path.join(dir, `${n}.sock`));
    const sw = await runSwitch(socks, ['--socket', socks[0], '--socket', socks[1], '--socket', `${socks[2]},vlan=7`]);
    const { child, exited, received, drivers } = sw;
    try {
      expect(sw.output()).toContain(`(VLAN 1: ${socks[0]}, ${socks[1]}; VLAN 7: ${socks[2]})`);
      for (let i = 0; i < 100; i++) drivers[0].send(tagged(BROADCAST, macOf(1), 1, i));
      drivers[0].flush();
      expect(await until(() => received[1].length === 100)).toBe(true);
      drivers[2].send(tagged(BROADCAST, macOf(3), 3, 0));
      drivers[2].flush();
      // g3's frame reaches nobody (alone in VLAN 7): ask for statistics until the switch has learnt it.
      for (let i = 0; i < 50 && !sw.output().includes('switch: 2 MACs learnt'); i++) {
        child.kill('SIGUSR1');
        await sleep(100);
      }
      expect(await until(() => /02:00:00:00:00:03 vlan 7 on .*c\.sock/.test(sw.output()))).toBe(true);
      expect(sw.output()).toContain(`statistics for ${socks[1]} (vlan 1):`);
      expect(sw.output()).toMatch(
        new RegExp(`statistics for ${socks[1]} \\(vlan 1\\):\\n.*queue 0 \\(guest RX of pair 0, DPDK tx_q0\\): packets=100\\b`),
      );
      expect(received[2].length).toBe(0);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(sw.output()).toMatch(/SIGTERM, stopping\n[\s\S]*switch: 2 MACs learnt, 0 refused \(table full\), 0 moved, 101 frames flooded/);
      for (const s of socks) expect(fs.existsSync(s)).toBe(false);
    } finally {
      sw.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--pcap writes every frame entering the switch once, and says so on exit', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-switch-cli-'));
    const socks = ['a', 'b'].map((n) => path.join(dir, `${n}.sock`));
    const file = path.join(dir, 'all.pcap');
    const sw = await runSwitch(socks, ['--socket', socks[0], '--socket', socks[1], '--pcap', file, '--snaplen', '64']);
    const { child, exited, received, drivers } = sw;
    try {
      for (let i = 0; i < 10; i++) drivers[0].send(tagged(BROADCAST, macOf(1), 1, i, 100));
      drivers[0].flush();
      drivers[1].send(tagged(macOf(1), macOf(2), 2, 0));
      drivers[1].flush();
      expect(await until(() => received[1].length === 10 && received[0].length === 1)).toBe(true);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(sw.output()).toContain(`pcap ${file}: 11 frames written, 0 not captured (the writer fell behind)`);
      const records = readPcap(file).records;
      expect(records.map((r) => r.length).sort((a, b) => a - b)).toEqual([60, ...Array(10).fill(100)]);
      expect(records.every((r) => r.data.length === Math.min(64, r.length))).toBe(true);
    } finally {
      sw.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--metrics serves every port under its name and the switch own counters', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-switch-cli-'));
    const socks = ['a', 'b', 'c'].map((n) => path.join(dir, `${n}.sock`));
    const sw = await runSwitch(socks, ['--socket', socks[0], '--socket', socks[1], '--socket', `${socks[2]},vlan=7`, '--metrics', '0']);
    const { child, exited, received, drivers } = sw;
    try {
      expect(await until(() => /metrics at (\S+)/.test(sw.output()))).toBe(true);
      const url = /metrics at (\S+),/.exec(sw.output())![1];
      for (let i = 0; i < 5; i++) drivers[0].send(tagged(BROADCAST, macOf(1), 1, i));
      drivers[0].flush();
      expect(await until(() => received[1].length === 5)).toBe(true);
      drivers[1].send(tagged(macOf(1), macOf(2), 2, 0)); // learnt unicast: to a.sock alone
      drivers[1].flush();
      expect(await until(() => received[0].length === 1)).toBe(true);
      const families = parsePrometheusText(await (await fetch(url)).text());
      const sample = (family: string, labels: Record<string, string> = {}) =>
        families.get(family)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
      // rx_q0 is what the guest sent, tx_q0 what the port gave it (DPDK's names, as vhost-user net exports).
      expect(sample('vhost_user_queue_packets_total', { socket: socks[0], queue: 'rx_q0' })).toBe(5);
      expect(sample('vhost_user_queue_packets_total', { socket: socks[0], queue: 'tx_q0' })).toBe(1);
      expect(sample('vhost_user_queue_packets_total', { socket: socks[1], queue: 'tx_q0' })).toBe(5);
      expect(sample('vhost_user_queue_packets_total', { socket: socks[2], queue: 'tx_q0' })).toBe(0);
      expect(sample('vhost_user_connected', { socket: socks[2] })).toBe(1);
      expect(sample('vhost_user_switch_macs')).toBe(2);
      expect(sample('vhost_user_switch_flooded_total')).toBe(5);
      expect(sample('vhost_user_switch_mac_moves_total')).toBe(0);
      expect(sample('vhost_user_switch_macs_refused_total')).toBe(0);
      expect(sample('vhost_user_switch_port_vlan', { socket: socks[2] })).toBe(7);
      expect(sample('vhost_user_switch_port_vlan', { socket: socks[0] })).toBe(1);
      const live = (await (await fetch(`${url.replace(/metrics$/, '')}stats.json`)).json()) as { devices: { socket: string }[] };
      expect(live.devices.map((d) => d.socket)).toEqual(socks);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      sw.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
