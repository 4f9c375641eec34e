/**
 * The harness's QMP client (lib/guest/qmp.ts) and its migration driver (lib/guest/migration.ts) against
 * a fake QEMU: a unix server speaking QMP as QEMU 7.2 does (greeting, capabilities, \r\n-ended JSON,
 * answers carrying the command's id, events in between). No QEMU needed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { migrate } from '../lib/guest/migration';
import { QmpClient, QmpError } from '../lib/guest/qmp';

interface Command {
  execute: string;
  arguments?: Record<string, unknown>;
  id?: unknown;
}

/** What the fake does with a command: an answer to send (return or error), or nothing (it stays unanswered). */
type Handler = (cmd: Command, sock: net.Socket) => { return?: unknown; error?: { class: string; desc: string } } | void;

interface FakeQemu {
  readonly path: string;
  /** Every command received, in order. */
  readonly received: Command[];
  send(sock: net.Socket, msg: unknown): void;
  /** The connection of the last client. */
  client(): net.Socket | undefined;
  close(): void;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhost-user-qmp-'));
const fakes: FakeQemu[] = [];
let n = 0;

afterEach(() => {
  for (const f of fakes.splice(0)) f.close();
});

const GREETING = { QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: '' }, capabilities: ['oob'] } };

/** A fake QEMU on a fresh socket path; it listens after `delayMs` (0: at once). */
function fakeQemu(handle: Handler, delayMs = 0): FakeQemu {
  const socketPath = path.join(dir, `qmp-${n++}.sock`);
  const received: Command[] = [];
  const sockets: net.Socket[] = [];
  const send = (sock: net.Socket, msg: unknown) => sock.write(`${JSON.stringify(msg)}\r\n`);
  const server = net.createServer((sock) => {
    sockets.push(sock);
    sock.on('error', () => {});
    send(sock, GREETING);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl)) as Command;
        buf = buf.slice(nl + 1);
        received.push(cmd);
        const answer = cmd.execute === 'qmp_capabilities' ? { return: {} } : handle(cmd, sock);
        if (answer) send(sock, { ...answer, id: cmd.id });
      }
    });
  });
  const timer = setTimeout(() => server.listen(socketPath), delayMs);
  const fake: FakeQemu = {
    path: socketPath,
    received,
    send,
    client: () => sockets[sockets.length - 1],
    close: () => {
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
  fakes.push(fake);
  return fake;
}

describe('QMP client', () => {
  it('waits for the socket, reads the greeting, negotiates capabilities before any command', async () => {
    const fake = fakeQemu(() => ({ return: { status: 'running', running: true } }), 300);
    const t0 = Date.now();
    const qmp = await QmpClient.connect(fake.path, 5_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(await qmp.execute('query-status')).toEqual({ status: 'running', running: true });
    expect(fake.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'query-status']);
    qmp.close();
  });

  it('gives up on a socket that never appears, naming it', async () => {
    const missing = path.join(dir, 'never.sock');
    await expect(QmpClient.connect(missing, 300)).rejects.toThrow(`QMP: cannot connect to ${missing}`);
  });

  it('matches answers to commands by id, whatever their order, and passes arguments', async () => {
    const held: Command[] = [];
    const fake = fakeQemu((cmd, sock) => {
      held.push(cmd);
      if (held.length < 2) return;
      // Answer the second command first.
      for (const c of [...held].reverse()) fake.send(sock, { return: { echo: c.arguments?.word }, id: c.id });
    });
    const qmp = await QmpClient.connect(fake.path);
    const [a, b] = await Promise.all([qmp.execute('echo', { word: 'a' }), qmp.execute('echo', { word: 'b' })]);
    expect([a, b]).toEqual([{ echo: 'a' }, { echo: 'b' }]);
    expect(new Set(fake.received.map((c) => c.id)).size).toBe(3);
    qmp.close();
  });

  it("rejects an error answer with QEMU's text and class", async () => {
    const fake = fakeQemu(() => ({ error: { class: 'CommandNotFound', desc: 'The command nope has not been found' } }));
    const qmp = await QmpClient.connect(fake.path);
    const err = await qmp.execute('nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect(err).toMatchObject({ message: 'The command nope has not been found', errorClass: 'CommandNotFound', command: 'nope' });
    qmp.close();
  });

  it('keeps events in arrival order and waits for one', async () => {
    const fake = fakeQemu(() => ({ return: {} }));
    const qmp = await QmpClient.connect(fake.path);
    const sock = fake.client() as net.Socket;
    fake.send(sock, { event: 'STOP', timestamp: { seconds: 1, microseconds: 0 } });
    const resumed = qmp.waitEvent('RESUME', 5_000);
    fake.send(sock, { event: 'RESUME', data: {}, timestamp: { seconds: 2, microseconds: 0 } });
    expect((await resumed).event).toBe('RESUME');
    expect(qmp.events.map((e) => e.event)).toEqual(['STOP', 'RESUME']);
    await expect(qmp.waitEvent('STOP', 100, 1)).rejects.toThrow('no QMP event STOP within 100 ms');
    qmp.close();
  });

  it('rejects what is pending when QEMU closes the connection', async () => {
    const fake = fakeQemu((_cmd, sock) => void sock.destroy());
    const qmp = await QmpClient.connect(fake.path);
    await expect(qmp.execute('query-status')).rejects.toThrow('QMP: QEMU closed the connection');
    await expect(qmp.execute('query-status')).rejects.toThrow('QMP: QEMU closed the connection');
  });

  it('quit resolves whether QEMU answers first or just exits', async () => {
    const answers: FakeQemu = fakeQemu((cmd, sock) => {
      answers.send(sock, { return: {}, id: cmd.id });
      sock.end();
    });
    const polite = await QmpClient.connect(answers.path);
    await polite.quit();
    const abrupt = fakeQemu((_cmd, sock) => void sock.destroy());
    const rude = await QmpClient.connect(abrupt.path);
    await rude.quit();
    expect(abrupt.received.map((c) => c.execute)).toEqual(['qmp_capabilities', 'quit']);
  });
});

describe('migrate over QMP', () => {
  /** A source whose query-migrate goes through `statuses`, then stays on the last. */
  function source(statuses: Record<string, unknown>[], refuse?: string): FakeQemu {
    let polls = 0;
    return fakeQemu((cmd) => {
      if (cmd.execute === 'migrate' && refuse) return { error: { class: 'GenericError', desc: refuse } };
      if (cmd.execute === 'query-migrate') return { return: statuses[Math.min(polls++, statuses.length - 1)] };
      return { return: {} };
    });
  }

  it('sets the bandwidth, starts the migration to the unix socket and polls until completed', async () => {
    const fake = source([
      { status: 'setup' },
      { status: 'active', ram: { transferred: 1000 } },
      { status: 'completed', 'total-time': 1234, downtime: 56, ram: { transferred: 300_000_000 } },
    ]);
    const qmp = await QmpClient.connect(fake.path);
    const result = await migrate(qmp, '/tmp/dest.sock', { maxBandwidth: 5 << 20, pollMs: 10 });
    expect(result).toMatchObject({ totalTimeMs: 1234, downtimeMs: 56, ramTransferred: 300_000_000 });
    expect(result.completedAt).toBeGreaterThanOrEqual(result.startedAt);
    expect(fake.received.slice(1, 3)).toMatchObject([
      { execute: 'migrate-set-parameters', arguments: { 'max-bandwidth': 5 << 20 } },
      { execute: 'migrate', arguments: { uri: 'unix:/tmp/dest.sock' } },
    ]);
    expect(fake.received.filter((c) => c.execute === 'query-migrate').length).toBe(3);
    qmp.close();
  });

  it("rejects with QEMU's words when the source refuses to migrate", async () => {
    const refusal = 'Migration disabled: vhost-user backend lacks VHOST_USER_PROTOCOL_F_LOG_SHMFD feature.';
    const fake = source([{ status: 'none' }], refusal);
    const qmp = await QmpClient.connect(fake.path);
    const err = await migrate(qmp, '/tmp/dest.sock').catch((e: Error) => e);
    expect(err).toBeInstanceOf(QmpError);
    expect((err as Error).message).toBe(refusal);
    expect(fake.received.some((c) => c.execute === 'query-migrate')).toBe(false);
    qmp.close();
  });

  it('rejects with error-desc when the migration fails', async () => {
    const fake = source([{ status: 'active' }, { status: 'failed', 'error-desc': 'Unable to write to socket: Broken pipe' }]);
    const qmp = await QmpClient.connect(fake.path);
    await expect(migrate(qmp, '/tmp/dest.sock', { pollMs: 10 })).rejects.toThrow(
      'migration failed: Unable to write to socket: Broken pipe',
    );
    qmp.close();
  });

  it('cancels a migration that does not complete in time', async () => {
    const fake = source([{ status: 'active' }]);
    const qmp = await QmpClient.connect(fake.path);
    await expect(migrate(qmp, '/tmp/dest.sock', { pollMs: 10, timeoutMs: 200 })).rejects.toThrow(
      'migration not completed within 200 ms (last status active); cancelled',
    );
    expect(fake.received[fake.received.length - 1].execute).toBe('migrate_cancel');
    qmp.close();
  });
});
