import { CompiledQuery, sql, type ExpressionBuilder, type Kysely } from 'kysely';
import type { Engine } from './database.ts';
import type { Database, UsersTable } from './schema.ts';

/** Rows per statement: 1,000 rows of at most 21 values stay under SQLite's 32,766 parameters. */
export const WRITE_BATCH = 1000;

/** Every column a sync writes from Graph, and `deleted_at`: what decides whether an item changed a user. */
export const USER_DATA_COLUMNS = [
  'display_name',
  'given_name',
  'surname',
  'mail',
  'user_principal_name',
  'job_title',
  'department',
  'office_location',
  'account_enabled',
  'user_type',
  'created_date_time',
  'employee_id',
  'company_name',
  'mobile_phone',
  'business_phones',
  'deleted_at',
] as const satisfies readonly (keyof UsersTable)[];
export type UserDataColumn = (typeof USER_DATA_COLUMNS)[number];
/** A user as a sync compares it: its data columns and the run that last marked it. */
export type StoredUser = Pick<UsersTable, 'id' | 'seen_run_id' | UserDataColumn>;
/** Columns one write sets on a user (the key and `tenant_id` are added by the repository). */
export type UserWrite = { id: string } & Partial<Omit<UsersTable, 'tenant_id' | 'id'>>;
export type RoundKind = 'full' | 'delta';

/** Rows grouped by the columns they set, so each group shares one statement and one `on conflict` update list (key columns left out). */
export function byShape<Row extends object>(rows: readonly Row[], key: readonly string[]): { columns: Exclude<keyof Row, 'id'>[]; rows: Row[] }[] {
  const groups = new Map<string, Row[]>();
  for (const row of rows) {
    const shape = Object.keys(row).join(',');
    const group = groups.get(shape);
    if (group) group.push(row);
    else groups.set(shape, [row]);
  }
  // The key is never rewritten: an update of key columns would rewrite the primary key's index.
  return [...groups].map(([shape, group]) => ({ columns: shape.split(',').filter((c) => !key.includes(c)) as Exclude<keyof Row, 'id'>[], rows: group }));
}

export function inBatches<T>(items: readonly T[], size = WRITE_BATCH): T[][] {
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += size) batches.push(items.slice(i, i + size));
  return batches;
}

/**
 * The batched writes a directory sync makes to a tenant's users, and the
 * marks (`seen_run_id`) that say whom a round removes at its end: those a full
 * listing did not see, or those a delta round reported deleted.
 */
export class SyncedUserRepository {
  readonly #db: Kysely<Database>;
  readonly #engine: Engine;

  constructor(db: Kysely<Database>, engine: Engine) {
    this.#db = db;
    this.#engine = engine;
  }

  /** The stored users among `ids`, by id. */
  async stored(tenantId: string, ids: readonly string[]): Promise<Map<string, StoredUser>> {
    const stored = new Map<string, StoredUser>();
    for (const batch of inBatches(ids)) {
      const rows = await this.#db.selectFrom('users').select(['id', 'seen_run_id', ...USER_DATA_COLUMNS]).where('tenant_id', '=', tenantId).where('id', 'in', batch).execute();
      for (const row of rows) stored.set(row.id, row);
    }
    return stored;
  }

