/**
 * One guest that lives in a succession of QEMU processes: started in one, then live-migrated into a
 * destination QEMU (`-incoming`) made from the same GuestOptions, and so on. The guest's serial console
 * moves with it (a migrated guest prints on the destination's stdio), so its lines are joined here into
 * one logical console that waitFor and result read whichever QEMU runs the guest.
 *
 * Each QEMU keeps the guest's RAM in a file of its own (ram_file.ts), sized so that QEMU 7.2 migrates it
 * intact under TCG; migrate() can hold a destination paused and compare its RAM with the source's.
 *
 * The pieces are joined in the order they arrive. That is the guest's order because a source is paused
 * before its destination runs the guest: the two never print at the same time.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GuestConsole } from './console';
import { startGuest, type Guest, type GuestExit, type GuestView } from './guest';
import { migrate, type MigrateOptions, type MigrationResult } from './migration';
import type { GuestOptions } from './qemu_command';
import { QmpClient } from './qmp';
import { differingPages, makeRamDir, MIGRATABLE_RAM_PAD_KIB } from './ram_file';
import { waitForResult } from './scenarios';

/** What differs between the QEMUs of one guest: the vhost-user socket its NIC uses and the QMP socket. */
export interface QemuPlace {
  /** Unused when the shared options replace the vhost-user NIC (`netdev`). */
  socketPath?: string;
  qmpSocket: string;
}

/** One QEMU the guest has run in (or is migrating into), with its control connection. */
export interface GuestQemu {
  /** 'Q1', 'Q2', ... in the order they were started. */
  readonly name: string;
  readonly guest: Guest;
  readonly qmp: QmpClient;
  readonly place: QemuPlace;
  /** Its guest RAM (GuestOptions.ramFile). */
  readonly ramFile: string;
}

/** What migrate() may check besides QEMU's own report. */
export interface CheckedMigrateOptions extends MigrateOptions {
  /**
   * Hold the destination paused once loaded, compare its RAM with the source's page for page
   * (ram_file.ts), then let it run. The comparison adds its time to the guest's pause.
   */
  compareMemory?: boolean;
}

export interface CheckedMigration extends MigrationResult {
  /** When the destination was let run: completedAt, or after the comparison. */
  resumedAt: number;
  /** With compareMemory: the byte offsets in guest RAM of the pages the destination got wrong. */
  differingPages?: number[];
}

export class MigratingGuest implements GuestView {
  /** Every QEMU started, oldest first (those quit or killed too). */
  readonly qemus: GuestQemu[] = [];
  private readonly joined: GuestConsole;
  private current: GuestQemu | null = null;
  private lastExit: GuestExit | null = null;
  private readonly ramDir = makeRamDir();

  private constructor(private readonly base: GuestOptions) {
    const echo = base.echo ?? process.env.VHOST_USER_E2E_ECHO === '1';
    this.joined = new GuestConsole(Date.now(), echo, () => `${this.lastExit?.code ?? this.lastExit?.signal}`);
  }

  /**
   * Boots the guest described by `base` in a first QEMU at `place`. `base` must not carry socketPath,
   * qmpSocket or incoming: they are per QEMU.
   */
  static async start(base: GuestOptions, place: QemuPlace): Promise<MigratingGuest> {
    if (base.socketPath !== undefined || base.qmpSocket !== undefined || base.incoming !== undefined) {
      throw new Error('MigratingGuest: socketPath, qmpSocket and incoming are given per QEMU (QemuPlace), not in the shared options');
    }
    // A RAM size QEMU 7.2 migrates intact under TCG (ram_file.ts).
    const memoryKiB = base.memoryKiB ?? (base.memoryMiB ?? 256) * 1024 + MIGRATABLE_RAM_PAD_KIB;
    const mg = new MigratingGuest({ ...base, memoryKiB });
    mg.current = await mg.launch(place);
    return mg;
  }

  /** The QEMU that runs the guest now. */
  get active(): GuestQemu {
    if (!this.current) throw new Error('MigratingGuest: no QEMU runs the guest');
    return this.current;
  }

