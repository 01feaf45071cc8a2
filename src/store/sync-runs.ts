import type { Kysely, Selectable } from 'kysely';
import type { Database, SyncRunsTable } from './schema.ts';

export type SyncRunRow = Selectable<SyncRunsTable>;
export type SyncRunKind = SyncRunsTable['kind'];
export type SyncRunStatus = SyncRunsTable['status'];

/** What a run has done so far, written with each page. */
export interface SyncRunCounters {
  pages: number;
  listed: number;
  created: number;
  updated: number;
  deleted: number;
}

/** The record of each sync run (rule 20): one row per run, its counters updated with every page; the users' runs in `sync_runs`, the groups' in `group_sync_runs`. */
export class SyncRunRepository {
  readonly #db: Kysely<Database>;
  // Both tables have the same columns.
  readonly #table: 'sync_runs';

  constructor(db: Kysely<Database>, table: 'sync_runs' | 'group_sync_runs' = 'sync_runs') {
    this.#db = db;
    this.#table = table as 'sync_runs';
  }

  async start(run: { id: string; tenantId: string; kind: SyncRunKind; now: number }): Promise<void> {
    await this.#db
      .insertInto(this.#table)
      .values({ id: run.id, tenant_id: run.tenantId, kind: run.kind, status: 'running', pages: 0, created: 0, updated: 0, deleted: 0, error: null, started_at: run.now, finished_at: null })
      .execute();
  }

  async get(runId: string): Promise<SyncRunRow | undefined> {
    return this.#db.selectFrom(this.#table).selectAll().where('id', '=', runId).executeTakeFirst();
  }

  async require(runId: string): Promise<SyncRunRow> {
    const run = await this.get(runId);
    if (!run) throw new Error(`sync run ${runId} is not recorded`);
    return run;
  }

  /** Ends a run still running; a run already ended keeps its outcome. */
  async close(runId: string, status: SyncRunStatus, error: string | null, now: number): Promise<void> {
    await this.#db.updateTable(this.#table).set({ status, error, finished_at: now }).where('id', '=', runId).where('status', '=', 'running').execute();
  }

  /** A run stopped at shutdown runs again from its saved cursor: it is running once more. */
  async reopen(runId: string): Promise<void> {
    await this.#db.updateTable(this.#table).set({ status: 'running', error: null, finished_at: null }).where('id', '=', runId).where('status', '=', 'failed').execute();
  }

  /** A page's counters, and the run's end when the page ended it. */
  async record(runId: string, counters: SyncRunCounters, end: { status: SyncRunStatus; error: string | null; now: number }): Promise<void> {
    await this.#db
      .updateTable(this.#table)
      .set({ ...counters, status: end.status, error: end.error, ...(end.status === 'running' ? {} : { finished_at: end.now }) })
      .where('id', '=', runId)
      .execute();
  }

  /** Settles a held run by an operator's decision. */
  async settleHeld(runId: string, settled: { deleted?: number; error?: string; now: number }): Promise<void> {
    await this.#db
      .updateTable(this.#table)
      .set({ status: 'succeeded', finished_at: settled.now, ...(settled.deleted === undefined ? {} : { deleted: settled.deleted }), ...(settled.error === undefined ? {} : { error: settled.error }) })
      .where('id', '=', runId)
      .execute();
  }

  async deleteForTenant(tenantId: string): Promise<number> {
    const result = await this.#db.deleteFrom(this.#table).where('tenant_id', '=', tenantId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
