import type { InferResult, Insertable, Kysely, Selectable } from 'kysely';
import { CompiledOnce } from './compiled-query.ts';
import { GraphSubscriptionRepository, type GraphSubscriptionRecord } from './graph-subscriptions.ts';
import type { Database, GroupSyncStateTable, SyncRunsTable, SyncStateTable, TenantsTable } from './schema.ts';

export type SyncHealth = SyncStateTable['health'];

export interface SyncRun {
  id: string;
  kind: SyncRunsTable['kind'];
  status: SyncRunsTable['status'];
  pages: number;
  /** Users read so far, changed or not. */
  listed: number;
  created: number;
  updated: number;
  deleted: number;
  error: string | null;
  startedAt: number;
  finishedAt: number | null;
}

/** Where one tenant's sync stands, as every process sees it in the database. */
export interface SyncStatus {
  health: SyncHealth;
  lastSuccessAt: number | null;
  lastError: string | null;
  /** The run under way (or held for a decision), if any. */
  current: SyncRun | null;
  /** "Sync now" was pressed and no run has picked it up yet. */
  requestedAt: number | null;
  /** Users in the local copy (soft-deleted included): the expected size of a full listing. */
  users: number;
}

export interface GroupSyncStatus {
  /** A group round has run at least once. */
  synced: boolean;
  health: SyncHealth;
  lastSuccessAt: number | null;
  lastError: string | null;
  groups: number;
  memberships: number;
}

/**
 * A tenant's Graph change notifications in words: `on` while every
 * subscription is live, `starting` while one is being made, `trouble` when
 * one failed (scheduled syncs carry on); null when it has none (off).
 * `resources` says the same of each subscribed resource (users, groups).
 */
export interface LiveUpdates {
  state: 'on' | 'starting' | 'trouble';
  lastRenewedAt: number | null;
  lastNotificationAt: number | null;
  expiresAt: number | null;
  lastError: string | null;
  resources: ResourceLiveUpdates[];
}

export type ResourceLiveUpdates = Omit<LiveUpdates, 'resources'> & { resource: string };

/** Users first, then groups, as the pages list them. */
function resourceOrder(resource: string): number {
  const at = ['users', 'groups'].indexOf(resource);
  return at === -1 ? 2 : at;
}

export function liveUpdatesOf(rows: readonly GraphSubscriptionRecord[], now: number): LiveUpdates | null {
  if (rows.length === 0) return null;
  const summary = (of: readonly GraphSubscriptionRecord[]): Omit<LiveUpdates, 'resources'> => {
    const trouble = of.find((r) => r.state === 'failing' || r.lastError !== null || (r.expiresAt !== null && r.expiresAt <= now));
    const starting = of.some((r) => r.state === 'creating');
    const latest = (pick: (r: GraphSubscriptionRecord) => number | null) => of.reduce<number | null>((max, r) => (pick(r) !== null && (max === null || pick(r)! > max) ? pick(r) : max), null);
    const earliestExpiry = of.reduce<number | null>((min, r) => (r.expiresAt !== null && (min === null || r.expiresAt < min) ? r.expiresAt : min), null);
    return {
      state: trouble ? 'trouble' : starting ? 'starting' : 'on',
      lastRenewedAt: latest((r) => r.lastRenewedAt),
      lastNotificationAt: latest((r) => r.lastNotificationAt),
      expiresAt: earliestExpiry,
      lastError: trouble?.lastError ?? null,
    };
  };
  const resources = [...rows].sort((a, b) => resourceOrder(a.resource) - resourceOrder(b.resource)).map((r) => ({ resource: r.resource, ...summary([r]) }));
  return { ...summary(rows), resources };
}

export interface TenantOverview {
  id: string;
  displayName: string;
  domains: string[];
  state: TenantsTable['state'];
  stateReason: string | null;
  health: SyncHealth | null;
  lastSuccessAt: number | null;
  lastError: string | null;
  users: number;
  runs: number;
  failedRuns: number;
  running: boolean;
  liveUpdates: LiveUpdates | null;
}

