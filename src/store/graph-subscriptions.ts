import type { Kysely, Selectable } from 'kysely';
import type { Database, GraphSubscriptionsTable, TenantsTable } from './schema.ts';

export type GraphSubscriptionState = GraphSubscriptionsTable['state'];

export interface GraphSubscriptionRecord {
  tenantId: string;
  resource: string;
  subscriptionId: string | null;
  clientStateHash: string;
  state: GraphSubscriptionState;
  expiresAt: number | null;
  lastRenewedAt: number | null;
  lastNotificationAt: number | null;
  lastError: string | null;
  updatedAt: number;
}

/** What a notification is checked against: its subscription and the state of that subscription's tenant. */
export interface SubscriptionOwner extends GraphSubscriptionRecord {
  tenantState: TenantsTable['state'];
}

function toRecord(row: Selectable<GraphSubscriptionsTable>): GraphSubscriptionRecord {
  return {
    tenantId: row.tenant_id,
    resource: row.resource,
    subscriptionId: row.subscription_id,
    clientStateHash: row.client_state_hash,
    state: row.state,
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    lastRenewedAt: row.last_renewed_at === null ? null : Number(row.last_renewed_at),
    lastNotificationAt: row.last_notification_at === null ? null : Number(row.last_notification_at),
    lastError: row.last_error,
    updatedAt: Number(row.updated_at),
  };
}

/**
 * Each tenant's Graph subscriptions, one row per resource. Several processes
 * maintain them: creation is claimed by inserting the row first, so only one
 * process asks Graph for a given tenant and resource.
 */
