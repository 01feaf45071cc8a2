import { randomUUID } from 'node:crypto';
import { sql, type ExpressionBuilder, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { EntraApp } from '../identity/entra-app.ts';
import { AppNotInTenantError } from '../identity/errors.ts';
import { databaseUnavailable, whenDatabaseAnswers, type Engine, type Store } from '../store/database.ts';
import type { Database, SyncRunsTable, SyncStateTable, UsersTable } from '../store/schema.ts';
import { newSyncState } from '../store/sync-status.ts';
import { GraphRequestError, type AccessTokenSource, type GraphPage, type GraphReader } from './graph-reader.ts';
import { TenantLock, TenantBusyError } from './tenant-lock.ts';

export { TenantBusyError };

/** The tenant's last run is held for a decision on its deletions; no run starts until it is confirmed or discarded. */
export class HeldDeletionError extends Error {}

/**
 * The user properties Roster keeps, in Graph's schema order. Declared here, not
 * taken from the emulator: the product and its stand-in share no code.
 */
export const SYNCED_PROPERTIES = [
  'id',
  'displayName',
  'givenName',
  'surname',
  'mail',
  'userPrincipalName',
  'jobTitle',
  'department',
  'officeLocation',
  'accountEnabled',
  'userType',
  'createdDateTime',
  'employeeId',
  'companyName',
  'mobilePhone',
  'businessPhones',
] as const;

type GraphProperty = (typeof SYNCED_PROPERTIES)[number];
type DirectoryItem = Partial<Record<GraphProperty, unknown>> & { id: string; '@removed'?: { reason?: string } };

const COLUMN: Record<Exclude<GraphProperty, 'id'>, keyof UsersTable> = {
  displayName: 'display_name',
  givenName: 'given_name',
  surname: 'surname',
  mail: 'mail',
  userPrincipalName: 'user_principal_name',
  jobTitle: 'job_title',
  department: 'department',
  officeLocation: 'office_location',
  accountEnabled: 'account_enabled',
  userType: 'user_type',
  createdDateTime: 'created_date_time',
  employeeId: 'employee_id',
  companyName: 'company_name',
  mobilePhone: 'mobile_phone',
  businessPhones: 'business_phones',
};

/** Every column a sync writes from Graph, and `deleted_at`: what decides whether an item changed a user. */
const DATA_COLUMNS = [...Object.values(COLUMN), 'deleted_at'] as const;
type DataColumn = (typeof DATA_COLUMNS)[number];
type StoredUser = Pick<UsersTable, 'id' | 'seen_run_id' | DataColumn>;
type UserRow = Pick<UsersTable, 'id' | 'seen_run_id' | 'deleted_at'> & Partial<Pick<UsersTable, DataColumn>>;
interface WorkingUser {
  row: UserRow;
  /** Columns the page's items named: written even when unchanged, as Graph sent them. */
  mentioned: Set<keyof UsersTable>;
  /** Reported as an object (not only as `@removed`). */
  listed: boolean;
}

/** A run in progress: its counters and, in a delta round, how many users it has marked for removal at its end. */
interface Round {
  runId: string;
  kind: 'full' | 'delta';
  progress: SyncProgress;
  pendingRemovals: number;
  /** At the end of a full listing: ids of the tenant's soft-deleted users (Graph's deleted items), which the listing omits. */
  softDeleted?: ReadonlySet<string>;
}

/** Rows per statement: 1,000 rows of at most 21 values stay under SQLite's 32,766 parameters. */
const WRITE_BATCH = 1000;

/** A run that created this many users refreshes PostgreSQL's statistics of the users table. */
const ANALYZE_AFTER_CREATED = 1000;

export interface SyncProgress {
  runId: string;
  kind: 'full' | 'delta';
  phase: 'listing' | 'removing' | 'waiting' | 'done';
  pages: number;
  users: number;
  created: number;
  updated: number;
  deleted: number;
  detail?: string;
}

export type SyncOutcome = Omit<Selectable<SyncRunsTable>, 'tenant_id'> & { tenantId: string };

export interface RunOptions {
  full?: boolean;
  onProgress?: (progress: SyncProgress) => void;
}

export interface DirectorySyncOptions {
  store: Store;
  entra: EntraApp;
  reader: GraphReader;
  graphBaseUrl: URL;
  now?: () => number;
  /** A full resync or delta round that would remove more than this share of a tenant's users is held (default 0.3). */
  massDeletionShare?: number;
  /** Consent reaches every Microsoft service within minutes: token failures this soon after sign-up are retried, not flagged. */
  consentGraceMs?: number;
  pageSize?: number;
}

class RunFailure extends Error {
  readonly health: SyncStateTable['health'];
  constructor(health: SyncStateTable['health'], message: string) {
    super(message);
    this.health = health;
  }
}

/**
 * Keeps one tenant's users equal to what Graph reports: full listings through
 * `/users/delta` (which ends with a delta link), then incremental rounds from
 * that link. Each page's writes and the cursor that follows it commit in one
 * transaction, so a crash at any instant resumes where the last commit left off.
 */
export class DirectorySync {
  readonly #db: Kysely<Database>;
  readonly #engine: Engine;
  readonly #entra: EntraApp;
  readonly #reader: GraphReader;
  readonly #graphBaseUrl: URL;
  readonly #now: () => number;
  readonly #massDeletionShare: number;
  readonly #consentGraceMs: number;
  readonly #pageSize: number;

  constructor(options: DirectorySyncOptions) {
    this.#db = options.store.db;
    this.#engine = options.store.engine;
    this.#entra = options.entra;
    this.#reader = options.reader;
    this.#graphBaseUrl = options.graphBaseUrl;
    this.#now = options.now ?? Date.now;
    this.#massDeletionShare = options.massDeletionShare ?? 0.3;
    this.#consentGraceMs = options.consentGraceMs ?? 5 * 60_000;
    this.#pageSize = options.pageSize ?? 999;
  }

  /**
   * Runs (or resumes) a sync of one active tenant; the tenant id comes from
   * Roster's registry. Throws `TenantBusyError` while another process syncs it.
   */
  async run(tenantId: string, options: RunOptions = {}): Promise<SyncOutcome> {
    const tenant = await this.#db.selectFrom('tenants').select(['id', 'state', 'updated_at']).where('id', '=', tenantId).executeTakeFirst();
    if (!tenant || tenant.state !== 'active') throw new Error(`tenant ${tenantId} is not an active tenant`);
    await this.#state(tenantId);
    const lock = new TenantLock(this.#db, this.#now);
    await lock.acquire(tenantId);
    try {
      // A new run would replace the held one, and with it the decision an admin or operator owes.
      if ((await this.#state(tenantId)).health === 'held') throw new HeldDeletionError(`tenant ${tenantId} has a mass deletion waiting for a decision`);
      return await this.#run(tenantId, tenant.updated_at, lock, options);
    } finally {
      // Given back once the database answers again, or the tenant would wait out the lease.
      await whenDatabaseAnswers(() => lock.release(tenantId));
    }
  }

  async #run(tenantId: string, signedUpAt: number, lock: TenantLock, options: RunOptions): Promise<SyncOutcome> {
    const state = await this.#state(tenantId);

    let runId: string;
    let kind: 'full' | 'delta';
    let url: string;
    const resumable = state.run_id && state.next_link && !options.full;
    if (resumable) {
      runId = state.run_id!;
      kind = state.run_kind!;
      url = state.next_link!;
    } else {
      if (state.run_id) await this.#closeRun(state.run_id, 'failed', 'superseded by a new run');
      kind = options.full || !state.delta_link ? 'full' : 'delta';
      runId = randomUUID();
      url = kind === 'full' ? this.#fullListingUrl() : state.delta_link!;
      await this.#db.insertInto('sync_runs').values({ id: runId, tenant_id: tenantId, kind, status: 'running', pages: 0, created: 0, updated: 0, deleted: 0, error: null, started_at: this.#now(), finished_at: null }).execute();
      await this.#db.updateTable('sync_state').set({ run_id: runId, run_kind: kind, next_link: null, requested_at: null, updated_at: this.#now() }).where('tenant_id', '=', tenantId).execute();
    }

    const run = await this.#db.selectFrom('sync_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();
    const progress: SyncProgress = { runId, kind, phase: 'listing', pages: run.pages, users: run.listed, created: run.created, updated: run.updated, deleted: run.deleted };
    const round: Round = { runId, kind, progress, pendingRemovals: 0 };
    if (resumable) {
      // Resumed after a crash: the committed pages' marks are in the database. A delta round marks whom it will remove, a full listing whom it has seen.
      const marked = await this.#db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).where('seen_run_id', '=', runId).executeTakeFirstOrThrow();
      if (kind === 'delta') round.pendingRemovals = Number(marked.n);
    }
    const token = async ({ fresh }: { fresh: boolean }) => {
      try {
        return (await this.#entra.appToken(tenantId, { forceRefresh: fresh })).accessToken;
      } catch (err) {
        throw this.#tokenFailure(err, signedUpAt);
      }
    };

    try {
      // Minimal updates carry only what changed; merging them is the point of rule 4.
      const fetchPage = (pageUrl: string) => this.#reader.getPage<DirectoryItem>(pageUrl, token, { prefer: `odata.maxpagesize=${this.#pageSize}, return=minimal` });
      let next: Promise<GraphPage<DirectoryItem>> = fetchPage(url);
      for (;;) {
        let page: GraphPage<DirectoryItem>;
        try {
          page = await next;
        } catch (err) {
          if (kind === 'delta' && err instanceof GraphRequestError && (err.status === 410 || /syncStateNotFound|resyncRequired/i.test(err.code))) {
            // The delta link expired: start over with a full listing, which removes what vanished meanwhile.
            await this.#closeRun(runId, 'failed', `delta link expired (${err.code}); full resync started`);
            await this.#db.updateTable('sync_state').set({ delta_link: null, run_id: null, run_kind: null, next_link: null, updated_at: this.#now() }).where('tenant_id', '=', tenantId).execute();
            return this.#run(tenantId, signedUpAt, lock, { ...options, full: true });
          }
          throw err;
        }
        const nextLink = page['@odata.nextLink'];
        // The next page is read while this one is written; its cursor is saved only with this page's writes.
        if (nextLink) {
          next = fetchPage(nextLink);
          next.catch(() => {});
        }
        // A full listing omits soft-deleted users; read them before the last page's transaction so they are kept as such (rule 3).
        if (kind === 'full' && !nextLink) round.softDeleted = await this.#softDeletedIds(token);
        const outcome = await this.#db.transaction().execute(async (trx) => {
          await lock.renew(trx, tenantId);
          return this.#applyPage(trx, tenantId, round, page);
        });
        options.onProgress?.({ ...progress });
        if (outcome === 'held' || !nextLink) {
          const closed = await this.#db.selectFrom('sync_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();
          // After a large listing, PostgreSQL plans the users pages from stale statistics, and counts read the heap until autovacuum sets the visibility map.
          // (GIN indexes also keep new rows in a pending list that every search reads until a vacuum merges it.) Best effort: the run has succeeded.
          if (this.#engine === 'postgres' && closed.created >= ANALYZE_AFTER_CREATED) await sql`vacuum (analyze) users`.execute(this.#db).catch(() => {});
          options.onProgress?.({ ...progress, phase: 'done' });
          return toOutcome(closed);
        }
      }
    } catch (err) {
      if (err instanceof TenantBusyError) throw err;
      const failure = err instanceof RunFailure ? err : this.#classify(err);
      // A run cut off from its database is recorded as failed, with that reason, once the database is back.
      return whenDatabaseAnswers(async () => {
        await this.#closeRun(runId, 'failed', failure.message);
        // A failed run starts over next time: its next link may be stale by then.
        await this.#db.updateTable('sync_state').set({ health: failure.health, last_error: failure.message, run_id: null, run_kind: null, next_link: null, updated_at: this.#now() }).where('tenant_id', '=', tenantId).execute();
        if (failure.health === 'disconnected') await this.#disconnect(tenantId, failure.message);
        const closed = await this.#db.selectFrom('sync_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();
        return toOutcome(closed);
      });
    }
  }

  /**
   * Applies a held mass deletion: the users the held full listing did not see,
   * or the held delta round reported deleted, are removed and their sessions end.
   */
  async confirmHeldDeletion(tenantId: string): Promise<number> {
    return this.#decideHeld(tenantId, async (trx, run) => {
      const removed = await this.#removePending(trx, tenantId, run.id, run.kind);
      await trx.updateTable('sync_runs').set({ status: 'succeeded', deleted: run.deleted + removed, finished_at: this.#now() }).where('id', '=', run.id).execute();
      return removed;
    });
  }

  /** Keeps the users a held run would have removed; the next full resync asks again if they are still missing. */
  async discardHeldDeletion(tenantId: string): Promise<void> {
    await this.#decideHeld(tenantId, async (trx, run) => {
      if (run.kind === 'delta') await trx.updateTable('users').set({ seen_run_id: null }).where(this.#pending(tenantId, run.id, 'delta')).execute();
      await trx.updateTable('sync_runs').set({ status: 'succeeded', error: 'mass deletion discarded by an operator', finished_at: this.#now() }).where('id', '=', run.id).execute();
    });
  }

  /** An operator's decision on a held run, under the tenant's lock so no run can be changing the same users. */
  async #decideHeld<T>(tenantId: string, decide: (trx: Transaction<Database>, run: Selectable<SyncRunsTable>) => Promise<T>): Promise<T> {
    await this.#state(tenantId);
    const lock = new TenantLock(this.#db, this.#now);
    await lock.acquire(tenantId);
    try {
      return await this.#db.transaction().execute(async (trx) => {
        const state = await trx.selectFrom('sync_state').select(['health', 'run_id']).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
        const run = state.run_id ? await trx.selectFrom('sync_runs').selectAll().where('id', '=', state.run_id).executeTakeFirst() : undefined;
        // A newer run may have taken the tenant's run id since: only a run still held can be decided.
        if (state.health !== 'held' || run?.status !== 'held') throw new Error(`tenant ${tenantId} has no held deletion`);
        const result = await decide(trx, run);
        await trx.updateTable('sync_state').set({ health: 'ok', last_error: null, run_id: null, run_kind: null, last_success_at: this.#now(), updated_at: this.#now() }).where('tenant_id', '=', tenantId).execute();
        return result;
      });
    } finally {
      await lock.release(tenantId);
    }
  }

  /** Every soft-deleted user of the tenant, by id, from Graph's deleted items (small: they are purged after 30 days). */
  async #softDeletedIds(token: AccessTokenSource): Promise<Set<string>> {
    const ids = new Set<string>();
    const first = new URL('/v1.0/directory/deletedItems/microsoft.graph.user', this.#graphBaseUrl);
    first.searchParams.set('$select', 'id');
    first.searchParams.set('$top', String(this.#pageSize));
    for (let url: string | undefined = first.href; url; ) {
      const page: GraphPage<{ id: string }> = await this.#reader.getPage<{ id: string }>(url, token);
      for (const item of page.value ?? []) ids.add(item.id.toLowerCase());
      url = page['@odata.nextLink'];
    }
    return ids;
  }

  /**
   * Users the finished full listing did not see but Graph holds as deleted
   * items stay, marked soft-deleted and seen, instead of being removed; those
   * newly soft-deleted lose their sessions. Returns how many changed.
   */
  async #keepSoftDeleted(trx: Transaction<Database>, tenantId: string, runId: string, softDeleted: ReadonlySet<string>, now: number): Promise<number> {
    let changed = 0;
    const ids = [...softDeleted];
    for (let i = 0; i < ids.length; i += WRITE_BATCH) {
      const chunk = ids.slice(i, i + WRITE_BATCH);
      const unseen = this.#pending(tenantId, runId, 'full');
      const newly = await trx.updateTable('users').set({ deleted_at: now, seen_run_id: runId, updated_at: now }).where(unseen).where('id', 'in', chunk).where('deleted_at', 'is', null).returning('id').execute();
      await trx.updateTable('users').set({ seen_run_id: runId }).where(unseen).where('id', 'in', chunk).execute();
      if (newly.length > 0) await trx.deleteFrom('sessions').where('tenant_id', '=', tenantId).where('user_id', 'in', newly.map((row) => row.id)).execute();
      changed += newly.length;
    }
    return changed;
  }

  #fullListingUrl(): string {
    const url = new URL('/v1.0/users/delta', this.#graphBaseUrl);
    url.searchParams.set('$select', SYNCED_PROPERTIES.join(','));
    return url.href;
  }

  async #state(tenantId: string): Promise<Selectable<SyncStateTable>> {
    await this.#db
      .insertInto('sync_state')
      .values(newSyncState(tenantId, this.#now()))
      .onConflict((oc) => oc.column('tenant_id').doNothing())
      .execute();
    return this.#db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
  }

  /**
   * One page: its users, the run's counters and the next cursor, all in one
   * transaction. The page is folded per user against the stored row first, so
   * only real changes are written and counted, and sessions end only when a
   * user stops being active here: a replayed page changes and ends nothing.
   */
  async #applyPage(trx: Transaction<Database>, tenantId: string, round: Round, page: GraphPage<DirectoryItem>): Promise<'continue' | 'held'> {
    const { runId, kind, progress } = round;
    const now = this.#now();
    const items = page.value ?? [];
    const ids = [...new Set(items.map((item) => item.id))];
    const stored = new Map<string, StoredUser>();
    for (let i = 0; i < ids.length; i += WRITE_BATCH) {
      const rows = await trx.selectFrom('users').select(['id', 'seen_run_id', ...DATA_COLUMNS]).where('tenant_id', '=', tenantId).where('id', 'in', ids.slice(i, i + WRITE_BATCH)).execute();
      for (const row of rows) stored.set(row.id, row as StoredUser);
    }

    // What each user becomes after the page's items, in the page's order (duplicates and all).
    const current = new Map<string, WorkingUser>();
    for (const item of items) {
      const before = stored.get(item.id);
      let user = current.get(item.id) ?? (before ? { row: { ...before }, mentioned: new Set<keyof UsersTable>(), listed: false } : undefined);
      const removed = item['@removed'];
      if (removed) {
        if (!user) continue;
        // A permanent delete waits for the end of the round (rules 8 and 9): a full listing leaves it unseen, a delta round marks it pending.
        if (removed.reason === 'deleted') user.row.seen_run_id = kind === 'delta' ? runId : null;
        else user.row.deleted_at ??= now;
      } else {
        user ??= { row: { id: item.id, deleted_at: null, seen_run_id: null }, mentioned: new Set(), listed: false };
        // Only what the page mentions changes: a partial update never blanks a property.
        for (const property of SYNCED_PROPERTIES) {
          if (property === 'id' || !(property in item)) continue;
          user.row[COLUMN[property]] = columnValue(property, item[property]) as never;
          user.mentioned.add(COLUMN[property]);
        }
        user.row.deleted_at = null;
        user.listed = true;
        if (kind === 'full') user.row.seen_run_id = runId;
        else if (user.row.seen_run_id === runId) user.row.seen_run_id = null;
      }
      current.set(item.id, user);
    }

    let created = 0;
    let updated = 0;
    let deleted = 0;
    let listed = 0;
    const sessionsToEnd: string[] = [];
    // Rows that write the same columns go in one statement; rows with nothing but bookkeeping in one update per set of values.
    const upserts = new Map<string, Record<string, unknown>[]>();
    const touches = new Map<string, { set: Partial<UsersTable>; ids: string[] }>();
    for (const [id, { row, mentioned, listed: wasListed }] of current) {
      const before = stored.get(id);
      if (wasListed) listed += 1;
      if (kind === 'delta') round.pendingRemovals += Number(row.seen_run_id === runId) - Number(before?.seen_run_id === runId);
      const columns = DATA_COLUMNS.filter((c) => c in row && (!before || mentioned.has(c) || row[c] !== before[c]));
      const changed = !before || columns.some((c) => row[c] !== before[c]);
      const seenChanged = row.seen_run_id !== (before?.seen_run_id ?? null);
      if (changed) {
        const values: Record<string, unknown> = { tenant_id: tenantId, id, updated_at: now };
        for (const c of columns) values[c] = row[c];
        if (wasListed) values.synced_at = now;
        if (seenChanged) values.seen_run_id = row.seen_run_id;
        const shape = Object.keys(values).join(',');
        const group = upserts.get(shape) ?? [];
        group.push(values);
        upserts.set(shape, group);
        if (!before) created += 1;
        else if (before.deleted_at === null && row.deleted_at !== null) deleted += 1;
        else updated += 1;
      } else if (wasListed || seenChanged) {
        const set: Partial<UsersTable> = { ...(wasListed ? { synced_at: now } : {}), ...(seenChanged ? { seen_run_id: row.seen_run_id } : {}) };
        const key = JSON.stringify(set);
        const group = touches.get(key) ?? { set, ids: [] };
        group.ids.push(id);
        touches.set(key, group);
      }
      if (before && isActive(before) && !isActive(row)) sessionsToEnd.push(id);
    }
    for (const [shape, rows] of upserts) {
      // The key is never rewritten: an update of key columns would rewrite the primary key's index.
      const columns = (shape.split(',') as (keyof UsersTable)[]).filter((c) => c !== 'tenant_id' && c !== 'id');
      for (let i = 0; i < rows.length; i += WRITE_BATCH) {
        await trx
          .insertInto('users')
          .values(rows.slice(i, i + WRITE_BATCH).map((row) => ({ roster_role: 'member', account_enabled: 1, ...row }) as UsersTable))
          .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet((eb) => Object.fromEntries(columns.map((c) => [c, eb.ref(`excluded.${c}`)])) as never))
          .execute();
      }
    }
    for (const { set, ids: touched } of touches.values()) {
      for (let i = 0; i < touched.length; i += WRITE_BATCH) {
        await trx.updateTable('users').set(set).where('tenant_id', '=', tenantId).where('id', 'in', touched.slice(i, i + WRITE_BATCH)).execute();
      }
    }
    if (sessionsToEnd.length) await trx.deleteFrom('sessions').where('tenant_id', '=', tenantId).where('user_id', 'in', sessionsToEnd).execute();

    progress.pages += 1;
    progress.created += created;
    progress.updated += updated;
    progress.deleted += deleted;
    progress.users += listed;

    const nextLink = page['@odata.nextLink'] ?? null;
    const deltaLink = page['@odata.deltaLink'] ?? null;
    let status: SyncRunsTable['status'] = 'running';
    let health: SyncStateTable['health'] | undefined;
    let error: string | null = null;
    if (!nextLink && (kind === 'full' || round.pendingRemovals > 0)) {
      // The round is complete: its removals are applied in one step, or held when they are too many.
      progress.phase = 'removing';
      if (kind === 'full' && round.softDeleted?.size) progress.updated += await this.#keepSoftDeleted(trx, tenantId, runId, round.softDeleted, now);
      const removing = kind === 'full' ? await this.#countUnseen(trx, tenantId, runId) : round.pendingRemovals;
      const total = await trx.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
      if (removing > 0 && removing > this.#massDeletionShare * Number(total.n)) {
        status = 'held';
        health = 'held';
        error = `the ${kind === 'full' ? 'full listing' : 'delta round'} would remove ${removing.toLocaleString('en-GB')} of ${Number(total.n).toLocaleString('en-GB')} users (more than ${Math.round(this.#massDeletionShare * 100)}%); held for confirmation`;
      } else {
        progress.deleted += await this.#removePending(trx, tenantId, runId, kind);
      }
    }
    if (!nextLink && status === 'running') {
      status = 'succeeded';
      health = 'ok';
    }
    await trx
      .updateTable('sync_runs')
      .set({ pages: progress.pages, listed: progress.users, created: progress.created, updated: progress.updated, deleted: progress.deleted, status, error, ...(status === 'running' ? {} : { finished_at: now }) })
      .where('id', '=', runId)
      .execute();
    await trx
      .updateTable('sync_state')
      .set({
        next_link: nextLink,
        ...(deltaLink ? { delta_link: deltaLink } : {}),
        ...(status === 'succeeded' ? { run_id: null, run_kind: null, last_success_at: now, last_error: null } : {}),
        ...(status === 'held' ? { next_link: null, last_error: error } : {}),
        ...(health ? { health } : {}),
        updated_at: now,
      })
      .where('tenant_id', '=', tenantId)
      .execute();
    return status === 'held' ? 'held' : 'continue';
  }

  /** Users a run would remove: those a full listing did not see, or those a delta round reported deleted. */
  #pending(tenantId: string, runId: string, kind: 'full' | 'delta') {
    return (eb: ExpressionBuilder<Database, 'users'>) =>
      eb.and([eb('tenant_id', '=', tenantId), kind === 'full' ? eb.or([eb('seen_run_id', 'is', null), eb('seen_run_id', '!=', runId)]) : eb('seen_run_id', '=', runId)]);
  }

  async #countUnseen(trx: Transaction<Database>, tenantId: string, runId: string): Promise<number> {
    const row = await trx
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where(this.#pending(tenantId, runId, 'full'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Removes, in one step, the users a finished round leaves pending (see `#pending`), and ends their sessions. */
  async #removePending(trx: Transaction<Database>, tenantId: string, runId: string, kind: 'full' | 'delta'): Promise<number> {
    const pendingIds = trx.selectFrom('users').select('id').where(this.#pending(tenantId, runId, kind));
    await trx.deleteFrom('sessions').where('tenant_id', '=', tenantId).where('user_id', 'in', pendingIds).execute();
    const result = await trx.deleteFrom('users').where(this.#pending(tenantId, runId, kind)).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async #closeRun(runId: string, status: SyncRunsTable['status'], error: string | null): Promise<void> {
    await this.#db.updateTable('sync_runs').set({ status, error, finished_at: this.#now() }).where('id', '=', runId).where('status', '=', 'running').execute();
  }

  #tokenFailure(err: unknown, tenantUpdatedAt: number): Error {
    if (err instanceof AppNotInTenantError) {
      if (this.#now() - tenantUpdatedAt < this.#consentGraceMs) {
        return new RunFailure('failing', 'consent is still propagating; the next run retries');
      }
      return new RunFailure('disconnected', 'Roster is no longer connected to this organisation (the app was removed or its consent revoked): an administrator can reconnect through sign-up');
    }
    return err as Error;
  }

  #classify(err: unknown): RunFailure {
    if (err instanceof GraphRequestError && err.status === 403) {
      return new RunFailure('missing_permission', 'Graph refused to list users (403 Authorization_RequestDenied): grant Roster the Microsoft Graph application permission User.Read.All and give admin consent again');
    }
    const unavailable = databaseUnavailable(err);
    if (unavailable) return new RunFailure('failing', `${unavailable.message}; the next run starts over`);
    return new RunFailure('failing', err instanceof Error ? err.message : String(err));
  }

  /** The app is gone from the tenant: stop syncing, keep the data, end the sessions. */
  async #disconnect(tenantId: string, reason: string): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await trx.updateTable('tenants').set({ state: 'disconnected', state_reason: reason, updated_at: this.#now() }).where('id', '=', tenantId).execute();
      await trx.deleteFrom('sessions').where('tenant_id', '=', tenantId).execute();
    });
  }
}

function columnValue(property: GraphProperty, value: unknown): unknown {
  if (property === 'accountEnabled') return value === false ? 0 : 1;
  if (property === 'businessPhones') return JSON.stringify(Array.isArray(value) ? value : []);
  return value ?? null;
}

function toOutcome(run: Selectable<SyncRunsTable>): SyncOutcome {
  const { tenant_id: tenantId, ...rest } = run;
  return { tenantId, ...rest };
}

/** A user who can use Roster: neither deleted nor disabled. Sessions end when a sync takes that away. */
function isActive(row: Pick<UsersTable, 'deleted_at'> & Partial<Pick<UsersTable, 'account_enabled'>>): boolean {
  return row.deleted_at === null && row.account_enabled !== 0;
}
