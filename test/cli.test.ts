/** The command line as a user runs it: flags checked, a device served, statistics on SIGUSR1 and exit. */
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { GuestMemory } from '../lib/frontend/guest_memory';
import { VirtioNetDriver } from '../lib/frontend/net_driver';
import { native } from '../lib/binding';
import { encodeRequest } from '../lib/protocol/codec';
import { Request } from '../lib/protocol/constants';
import { makeFrame } from './helpers/frames';
import { until } from './helpers/until';

const CLI = path.resolve(__dirname, '../dist/cli.js');

describe('vhost-user CLI', () => {
  it('documents every flag in --help', () => {
    const r = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const flag of [
      '--socket',
      '--client',
      '--port',
      '--tap',
      '--frame-size',
      'sink',
      'source',
      'vhost-user bench',
      '--poll-us',
      '--queues',
      '--mtu',
      '--socket-mode',
      '--message-timeout',
      '--stats-interval',
      '--quiet',
      '--help',
    ]) {
      expect(r.stdout).toContain(flag);
    }
  });

  it('refuses bad flags with a message that says what to do', () => {
    const cases: [string[], string][] = [
      [['net'], '--socket PATH is required'],
      [['net', '--socket', '/tmp/x.sock', '--queues', '0'], '--queues must be an integer in 1..16'],
      [['net', '--socket', '/tmp/x.sock', '--port', 'nope'], '--port must be one of user, loopback'],
      [['bogus'], "unknown command 'bogus'"],
      [['net', '--socket', '/tmp/x.sock', '--frame-size', '64'], '--frame-size needs --port source'],
      [['net', '--socket', '/tmp/x.sock', '--port', 'source', '--frame-size', '59'], '--frame-size must be an integer in 60..65535'],
      [['bench', '--modes', 'bogus'], "unknown mode 'bogus'"],
      [['net', '--socket', '/tmp/x.sock', '--port', 'js'], '--port js is for programs that use the library: see examples/js-echo.mjs'],
      [['net', '--socket', '/tmp/x.sock', '--ring-slots', '64'], "Unknown option '--ring-slots'"],
      [['net', '--socket', '/tmp/x.sock', '--message-timeout', '1.5'], "--message-timeout must be an integer in 0..3600, got '1.5'"],
    ];
    for (const [args, message] of cases) {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(message);
    }
  });

  it('refuses a bad port option or combination in one line, before building anything, without a stack trace', () => {
    const cases: [string[], string][] = [
      [['net', '--socket', '/tmp/x.sock', '--tap', 'T', '--queues', '17'], '--queues must be an integer in 1..16'],
      [['net', '--socket', '/tmp/x.sock', '--socket', '/tmp/y.sock', '--tap', 'T'], 'the tap port serves one device: give one --socket'],
      [
        ['net', '--socket', '/tmp/x.sock', '--socket', '/tmp/y.sock', '--forward', 'tcp:8080:80'],
        '--forward holds a host port for one device: give one --socket',
      ],
      [['net', '--socket', '/tmp/x.sock', '--queues', '2'], 'the user port serves one queue pair for now (--queues 1, or another --port)'],
      [['net', '--socket', '/tmp/x.sock', '--tap', 'a-name-too-long-for-linux'], '--tap must be 1..15 characters'],
      [['net', '--socket', '/tmp/x.sock', '--port', 'tap'], '--port tap needs --tap NAME'],
      [['net', '--socket', '/tmp/x.sock', '--port', 'sink', '--tap', 'T'], "--tap needs --port tap, not 'sink'"],
      [
        ['net', '--socket', '/tmp/x.sock', '--port', 'source', '--frame-size', '1600', '--mtu', '1500'],
        'frame size 1600 is larger than the MTU the device offers (1500)',
      ],
      [
        ['net', '--socket', '/tmp/x.sock', '--port', 'source', '--frame-size', '6x'],
        "--frame-size must be an integer in 60..65535 bytes, got '6x'",
      ],
      [['net', '--socket', '/tmp/x.sock', '--queues', '-1'], "Option '--queues' argument is ambiguous"],
      [['net', '--socket', '/tmp/x.sock', '--bogus'], "Unknown option '--bogus'"],
    ];
    for (const [args, message] of cases) {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`vhost-user: ${message}`);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(2); // the message and the pointer to --help
      expect(r.stderr).not.toMatch(/^\s+at /m);
    }
  });

  it('serves a device, prints statistics on SIGUSR1 and on exit, removes its socket', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-cli-'));
    const socketPath = path.join(dir, 'net.sock');
    const child = spawn(process.execPath, [CLI, 'net', '--socket', socketPath, '--port', 'loopback'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      expect(await until(() => out.includes('serving virtio-net'))).toBe(true);
      expect(fs.statSync(socketPath).mode & 0o777).toBe(0o600);

      const memory = new GuestMemory();
      let received = 0;
      const driver = await VirtioNetDriver.start({ socketPath, memory, onFrames: (f) => (received += f.length) });
      for (let i = 0; i < 1000;) {
        while (i < 1000 && driver.txSpace > 0) driver.send(makeFrame(i++));
        driver.flush();
        if (i < 1000) await driver.waitTxSpace();
      }
      expect(await until(() => received === 1000)).toBe(true);
      expect(out).toContain('front-end connected');
      expect(out).toMatch(/features acked: 0x[0-9a-f]+ \(.*\bVERSION_1\b/);

      child.kill('SIGUSR1');
      expect(await until(() => out.includes('queue 1 (guest TX of pair 0, DPDK rx_q0): packets=1000'))).toBe(true);
      driver.close();
      memory.close();
      expect(await until(() => out.includes('front-end disconnected'))).toBe(true);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toMatch(/SIGTERM, stopping\n[\s\S]*queue 0 \(guest RX of pair 0, DPDK tx_q0\): packets=1000/);
      expect(fs.existsSync(socketPath)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--message-timeout: a front-end that leaves half a message is let go with the reason, and the next is served', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-cli-'));
    const socketPath = path.join(dir, 'net.sock');
    const child = spawn(process.execPath, [CLI, 'net', '--socket', socketPath, '--port', 'loopback', '--message-timeout', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const fd = { value: -1 };
    try {
      expect(await until(() => out.includes('serving virtio-net'))).toBe(true);
      fd.value = native.connect(socketPath);
      native.sendmsg(fd.value, encodeRequest({ request: Request.GET_FEATURES }, false).bytes.subarray(0, 5), []);
      expect(await until(() => out.includes('front-end disconnected'), 5000)).toBe(true);
      expect(out).toMatch(
        /WARN \[.*net\.sock\] front-end disconnected: the peer left a message unfinished for 1 s: closing the connection/,
      );
      const memory = new GuestMemory();
      const driver = await VirtioNetDriver.start({ socketPath, memory, onFrames: () => {} });
      driver.close();
      memory.close();
    } finally {
      if (fd.value >= 0) native.close(fd.value);
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