function toRun(row: Selectable<SyncRunsTable>): SyncRun {
  return {
    id: row.id,
    kind: row.kind,
    status: row.status,
    pages: row.pages,
    listed: row.listed,
    created: row.created,
    updated: row.updated,
    deleted: row.deleted,
    error: row.error,
    startedAt: Number(row.started_at),
    finishedAt: row.finished_at === null ? null : Number(row.finished_at),
  };
}

/** A tenant's sync state before its first run: nothing read, nobody syncing, healthy. */
export function newSyncState(tenantId: string, now: number): Insertable<SyncStateTable> {
  return { tenant_id: tenantId, delta_link: null, next_link: null, run_id: null, run_kind: null, health: 'ok', last_success_at: null, last_error: null, lock_owner: null, lock_expires_at: null, updated_at: now };
}

export function newGroupSyncState(tenantId: string, now: number): Insertable<GroupSyncStateTable> {
  return { tenant_id: tenantId, delta_link: null, next_link: null, run_id: null, run_kind: null, health: 'ok', last_success_at: null, last_error: null, updated_at: now };
}

/** A tenant's user count, its sync state and the run that state points at, in one statement. */
function tenantStatusQuery(db: Kysely<Database>, values: { tenantId: string }) {
  return db
    .selectFrom('tenants as t')
    .leftJoin('sync_state as st', 'st.tenant_id', 't.id')
    .leftJoin('sync_runs as r', 'r.id', 'st.run_id')
    .select([
      't.user_count as users',
      'st.health',
      'st.last_success_at',
      'st.last_error',
      'st.requested_at',
      'r.id as run_id',
      'r.kind as run_kind',
      'r.status as run_status',
      'r.pages as run_pages',
      'r.listed as run_listed',
      'r.created as run_created',
      'r.updated as run_updated',
      'r.deleted as run_deleted',
      'r.error as run_error',
      'r.started_at as run_started_at',
      'r.finished_at as run_finished_at',
    ])
    .where('t.id', '=', values.tenantId);
}