export class GraphSubscriptionRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async get(tenantId: string, resource: string): Promise<GraphSubscriptionRecord | undefined> {
    const row = await this.#db.selectFrom('graph_subscriptions').selectAll().where('tenant_id', '=', tenantId).where('resource', '=', resource).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async forTenant(tenantId: string): Promise<GraphSubscriptionRecord[]> {
    const rows = await this.#db.selectFrom('graph_subscriptions').selectAll().where('tenant_id', '=', tenantId).orderBy('resource').execute();
    return rows.map(toRecord);
  }

  async all(): Promise<GraphSubscriptionRecord[]> {
    const rows = await this.#db.selectFrom('graph_subscriptions').selectAll().execute();
    return rows.map(toRecord);
  }

  /** The subscription a notification names, with its tenant's state; undefined for an id Roster never got from Graph. */
  async owner(subscriptionId: string): Promise<SubscriptionOwner | undefined> {
    const row = await this.#db
      .selectFrom('graph_subscriptions')
      .innerJoin('tenants', 'tenants.id', 'graph_subscriptions.tenant_id')
      .selectAll('graph_subscriptions')
      .select('tenants.state as tenant_state')
      .where('graph_subscriptions.subscription_id', '=', subscriptionId)
      .executeTakeFirst();
    if (!row) return undefined;
    const { tenant_state, ...subscription } = row;
    return { ...toRecord(subscription), tenantState: tenant_state };
  }

  /**
   * Active tenants that have no row for `resource`: their subscription is to
   * be created. With `groupsSynced`, only those whose groups were synced and
   * whose group sync does not report a missing permission.
   */
  async activeTenantsWithout(resource: string, options: { groupsSynced?: boolean } = {}): Promise<string[]> {
    let query = this.#db
      .selectFrom('tenants')
      .leftJoin('graph_subscriptions', (join) => join.onRef('graph_subscriptions.tenant_id', '=', 'tenants.id').on('graph_subscriptions.resource', '=', resource))
      .select('tenants.id as id')
      .where('tenants.state', '=', 'active')
      .where('graph_subscriptions.tenant_id', 'is', null);
    if (options.groupsSynced) {
      query = query
        .innerJoin('group_sync_state', 'group_sync_state.tenant_id', 'tenants.id')
        .where('group_sync_state.last_success_at', 'is not', null)
        .where('group_sync_state.health', '!=', 'missing_permission');
    }
    return (await query.execute()).map((r) => r.id);
  }

  /** Whether the tenant's groups were synced and its group sync does not report a missing permission. */
  async groupsSynced(tenantId: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom('group_sync_state')
      .select('tenant_id')
      .where('tenant_id', '=', tenantId)
      .where('last_success_at', 'is not', null)
      .where('health', '!=', 'missing_permission')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Rows for `resource` whose tenant's group sync reports a missing permission: the group permission went, so does the subscription. */
  async withoutGroupPermission(resource: string): Promise<GraphSubscriptionRecord[]> {
    const rows = await this.#db
      .selectFrom('graph_subscriptions')
      .innerJoin('group_sync_state', 'group_sync_state.tenant_id', 'graph_subscriptions.tenant_id')
      .selectAll('graph_subscriptions')
      .where('graph_subscriptions.resource', '=', resource)
      .where('group_sync_state.health', '=', 'missing_permission')
      .execute();
    return rows.map(toRecord);
  }

  /** Rows whose tenant is no longer active (disconnected, suspended, offboarded): their subscriptions are to be deleted. */
  async ofInactiveTenants(): Promise<GraphSubscriptionRecord[]> {
    const rows = await this.#db
      .selectFrom('graph_subscriptions')
      .innerJoin('tenants', 'tenants.id', 'graph_subscriptions.tenant_id')
      .selectAll('graph_subscriptions')
      .where('tenants.state', '!=', 'active')
      .execute();
    return rows.map(toRecord);
  }

  /**
   * Claims the creation of a tenant's subscription: true for the one process
   * whose row went in. A failed attempt, or a claim abandoned for `staleMs`,
   * may be claimed again.
   */
  async claimCreation(tenantId: string, resource: string, clientStateHash: string, now: number, staleMs: number): Promise<boolean> {
    await this.#db
      .deleteFrom('graph_subscriptions')
      .where('tenant_id', '=', tenantId)
      .where('resource', '=', resource)
      .where((eb) => eb.or([eb('state', '=', 'failing'), eb('state', '=', 'creating')]))
      .where('updated_at', '<', now - staleMs)
      .execute();
    const result = await this.#db
      .insertInto('graph_subscriptions')
      .values({ tenant_id: tenantId, resource, subscription_id: null, client_state_hash: clientStateHash, state: 'creating', expires_at: null, last_renewed_at: null, last_notification_at: null, last_error: null, created_at: now, updated_at: now })
      .onConflict((oc) => oc.columns(['tenant_id', 'resource']).doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0) === 1;
  }

  async created(tenantId: string, resource: string, subscriptionId: string, expiresAt: number, now: number): Promise<void> {
    await this.#db
      .updateTable('graph_subscriptions')
      .set({ subscription_id: subscriptionId, state: 'active', expires_at: expiresAt, last_renewed_at: now, last_error: null, updated_at: now })
      .where('tenant_id', '=', tenantId)
      .where('resource', '=', resource)
      .execute();
  }

  /** Creation, renewal or reauthorization failed; creation is claimed again after the stale time. */
  async failed(tenantId: string, resource: string, error: string, now: number): Promise<void> {
    await this.#db
      .updateTable('graph_subscriptions')
      .set((eb) => ({ state: eb.case().when('subscription_id', 'is', null).then('failing' as const).else(eb.ref('state')).end(), last_error: error.slice(0, 500), updated_at: now }))
      .where('tenant_id', '=', tenantId)
      .where('resource', '=', resource)
      .execute();
  }

  async renewed(subscriptionId: string, expiresAt: number, now: number): Promise<void> {
    await this.#db
      .updateTable('graph_subscriptions')
      .set({ state: 'active', expires_at: expiresAt, last_renewed_at: now, last_error: null, updated_at: now })
      .where('subscription_id', '=', subscriptionId)
      .execute();
  }

  /** Graph asked for reauthorization; true when this call marked it (a repeated request changes nothing). */
  async markReauthorizing(subscriptionId: string, now: number): Promise<boolean> {
    const result = await this.#db
      .updateTable('graph_subscriptions')
      .set({ state: 'reauthorizing', updated_at: now })
      .where('subscription_id', '=', subscriptionId)
      .where('state', '=', 'active')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async reauthorized(subscriptionId: string, now: number): Promise<void> {
    await this.#db.updateTable('graph_subscriptions').set({ state: 'active', last_error: null, updated_at: now }).where('subscription_id', '=', subscriptionId).execute();
  }

  /**
   * An accepted notification: when it came, and the tenant's wish to sync
   * (the sync panel shows it queued until a run starts).
   */
  async recordNotification(subscriptionId: string, tenantId: string, now: number): Promise<void> {
    await this.#db.updateTable('graph_subscriptions').set({ last_notification_at: now }).where('subscription_id', '=', subscriptionId).execute();
    await this.#db.updateTable('sync_state').set({ requested_at: now }).where('tenant_id', '=', tenantId).where('requested_at', 'is', null).execute();
  }

  async remove(tenantId: string, resource: string): Promise<void> {
    await this.#db.deleteFrom('graph_subscriptions').where('tenant_id', '=', tenantId).where('resource', '=', resource).execute();
  }

  /** Active tenants whose every subscription is active and unexpired: their scheduled rounds may run less often. */
  async healthyTenants(now: number): Promise<Set<string>> {
    const rows = await this.#db.selectFrom('graph_subscriptions').select(['tenant_id', 'state', 'expires_at']).execute();
    const healthy = new Set<string>();
    const unhealthy = new Set<string>();
    for (const row of rows) {
      if (row.state === 'active' && row.expires_at !== null && Number(row.expires_at) > now) healthy.add(row.tenant_id);
      else unhealthy.add(row.tenant_id);
    }
    for (const id of unhealthy) healthy.delete(id);
    return healthy;
  }

  /** Subscriptions by state, for `/metrics`. */
  async countByState(): Promise<{ state: GraphSubscriptionState; n: number }[]> {
    const rows = await this.#db.selectFrom('graph_subscriptions').select(['state', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('state').execute();
    return rows.map((r) => ({ state: r.state, n: Number(r.n) }));
  }
}
