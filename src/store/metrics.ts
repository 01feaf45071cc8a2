import { Migrator, sql, type Kysely } from 'kysely';
import type { Store } from './database.ts';
import { migrationProvider } from './migrations.ts';
import type { Database, SyncRunsTable, SyncStateTable, TenantsTable } from './schema.ts';

/** Whether the database can serve this process: reachable, and with every migration applied. */
export type StoreReadiness = { reachable: false; error: unknown } | { reachable: true; migrations: { applied: string[]; pending: string[] } | { error: unknown } };

/** The figures `/metrics` exports, read from the database at scrape time so other processes' work counts too. */
export class MetricsRepository {
  readonly #db: Kysely<Database>;

  constructor(store: Store) {
    this.#db = store.db;
  }

  async tenantsByState(): Promise<{ state: TenantsTable['state']; n: number }[]> {
    const rows = await this.#db.selectFrom('tenants').select(['state', (eb) => eb.fn.countAll().as('n')]).groupBy('state').execute();
    return rows.map((row) => ({ state: row.state, n: Number(row.n) }));
  }

  /** Directory users not soft-deleted, across all tenants. */
  async presentUsers(): Promise<number> {
    const row = await this.#db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('deleted_at', 'is', null).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async runsByKindAndStatus(): Promise<{ kind: SyncRunsTable['kind']; status: SyncRunsTable['status']; n: number }[]> {
    const rows = await this.#db.selectFrom('sync_runs').select(['kind', 'status', (eb) => eb.fn.countAll().as('n')]).groupBy(['kind', 'status']).execute();
    return rows.map((row) => ({ kind: row.kind, status: row.status, n: Number(row.n) }));
  }

  /** Runs that failed and started at or after `since`. */
  async failedRunsSince(since: number): Promise<number> {
    const row = await this.#db.selectFrom('sync_runs').select((eb) => eb.fn.countAll().as('n')).where('status', '=', 'failed').where('started_at', '>=', since).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async tenantsByHealth(): Promise<{ health: SyncStateTable['health']; n: number }[]> {
    const rows = await this.#db.selectFrom('sync_state').select(['health', (eb) => eb.fn.countAll().as('n')]).groupBy('health').execute();
    return rows.map((row) => ({ health: row.health, n: Number(row.n) }));
  }

  /** The oldest last success among active tenants that have succeeded at least once; null when none has. */
  async oldestLastSuccessOfActiveTenants(): Promise<number | null> {
    const row = await this.#db
      .selectFrom('sync_state')
      .innerJoin('tenants', 'tenants.id', 'sync_state.tenant_id')
      .select((eb) => eb.fn.min('sync_state.last_success_at').as('oldest'))
      .where('tenants.state', '=', 'active')
      .executeTakeFirst();
    return row?.oldest == null ? null : Number(row.oldest);
  }

  async readiness(): Promise<StoreReadiness> {
    try {
      await sql`select 1`.execute(this.#db);
    } catch (error) {
      return { reachable: false, error };
    }
    try {
      const migrations = await new Migrator({ db: this.#db, provider: migrationProvider }).getMigrations();
      return {
        reachable: true,
        migrations: { applied: migrations.filter((m) => m.executedAt).map((m) => m.name), pending: migrations.filter((m) => !m.executedAt).map((m) => m.name) },
      };
    } catch (error) {
      return { reachable: true, migrations: { error } };
    }
  }
}