  /**
   * Starts a destination QEMU at `place` with the same options plus `-incoming unix:incoming`, migrates
   * the guest into it and makes it the active one. The source stays, paused (QEMU's postmigrate), until
   * quitInactive(). On failure the destination is killed and the source stays active; the error is
   * QEMU's text (qmp.ts QmpError when the source refuses to start).
   */
  async migrate(place: QemuPlace & { incoming: string }, opts: CheckedMigrateOptions = {}): Promise<CheckedMigration> {
    const source = this.active;
    const destination = await this.launch(place, place.incoming, opts.compareMemory);
    try {
      const result = await migrate(source.qmp, place.incoming, opts);
      this.current = destination;
      if (!opts.compareMemory) return { ...result, resumedAt: result.completedAt };
      await loaded(destination.qmp, opts.timeoutMs ?? 120_000);
      const pages = differingPages(source.ramFile, destination.ramFile);
      await destination.qmp.execute('cont');
      return { ...result, resumedAt: Date.now(), differingPages: pages };
    } catch (e) {
      destination.qmp.close();
      await destination.guest.kill();
      throw e;
    }
  }

  /** Quits (QMP `quit`) every QEMU but the active one that is still running; resolves when they have exited. */
  async quitInactive(): Promise<void> {
    await Promise.all(
      this.qemus
        .filter((q) => q !== this.current)
        .map(async (q) => {
          await q.qmp.quit().catch(() => {}); // gone already, or closed: its exit is what counts
          await q.guest.exited;
          fs.rmSync(q.ramFile, { force: true });
        }),
    );
  }

  output(): string {
    return this.joined.output();
  }

  /** Every QEMU's stderr, each piece labelled with its QEMU's name. */
  stderr(): string {
    return this.joined.stderr();
  }

  /** As Guest.waitFor, over the joined console; QEMU's exit ends the wait only when it was the active one. */
  waitFor(re: RegExp, timeoutMs?: number, since?: number): Promise<RegExpMatchArray> {
    return this.joined.waitFor(re, timeoutMs, since);
  }

  result(scenario: string, timeoutMs?: number): Promise<Record<string, string>> {
    return waitForResult((re, ms) => this.waitFor(re, ms), scenario, timeoutMs);
  }

  /** Kills every QEMU of this guest; resolves when all are gone. Safe to call more than once. */
  async kill(): Promise<void> {
    for (const q of this.qemus) q.qmp.close();
    await Promise.all(this.qemus.map((q) => q.guest.kill()));
    fs.rmSync(this.ramDir, { recursive: true, force: true });
  }

  private async launch(place: QemuPlace, incoming?: string, paused = false): Promise<GuestQemu> {
    const name = `Q${this.qemus.length + 1}`;
    const ramFile = path.join(this.ramDir, `${name}.ram`);
    const guest = await startGuest({ ...this.base, ...place, incoming, paused, ramFile, echo: false });
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(place.qmpSocket);
    } catch (e) {
      await guest.kill();
      throw new Error(`${name}: ${(e as Error).message}\n${guest.stderr()}`);
    }
    const q: GuestQemu = { name, guest, qmp, place, ramFile };
    this.qemus.push(q);
    let lineStart = true;
    guest.follow({
      output: (d) => this.joined.addOutput(d),
      stderr: (d) => {
        // Each line labelled once, however QEMU's stderr comes in pieces.
        this.joined.addStderr(`${lineStart ? `${name}: ` : ''}${d.replace(/\n(?=.)/g, `\n${name}: `)}`);
        lineStart = d.endsWith('\n');
      },
    });
    void guest.exited.then((exit) => {
      qmp.close();
      if (this.current !== null && this.current !== q) return; // a source after its migration, or a failed destination
      this.lastExit = exit;
      this.joined.close();
    });
    return q;
  }
}

/** Resolves once a destination has loaded the whole migration (it leaves QEMU's `inmigrate` state). */
async function loaded(qmp: QmpClient, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await qmp.execute<{ status: string }>('query-status')).status === 'inmigrate') {
    if (Date.now() > deadline) throw new Error(`the destination has not loaded the migration within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
