/** `vhost-user net --metrics HOST:PORT` as a user runs it: served, documented, and refused in one line. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parsePrometheusText } from './helpers/prom_text';
import { until } from './helpers/until';

const CLI = path.resolve(__dirname, '../dist/cli.js');

let dir = '';
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-metrics-cli-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI to its end, expecting a one-line failure (plus the --help pointer for usage errors). */
function refused(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, 'net', '--socket', path.join(dir, 'x.sock'), ...args], { encoding: 'utf8', timeout: 20_000 });
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(fs.existsSync(path.join(dir, 'x.sock'))).toBe(false); // nothing left behind
  return r;
}

describe('vhost-user net --metrics', () => {
  it('refuses a bad address before serving anything', () => {
    for (const value of ['abc', '70000', ':9100', 'host:', '[::1]9100']) {
      const r = refused(['--metrics', value]);
      expect(r.status, value).toBe(2);
      expect(r.stderr.trimEnd().split('\n'), value).toEqual([
        `vhost-user: --metrics must be PORT or HOST:PORT with a port in 0..65535 (e.g. 9100, 0.0.0.0:9100, [::1]:9100), got '${value}'`,
        "Try 'vhost-user --help'.",
      ]);
    }
  });

  it('says in one line when the port is taken or the address is not this machine', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    try {
      const port = (holder.address() as net.AddressInfo).port;
      const taken = refused(['--metrics', String(port)]);
      expect(taken.status).toBe(1);
      expect(taken.stderr).toBe(`vhost-user: --metrics ${port}: 127.0.0.1:${port} is already in use: choose another port\n`);
    } finally {
      await new Promise((r) => holder.close(r));
    }
    const foreign = refused(['--metrics', '192.0.2.1:9100']); // TEST-NET-1: never an address of ours
    expect(foreign.status).toBe(1);
    expect(foreign.stderr).toBe('vhost-user: --metrics 192.0.2.1:9100: 192.0.2.1 is not an address of this machine\n');
  });

  it('serves /metrics for every socket and documents the flag', async () => {
    expect(spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }).stdout).toMatch(/--metrics HOST:PORT {2}serve Prometheus/);
    const sockets = ['a.sock', 'b.sock'].map((s) => path.join(dir, s));
    const child = spawn(process.execPath, [
      CLI,
      'net',
      '--quiet',
      '--port',
      'loopback',
      '--queues',
      '2',
      '--metrics',
      '0',
      ...sockets.flatMap((s) => ['--socket', s]),
    ]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      expect(await until(() => /metrics at (\S+)/.test(out))).toBe(true);
      const url = /metrics at (\S+), live page at http:\/\/127\.0\.0\.1:\d+\//.exec(out)![1];
      const families = parsePrometheusText(await (await fetch(url)).text());
      const samples = families.get('vhost_user_queue_packets_total')!.samples;
      expect(samples.map((s) => `${s.labels.socket} ${s.labels.queue}`)).toEqual(
        sockets.flatMap((s) => ['tx_q0', 'rx_q0', 'tx_q1', 'rx_q1'].map((q) => `${s} ${q}`)),
      );
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    expect(child.exitCode).toBe(0);
  });
});
