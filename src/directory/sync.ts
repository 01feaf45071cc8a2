import { randomUUID } from 'node:crypto';
import { AuthError } from '@azure/msal-node';
import type { Kysely, Transaction } from 'kysely';
import type { EntraApp } from '../identity/entra-app.ts';
import type { Store } from '../store/database.ts';
import type { Database, SyncRunsTable, SyncStateTable, UsersTable } from '../store/schema.ts';
import { GraphRequestError, type GraphPage, type GraphReader } from './graph-reader.ts';
import { TenantLock, TenantBusyError } from './tenant-lock.ts';

export { TenantBusyError };

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

/** Answers of the token endpoint that mean "Roster's app is gone from that tenant". */
const APP_REMOVED = ['AADSTS700016', 'AADSTS7000229'];

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

export type SyncOutcome = Omit<SyncRunsTable, 'tenant_id'> & { tenantId: string };

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
  /** A full resync that would remove more than this share of a tenant's users is held (default 0.3). */
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
  readonly #entra: EntraApp;
  readonly #reader: GraphReader;
  readonly #graphBaseUrl: URL;
  readonly #now: () => number;
  readonly #massDeletionShare: number;
  readonly #consentGraceMs: number;
  readonly #pageSize: number;

  constructor(options: DirectorySyncOptions) {
    this.#db = options.store.db;
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
      return await this.#run(tenantId, tenant.updated_at, lock, options);
    } finally {
      await lock.release(tenantId);
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
      await this.#db.updateTable('sync_state').set({ run_id: runId, run_kind: kind, next_link: null, updated_at: this.#now() }).where('tenant_id', '=', tenantId).execute();
    }

    const run = await this.#db.selectFrom('sync_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();
    const progress: SyncProgress = { runId, kind, phase: 'listing', pages: run.pages, users: run.created + run.updated, created: run.created, updated: run.updated, deleted: run.deleted };
    const token = async () => {
      try {
        return (await this.#entra.appToken(tenantId)).accessToken;
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
        const outcome = await this.#db.transaction().execute(async (trx) => {
          await lock.renew(trx, tenantId);
          return this.#applyPage(trx, tenantId, runId, kind, page, progress);
        });
        options.onProgress?.({ ...progress });
        if (outcome === 'held' || !nextLink) {
          const closed = await this.#db.selectFrom('sync_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();
          options.onProgress?.({ ...progress, phase: 'done' });
          return toOutcome(closed);
        }
      }
    } catch (err) {
      if (err instanceof TenantBusyError) throw err;
      const failure = err instanceof RunFailure ? err : this.#classify(err);
      await this.#closeRun(runId, 'failed', failure.message);
      // A failed run starts over next time: its next link may be stale by then.
      await this.#db.updateTable('sync_state').set({ health: failure.health, last_error: failure.message, run_id: null, run_kind: null, next_link: null, updated_at: this.#now() }).where('tenant_id', '=', tenantId).execute();
      if (failure.health === 'disconnected') await this.#disconnect(tenantId, failure.message);
      const closed = await this.#db.selectFrom('sync_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();
      return toOutcome(closed);
    }
  }

  /** Applies a held mass deletion: the users the held full listing did not see are removed. */
  async confirmHeldDeletion(tenantId: string): Promise<number> {
    const state = await this.#state(tenantId);
    if (state.health !== 'held' || !state.run_id) throw new Error(`tenant ${tenantId} has no held deletion`);
    const runId = state.run_id;
    return this.#db.transaction().execute(async (trx) => {
      const removed = await this.#removeUnseen(trx, tenantId, runId);
      await trx.updateTable('sync_runs').set({ status: 'succeeded', deleted: removed, finished_at: this.#now() }).where('id', '=', runId).execute();
      await trx.updateTable('sync_state').set({ health: 'ok', last_error: null, run_id: null, run_kind: null, last_success_at: this.#now(), updated_at: this.#now() }).where('tenant_id', '=', tenantId).execute();
      return removed;
    });
  }

  /** Keeps the users a held full listing did not see; the next full resync asks again if they are still missing. */
  async discardHeldDeletion(tenantId: string): Promise<void> {
    const state = await this.#state(tenantId);
    if (state.health !== 'held' || !state.run_id) throw new Error(`tenant ${tenantId} has no held deletion`);
    await this.#db.transaction().execute(async (trx) => {
      await trx.updateTable('sync_runs').set({ status: 'succeeded', error: 'mass deletion discarded by an operator', finished_at: this.#now() }).where('id', '=', state.run_id!).execute();
      await trx.updateTable('sync_state').set({ health: 'ok', last_error: null, run_id: null, run_kind: null, last_success_at: this.#now(), updated_at: this.#now() }).where('tenant_id', '=', tenantId).execute();
    });
  }

  #fullListingUrl(): string {
    const url = new URL('/v1.0/users/delta', this.#graphBaseUrl);
    url.searchParams.set('$select', SYNCED_PROPERTIES.join(','));
    return url.href;
  }

  async #state(tenantId: string): Promise<SyncStateTable> {
    await this.#db
      .insertInto('sync_state')
      .values({ tenant_id: tenantId, delta_link: null, next_link: null, run_id: null, run_kind: null, health: 'ok', last_success_at: null, last_error: null, updated_at: this.#now() })
      .onConflict((oc) => oc.column('tenant_id').doNothing())
      .execute();
    return this.#db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
  }

  /** One page: its users, the run's counters and the next cursor, all in one transaction. */
  async #applyPage(trx: Transaction<Database>, tenantId: string, runId: string, kind: 'full' | 'delta', page: GraphPage<DirectoryItem>, progress: SyncProgress): Promise<'continue' | 'held'> {
    const now = this.#now();
    const items = page.value ?? [];
    const ids = [...new Set(items.map((item) => item.id))];
    const existing = ids.length
      ? new Map((await trx.selectFrom('users').select(['id', 'deleted_at']).where('tenant_id', '=', tenantId).where('id', 'in', ids).execute()).map((row) => [row.id, row]))
      : new Map<string, { id: string; deleted_at: number | null }>();
    let created = 0;
    let updated = 0;
    let deleted = 0;
    const sessionsToEnd: string[] = [];
    // Upserts wait in groups of the same shape; anything that must come after one of them flushes first, so the page's order holds.
    const upserts = new Map<string, Record<string, unknown>[]>();
    const pending = new Set<string>();
    const flush = async () => {
      for (const [shape, rows] of upserts) {
        const columns = shape.split(',') as (keyof UsersTable)[];
        await trx
          .insertInto('users')
          .values(rows.map((row) => ({ roster_role: 'member', account_enabled: 1, ...row }) as UsersTable))
          .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet((eb) => Object.fromEntries(columns.map((c) => [c, eb.ref(`excluded.${c}`)])) as never))
          .execute();
      }
      upserts.clear();
      pending.clear();
    };

    for (const item of items) {
      const known = existing.get(item.id);
      const removed = item['@removed'];
      if (pending.has(item.id)) await flush();
      if (removed) {
        if (!known) continue;
        if (removed.reason === 'deleted') {
          await trx.deleteFrom('users').where('tenant_id', '=', tenantId).where('id', '=', item.id).execute();
          existing.delete(item.id);
          deleted += 1;
        } else if (known.deleted_at === null) {
          await trx.updateTable('users').set({ deleted_at: now, updated_at: now }).where('tenant_id', '=', tenantId).where('id', '=', item.id).execute();
          known.deleted_at = now;
          deleted += 1;
        }
        sessionsToEnd.push(item.id);
        continue;
      }
      // Only what the page mentions changes: a partial update never blanks a property.
      const changes: Record<string, unknown> = { deleted_at: null, synced_at: now, updated_at: now };
      for (const property of SYNCED_PROPERTIES) {
        if (property === 'id' || !(property in item)) continue;
        changes[COLUMN[property]] = columnValue(property, item[property]);
      }
      if (kind === 'full') changes.seen_run_id = runId;
      if (changes.account_enabled === 0) sessionsToEnd.push(item.id);
      // Rows that mention the same properties are written by one statement.
      const shape = Object.keys(changes).join(',');
      const group = upserts.get(shape) ?? [];
      group.push({ tenant_id: tenantId, id: item.id, ...changes });
      upserts.set(shape, group);
      pending.add(item.id);
      if (known) updated += 1;
      else {
        created += 1;
        existing.set(item.id, { id: item.id, deleted_at: null });
      }
    }
    await flush();
    if (sessionsToEnd.length) await trx.deleteFrom('sessions').where('tenant_id', '=', tenantId).where('user_id', 'in', sessionsToEnd).execute();

    progress.pages += 1;
    progress.created += created;
    progress.updated += updated;
    progress.deleted += deleted;
    progress.users += created + updated;

    const nextLink = page['@odata.nextLink'] ?? null;
    const deltaLink = page['@odata.deltaLink'] ?? null;
    let status: SyncRunsTable['status'] = 'running';
    let health: SyncStateTable['health'] | undefined;
    let error: string | null = null;
    if (!nextLink && kind === 'full') {
      progress.phase = 'removing';
      const unseen = await this.#countUnseen(trx, tenantId, runId);
      const total = await trx.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
      if (unseen > 0 && unseen > this.#massDeletionShare * Number(total.n)) {
        status = 'held';
        health = 'held';
        error = `the full listing would remove ${unseen} of ${Number(total.n)} users (more than ${Math.round(this.#massDeletionShare * 100)}%); held for confirmation`;
      } else {
        progress.deleted += await this.#removeUnseen(trx, tenantId, runId);
      }
    }
    if (!nextLink && status === 'running') {
      status = 'succeeded';
      health = 'ok';
    }
    await trx
      .updateTable('sync_runs')
      .set({ pages: progress.pages, created: progress.created, updated: progress.updated, deleted: progress.deleted, status, error, ...(status === 'running' ? {} : { finished_at: now }) })
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

  async #countUnseen(trx: Transaction<Database>, tenantId: string, runId: string): Promise<number> {
    const row = await trx
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('tenant_id', '=', tenantId)
      .where((eb) => eb.or([eb('seen_run_id', 'is', null), eb('seen_run_id', '!=', runId)]))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Removes, in one step, every user the finished full listing did not report, and ends their sessions. */
  async #removeUnseen(trx: Transaction<Database>, tenantId: string, runId: string): Promise<number> {
    const unseenIds = trx
      .selectFrom('users')
      .select('id')
      .where('tenant_id', '=', tenantId)
      .where((eb) => eb.or([eb('seen_run_id', 'is', null), eb('seen_run_id', '!=', runId)]));
    await trx.deleteFrom('sessions').where('tenant_id', '=', tenantId).where('user_id', 'in', unseenIds).execute();
    const result = await trx
      .deleteFrom('users')
      .where('tenant_id', '=', tenantId)
      .where((eb) => eb.or([eb('seen_run_id', 'is', null), eb('seen_run_id', '!=', runId)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async #closeRun(runId: string, status: SyncRunsTable['status'], error: string | null): Promise<void> {
    await this.#db.updateTable('sync_runs').set({ status, error, finished_at: this.#now() }).where('id', '=', runId).where('status', '=', 'running').execute();
  }

  #tokenFailure(err: unknown, tenantUpdatedAt: number): Error {
    if (err instanceof AuthError && APP_REMOVED.some((code) => err.errorMessage.includes(code))) {
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

function toOutcome(run: SyncRunsTable): SyncOutcome {
  const { tenant_id: tenantId, ...rest } = run;
  return { tenantId, ...rest };
}
