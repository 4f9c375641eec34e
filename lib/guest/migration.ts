/**
 * Live migration of a guest between two QEMU processes over QMP (qmp.ts): the source is told the
 * bandwidth it may use and where the destination listens (`-incoming unix:PATH`, GuestOptions.incoming),
 * then `query-migrate` is polled until QEMU says completed or failed, with QEMU's own words.
 */
import type { QmpClient } from './qmp';

/** QEMU 7.2's default is 32 MiB/s: a 256 MiB guest would take seconds per pass, and a busy guest never converge. */
export const FAST_MIGRATION_BYTES_PER_SEC = 1 << 30;

export interface MigrateOptions {
  /** `migrate-set-parameters max-bandwidth`, in bytes per second. Default FAST_MIGRATION_BYTES_PER_SEC. */
  maxBandwidth?: number;
  /** Give up (and cancel the migration) after this long. Default 120 s. */
  timeoutMs?: number;
  /** How often query-migrate is asked. Default 100 ms. */
  pollMs?: number;
}

/** What query-migrate said when the migration completed. */
export interface MigrationResult {
  /** Date.now() when the source was told to migrate, and when it was seen completed. */
  startedAt: number;
  completedAt: number;
  /** QEMU's own figures (ms): the whole migration, and how long the guest was paused for the last pass. */
  totalTimeMs?: number;
  downtimeMs?: number;
  /** RAM bytes sent. */
  ramTransferred?: number;
}

interface QueryMigrate {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'error-desc'?: string;
  ram?: { transferred?: number };
}

/** The URI of the unix socket a destination listens on (the same path as its GuestOptions.incoming). */
export function migrationUri(incomingPath: string): string {
  return `unix:${incomingPath}`;
}

/**
 * Migrates the guest of `source` to the destination listening on `incomingPath`. Rejects with QEMU's
 * text when the source refuses to start (a QmpError: e.g. a device that blocks migration), and with
 * `error-desc` when the migration fails or is cancelled.
 */
export async function migrate(source: QmpClient, incomingPath: string, opts: MigrateOptions = {}): Promise<MigrationResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  await source.execute('migrate-set-parameters', { 'max-bandwidth': opts.maxBandwidth ?? FAST_MIGRATION_BYTES_PER_SEC });
  const startedAt = Date.now();
  await source.execute('migrate', { uri: migrationUri(incomingPath) });
  let last: QueryMigrate = {};
  while (Date.now() - startedAt < timeoutMs) {
    last = await source.execute<QueryMigrate>('query-migrate');
    if (last.status === 'completed') {
      return {
        startedAt,
        completedAt: Date.now(),
        totalTimeMs: last['total-time'],
        downtimeMs: last.downtime,
        ramTransferred: last.ram?.transferred,
      };
    }
    if (last.status === 'failed' || last.status === 'cancelled') {
      throw new Error(`migration ${last.status}: ${last['error-desc'] ?? '(QEMU gave no reason)'}`);
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
  await source.execute('migrate_cancel').catch(() => {});
  throw new Error(`migration not completed within ${timeoutMs} ms (last status ${last.status ?? 'none'}); cancelled`);
}