  /**
   * Creates or updates users; rows that set the same columns share a statement.
   * New users are members with an enabled account unless the row says otherwise.
   */
  async upsert(tenantId: string, rows: readonly UserWrite[]): Promise<void> {
    for (const { columns, rows: group } of byShape(rows, ['id'])) {
      if (this.#engine === 'sqlite') {
        for (const batch of inBatches(group)) await this.#db.executeQuery(sqliteUpsert(tenantId, columns, batch));
        continue;
      }
      for (const batch of inBatches(group)) {
        await this.#db
          .insertInto('users')
          .values(batch.map((row) => ({ roster_role: 'member', account_enabled: 1, ...row, tenant_id: tenantId }) as UsersTable))
          .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet((eb) => Object.fromEntries(columns.map((c) => [c, eb.ref(`excluded.${c}`)])) as never))
          .execute();
      }
    }
  }

  /** Sets the same bookkeeping values (`synced_at`, `seen_run_id`) on many users at once. */
  async touch(tenantId: string, ids: readonly string[], values: Pick<Partial<UsersTable>, 'synced_at' | 'seen_run_id'>): Promise<void> {
    for (const batch of inBatches(ids)) await this.#db.updateTable('users').set(values).where('tenant_id', '=', tenantId).where('id', 'in', batch).execute();
  }

  /** Whether the tenant has no user stored at all (soft-deleted ones count). */
  async holdsNone(tenantId: string): Promise<boolean> {
    return (await this.#db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).limit(1).executeTakeFirst()) === undefined;
  }

  /** Users marked by the run: seen by a full listing, or to be removed at the end of a delta round. */
  async countMarked(tenantId: string, runId: string): Promise<number> {
    const row = await this.#db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).where('seen_run_id', '=', runId).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async countPending(tenantId: string, runId: string, kind: RoundKind): Promise<number> {
    const row = await this.#db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where(pending(tenantId, runId, kind)).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** The users the round would remove, as they are before the removal (their events show them so). */
  async pendingRows(tenantId: string, runId: string, kind: RoundKind): Promise<StoredUser[]> {
    return this.#db.selectFrom('users').select(['id', 'seen_run_id', ...USER_DATA_COLUMNS]).where(pending(tenantId, runId, kind)).execute();
  }

  /** Removes, in one statement, the users the round leaves pending. */
  async removePending(tenantId: string, runId: string, kind: RoundKind): Promise<number> {
    const result = await this.#db.deleteFrom('users').where(pending(tenantId, runId, kind)).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Keeps a discarded delta round's removals from being applied by a later round. */
  async unmarkPendingRemovals(tenantId: string, runId: string): Promise<void> {
    await this.#db.updateTable('users').set({ seen_run_id: null }).where(pending(tenantId, runId, 'delta')).execute();
  }

  /**
   * Users among `ids` (soft-deleted in Graph) that a full listing did not see:
   * marked seen, and soft-deleted when they were not yet. Returns those newly soft-deleted.
   */
  async softDeletedIds(tenantId: string): Promise<string[]> {
    const rows = await this.#db.selectFrom('users').select('id').where('tenant_id', '=', tenantId).where('deleted_at', 'is not', null).execute();
    return rows.map((row) => row.id);
  }

  async keepSoftDeleted(tenantId: string, runId: string, ids: readonly string[], now: number): Promise<string[]> {
    const newly: string[] = [];
    for (const batch of inBatches(ids)) {
      const unseen = pending(tenantId, runId, 'full');
      const changed = await this.#db.updateTable('users').set({ deleted_at: now, seen_run_id: runId, updated_at: now }).where(unseen).where('id', 'in', batch).where('deleted_at', 'is', null).returning('id').execute();
      await this.#db.updateTable('users').set({ seen_run_id: runId }).where(unseen).where('id', 'in', batch).execute();
      newly.push(...changed.map((row) => row.id));
    }
    return newly;
  }

  /**
   * After a large listing, PostgreSQL plans the users pages from stale statistics, and counts read the heap until autovacuum sets the visibility map.
   * (GIN indexes also keep new rows in a pending list that every search reads until a vacuum merges it.) Best effort; SQLite needs none.
   */
  async refreshStatistics(): Promise<void> {
    if (this.#engine === 'postgres') await sql`vacuum (analyze) users`.execute(this.#db).catch(() => {});
  }

  async deleteForTenant(tenantId: string): Promise<number> {
    const result = await this.#db.deleteFrom('users').where('tenant_id', '=', tenantId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

/** SQLite: one statement text per shape and row count (a page's is nearly always one of a few), so the prepared statement is reused. */
const sqliteUpserts = new Map<string, string>();

/**
 * The same upsert as the query builder's, as SQL text with its parameters:
 * building a thousand-row insert cost a third of running it. Columns come
 * from `USER_DATA_COLUMNS` and the bookkeeping ones, never from input.
 */
function sqliteUpsert(tenantId: string, columns: readonly string[], rows: readonly UserWrite[]): CompiledQuery {
  const defaults = (['roster_role', 'account_enabled'] as const).filter((column) => !columns.includes(column));
  const inserted = ['tenant_id', 'id', ...defaults, ...columns];
  const key = `${inserted.join(',')} ${rows.length}`;
  let text = sqliteUpserts.get(key);
  if (!text) {
    for (const column of columns) if (!/^[a-z_]+$/.test(column)) throw new Error(`not a users column: ${column}`);
    const tuple = `(${inserted.map(() => '?').join(', ')})`;
    text = `insert into users (${inserted.join(', ')}) values ${Array.from({ length: rows.length }, () => tuple).join(', ')} on conflict (tenant_id, id) do update set ${columns.map((c) => `${c} = excluded.${c}`).join(', ')}`;
    if (sqliteUpserts.size >= 32) sqliteUpserts.delete(sqliteUpserts.keys().next().value!);
    sqliteUpserts.set(key, text);
  }
  const width = inserted.length;
  const parameters = new Array<unknown>(width * rows.length);
  let at = 0;
  for (const row of rows) {
    const values = row as Record<string, unknown>;
    parameters[at++] = tenantId;
    parameters[at++] = row.id;
    for (const column of defaults) parameters[at++] = column === 'roster_role' ? 'member' : 1;
    for (const column of columns) parameters[at++] = values[column] ?? null;
  }
  return CompiledQuery.raw(text, parameters);
}

/** Users a run would remove: those a full listing did not see, or those a delta round reported deleted. */
function pending(tenantId: string, runId: string, kind: RoundKind) {
  return (eb: ExpressionBuilder<Database, 'users'>) =>
    eb.and([eb('tenant_id', '=', tenantId), kind === 'full' ? eb.or([eb('seen_run_id', 'is', null), eb('seen_run_id', '!=', runId)]) : eb('seen_run_id', '=', runId)]);
}