export class SyncStatusRepository {
  readonly #db: Kysely<Database>;
  readonly #tenantStatus: CompiledOnce<'tenantId', InferResult<ReturnType<typeof tenantStatusQuery>>[number]>;
  /** The users page asks on every request. */
  readonly #lastSuccess: CompiledOnce<'tenantId', { last_success_at: number | null }>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
    this.#tenantStatus = new CompiledOnce(db, ['tenantId'], tenantStatusQuery);
    this.#lastSuccess = new CompiledOnce(db, ['tenantId'], (on, values) => on.selectFrom('sync_state').select('last_success_at').where('tenant_id', '=', values.tenantId));
  }

  /** One statement for a tenant that exists (every page asks): its sync state, the run under way and its user count. */
  async status(tenantId: string): Promise<SyncStatus> {
    const [row] = await this.#tenantStatus.execute({ tenantId });
    // sync_state refers to its tenant, so a tenant without a row has no sync state either.
    if (!row) return { health: 'ok', lastSuccessAt: null, lastError: null, current: null, requestedAt: null, users: 0 };
    return {
      health: row.health ?? 'ok',
      lastSuccessAt: row.last_success_at == null ? null : Number(row.last_success_at),
      lastError: row.last_error ?? null,
      current:
        row.run_id !== null && (row.run_status === 'running' || row.run_status === 'held')
          ? toRun({
              id: row.run_id,
              tenant_id: tenantId,
              kind: row.run_kind!,
              status: row.run_status,
              pages: row.run_pages!,
              listed: row.run_listed!,
              created: row.run_created!,
              updated: row.run_updated!,
              deleted: row.run_deleted!,
              error: row.run_error,
              started_at: row.run_started_at!,
              finished_at: row.run_finished_at,
            })
          : null,
      requestedAt: row.requested_at == null ? null : Number(row.requested_at),
      users: Number(row.users),
    };
  }

  /** Where the tenant's group sync stands: its own health (a missing group permission leaves the users' alone, rule 25) and what is mirrored. */
  async groupStatus(tenantId: string): Promise<GroupSyncStatus> {
    const [state, groups, memberships] = await Promise.all([
      this.#db.selectFrom('group_sync_state').selectAll().where('tenant_id', '=', tenantId).executeTakeFirst(),
      this.#db.selectFrom('groups').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow(),
      this.#db.selectFrom('group_members').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow(),
    ]);
    return {
      synced: state !== undefined,
      health: state?.health ?? 'ok',
      lastSuccessAt: state?.last_success_at == null ? null : Number(state.last_success_at),
      lastError: state?.last_error ?? null,
      groups: Number(groups.n),
      memberships: Number(memberships.n),
    };
  }

  /** Tenants whose group sync is unhealthy, with its health: the operator console shows them beside the users' health. */
  async groupHealthByTenant(): Promise<Map<string, { health: SyncHealth; lastError: string | null }>> {
    const rows = await this.#db.selectFrom('group_sync_state').select(['tenant_id', 'health', 'last_error']).where('health', '!=', 'ok').execute();
    return new Map(rows.map((row) => [row.tenant_id, { health: row.health, lastError: row.last_error }]));
  }

  /** The tenant's change notifications, for its sync page and the operator console. */
  async liveUpdates(tenantId: string, now: number): Promise<LiveUpdates | null> {
    return liveUpdatesOf(await new GraphSubscriptionRepository(this.#db).forTenant(tenantId), now);
  }

  async lastSuccessAt(tenantId: string): Promise<number | null> {
    const [row] = await this.#lastSuccess.execute({ tenantId });
    return row?.last_success_at == null ? null : Number(row.last_success_at);
  }

  async runs(tenantId: string, limit: number, objects: 'users' | 'groups' = 'users'): Promise<SyncRun[]> {
    const rows = await this.#db.selectFrom(objects === 'users' ? 'sync_runs' : ('group_sync_runs' as 'sync_runs')).selectAll().where('tenant_id', '=', tenantId).orderBy('started_at', 'desc').limit(limit).execute();
    return rows.map(toRun);
  }

  /** Records a "Sync now" so the panel shows it queued until a run starts. */
  async request(tenantId: string, now: number): Promise<void> {
    await this.#db
      .insertInto('sync_state')
      .values({ ...newSyncState(tenantId, now), requested_at: now })
      .onConflict((oc) => oc.column('tenant_id').doUpdateSet({ requested_at: now }))
      .execute();
  }

  /** Every tenant with its sync health, for operators. */
  async overview(now = Date.now()): Promise<TenantOverview[]> {
    const [tenants, runCounts, subscriptions] = await Promise.all([
      this.#db
        .selectFrom('tenants')
        .leftJoin('sync_state', 'sync_state.tenant_id', 'tenants.id')
        .leftJoin('sync_runs', (join) => join.onRef('sync_runs.id', '=', 'sync_state.run_id').on('sync_runs.status', '=', 'running'))
        .select([
          'tenants.id as id',
          'tenants.display_name as displayName',
          'tenants.domains as domains',
          'tenants.state as state',
          'tenants.state_reason as stateReason',
          'tenants.user_count as users',
          'sync_state.health as health',
          'sync_state.last_success_at as lastSuccessAt',
          'sync_state.last_error as lastError',
          'sync_runs.id as runningId',
        ])
        .orderBy('tenants.display_name')
        .execute(),
      this.#db
        .selectFrom('sync_runs')
        .select(['tenant_id', (eb) => eb.fn.countAll<number>().as('n'), (eb) => eb.fn.sum<number>(eb.case().when('status', '=', 'failed').then(1).else(0).end()).as('failed')])
        .groupBy('tenant_id')
        .execute(),
      new GraphSubscriptionRepository(this.#db).all(),
    ]);
    const subscriptionsOf = Map.groupBy(subscriptions, (s) => s.tenantId);
    const runs = new Map(runCounts.map((row) => [row.tenant_id, { n: Number(row.n), failed: Number(row.failed) }]));
    return tenants.map((row) => ({
      id: row.id,
      displayName: row.displayName,
      domains: JSON.parse(row.domains) as string[],
      state: row.state,
      stateReason: row.stateReason,
      health: row.health,
      lastSuccessAt: row.lastSuccessAt == null ? null : Number(row.lastSuccessAt),
      lastError: row.lastError,
      users: Number(row.users),
      runs: runs.get(row.id)?.n ?? 0,
      failedRuns: runs.get(row.id)?.failed ?? 0,
      running: row.runningId !== null,
      liveUpdates: liveUpdatesOf(subscriptionsOf.get(row.id) ?? [], now),
    }));
  }
}
