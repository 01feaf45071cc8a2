import type { ExpressionBuilder, Kysely, Selectable } from 'kysely';
import type { Engine } from './database.ts';
import type { EventRow } from './events.ts';
import { inBatches } from './synced-users.ts';
import type { Database, WebhookAttemptsTable, WebhookDeliveriesTable, WebhookEndpointsTable } from './schema.ts';

export type WebhookEndpointRow = Selectable<WebhookEndpointsTable>;
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>;
export type WebhookAttemptRow = Selectable<WebhookAttemptsTable>;

export interface NewEndpoint {
  id: string;
  url: string;
  description: string | null;
  eventTypes: readonly string[];
  tenantId: string | null;
  secret: string;
  now: number;
}

/** A delivery taken by a sender, with the event it carries. */
export interface ClaimedDelivery {
  delivery: WebhookDeliveryRow;
  event: EventRow;
}

/** What one attempt came to, and what the delivery becomes. */
export interface AttemptResult {
  deliveryId: string;
  endpointId: string;
  /** Set when the answer disables the endpoint (410 Gone): why. */
  disableReason: string | null;
  owner: string;
  attemptedAt: number;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
  excerpt: string | null;
  /** `succeeded`, `failed` (no more tries), or `pending` again at `nextAttemptAt`. */
  status: WebhookDeliveryRow['status'];
  scheduleStep: number;
  nextAttemptAt: number | null;
}

export interface DeliveryWithEvent extends WebhookDeliveryRow {
  event_id: string;
  event_type: string;
}

/** Webhook endpoints, their deliveries (the queue senders work from) and every attempt. */
export class WebhookRepository {
  readonly #db: Kysely<Database>;
  readonly #engine: Engine;

  constructor(db: Kysely<Database>, engine: Engine) {
    this.#db = db;
    this.#engine = engine;
  }

  async createEndpoint(endpoint: NewEndpoint): Promise<WebhookEndpointRow> {
    const row = {
      id: endpoint.id,
      url: endpoint.url,
      description: endpoint.description,
      event_types: JSON.stringify([...endpoint.eventTypes]),
      tenant_id: endpoint.tenantId,
      enabled: 1,
      disabled_reason: null,
      secret: endpoint.secret,
      previous_secret: null,
      previous_secret_expires_at: null,
      created_at: endpoint.now,
      updated_at: endpoint.now,
    };
    await this.#db.insertInto('webhook_endpoints').values(row).execute();
    return row;
  }

  async listEndpoints(options: { tenantId?: string } = {}): Promise<WebhookEndpointRow[]> {
    let select = this.#db.selectFrom('webhook_endpoints').selectAll();
    if (options.tenantId !== undefined) select = select.where('tenant_id', '=', options.tenantId);
    return select.orderBy('created_at').orderBy('id').execute();
  }

  async getEndpoint(id: string): Promise<WebhookEndpointRow | undefined> {
    return this.#db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** True when the endpoint exists. */
  async setEnabled(id: string, enabled: boolean, reason: string | null, now: number): Promise<boolean> {
    const result = await this.#db.updateTable('webhook_endpoints').set({ enabled: enabled ? 1 : 0, disabled_reason: enabled ? null : reason, updated_at: now }).where('id', '=', id).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** The new secret signs from now on; the current one keeps signing beside it until `previousUntil`. */
  async rotateSecret(id: string, secret: string, previousUntil: number, now: number): Promise<boolean> {
    const result = await this.#db
      .updateTable('webhook_endpoints')
      .set((eb) => ({ previous_secret: eb.ref('secret'), previous_secret_expires_at: previousUntil, secret, updated_at: now }))
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Forgets previous secrets whose window has closed; returns how many. */
  async dropExpiredSecrets(now: number): Promise<number> {
    const result = await this.#db
      .updateTable('webhook_endpoints')
      .set({ previous_secret: null, previous_secret_expires_at: null })
      .where('previous_secret_expires_at', '<=', now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('webhook_endpoints').where('id', '=', id).executeTakeFirst();
    return Number(result.numDeletedRows) === 1;
  }

  /** Enabled endpoints with at least one delivery due by `now` and not leased to a live sender. */
  async endpointsWithDueWork(now: number): Promise<WebhookEndpointRow[]> {
    return this.#db
      .selectFrom('webhook_endpoints')
      .selectAll()
      .where('enabled', '=', 1)
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('webhook_deliveries as d')
            .select('d.id')
            .whereRef('d.endpoint_id', '=', 'webhook_endpoints.id')
            .where('d.status', '=', 'pending')
            .where('d.next_attempt_at', '<=', now)
            .where((inner) => inner.or([inner('d.lease_expires_at', 'is', null), inner('d.lease_expires_at', '<', now)])),
        ),
      )
      .execute();
  }

  /**
   * Leases up to `limit` of an endpoint's due deliveries to `owner` until
   * `until`, oldest first. A delivery leased to a sender that died is taken
   * again once its lease lapses: at least once, never lost.
   */
  async claimDue(endpointId: string, options: { owner: string; now: number; until: number; limit: number }): Promise<ClaimedDelivery[]> {
    const { owner, now, until, limit } = options;
    const free = (eb: ExpressionBuilder<Database, 'webhook_deliveries'>) =>
      eb.and([eb('status', '=', 'pending'), eb('next_attempt_at', '<=', now), eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<', now)])]);
    return this.#db.transaction().execute(async (trx) => {
      let due = trx.selectFrom('webhook_deliveries').select('id').where('endpoint_id', '=', endpointId).where(free).orderBy('next_attempt_at').orderBy('event_sequence').limit(limit);
      // Senders in other processes skip the rows this one is taking instead of waiting for them.
      if (this.#engine === 'postgres') due = due.forUpdate().skipLocked();
      const ids = (await due.execute()).map((row) => row.id);
      if (ids.length === 0) return [];
      // The lease conditions are checked again on the row itself, so two senders never both take it.
      const taken = await trx.updateTable('webhook_deliveries').set({ lease_owner: owner, lease_expires_at: until }).where('id', 'in', ids).where(free).returningAll().execute();
      if (taken.length === 0) return [];
      const events = await trx.selectFrom('events').selectAll().where('sequence', 'in', taken.map((d) => d.event_sequence)).execute();
      const bySequence = new Map(events.map((event) => [Number(event.sequence), { ...event, sequence: Number(event.sequence) }]));
      return taken.flatMap((delivery) => {
        const event = bySequence.get(Number(delivery.event_sequence));
        return event ? [{ delivery: { ...delivery, event_sequence: Number(delivery.event_sequence) }, event }] : [];
      });
    });
  }

  /**
   * Records attempts and moves their deliveries on, in one transaction; a
   * result is applied only while its sender still holds the lease.
   */
  async recordAttempts(results: readonly AttemptResult[], now: number): Promise<void> {
    if (results.length === 0) return;
    // Deliveries that end the same way (most often: all succeeded) share one update.
    const groups = new Map<string, AttemptResult[]>();
    for (const result of results) {
      const key = JSON.stringify([result.owner, result.status, result.scheduleStep, result.nextAttemptAt, result.statusCode, result.error, result.disableReason, result.endpointId]);
      const group = groups.get(key);
      if (group) group.push(result);
      else groups.set(key, [result]);
    }
    await this.#db.transaction().execute(async (trx) => {
      for (const group of groups.values()) {
        const first = group[0]!;
        for (const batch of inBatches(group)) {
          const updated = await trx
            .updateTable('webhook_deliveries')
            .set((eb) => ({
              status: first.status,
              attempts: eb('attempts', '+', 1),
              schedule_step: first.scheduleStep,
              next_attempt_at: first.nextAttemptAt,
              lease_owner: null,
              lease_expires_at: null,
              last_status_code: first.statusCode,
              last_error: first.error,
              updated_at: now,
            }))
            .where('id', 'in', batch.map((result) => result.deliveryId))
            .where('lease_owner', '=', first.owner)
            .returning('id')
            .execute();
          const recorded = new Set(updated.map((row) => row.id));
          const attempts = batch
            .filter((result) => recorded.has(result.deliveryId))
            .map((result) => ({ delivery_id: result.deliveryId, attempted_at: result.attemptedAt, status_code: result.statusCode, latency_ms: Math.round(result.latencyMs), error: result.error, response_excerpt: result.excerpt }));
          if (attempts.length > 0) await trx.insertInto('webhook_attempts').values(attempts).execute();
          if (first.disableReason && attempts.length > 0) await trx.updateTable('webhook_endpoints').set({ enabled: 0, disabled_reason: first.disableReason, updated_at: now }).where('id', '=', first.endpointId).execute();
        }
      }
    });
  }

  /** Gives leased deliveries back untouched (a sender stopping before it sent them). */
  async releaseLeases(ids: readonly string[], owner: string): Promise<void> {
    if (ids.length === 0) return;
    await this.#db.updateTable('webhook_deliveries').set({ lease_owner: null, lease_expires_at: null }).where('id', 'in', ids).where('lease_owner', '=', owner).execute();
  }

  /** An endpoint's deliveries, newest event first, `limit` of them before the event sequence `before` when given. */
  async listDeliveries(endpointId: string, options: { limit: number; status?: WebhookDeliveryRow['status']; before?: number }): Promise<DeliveryWithEvent[]> {
    let select = this.#db
      .selectFrom('webhook_deliveries as d')
      .innerJoin('events as e', 'e.sequence', 'd.event_sequence')
      .selectAll('d')
      .select(['e.id as event_id', 'e.type as event_type'])
      .where('d.endpoint_id', '=', endpointId);
    if (options.status) select = select.where('d.status', '=', options.status);
    if (options.before !== undefined) select = select.where('d.event_sequence', '<', options.before);
    const rows = await select.orderBy('d.event_sequence', 'desc').limit(options.limit).execute();
    return rows.map((row) => ({ ...row, event_sequence: Number(row.event_sequence) }));
  }

  async getDelivery(id: string): Promise<DeliveryWithEvent | undefined> {
    const row = await this.#db
      .selectFrom('webhook_deliveries as d')
      .innerJoin('events as e', 'e.sequence', 'd.event_sequence')
      .selectAll('d')
      .select(['e.id as event_id', 'e.type as event_type'])
      .where('d.id', '=', id)
      .executeTakeFirst();
    return row ? { ...row, event_sequence: Number(row.event_sequence) } : undefined;
  }

  async attemptsOf(deliveryIds: readonly string[]): Promise<WebhookAttemptRow[]> {
    if (deliveryIds.length === 0) return [];
    return this.#db.selectFrom('webhook_attempts').selectAll().where('delivery_id', 'in', deliveryIds).orderBy('attempted_at').orderBy('id').execute();
  }

  /** Sends a delivery again from the start of the schedule; false when it is unknown or still pending. */
  async replay(id: string, now: number): Promise<boolean> {
    const result = await this.#db
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', schedule_step: 0, next_attempt_at: now, lease_owner: null, lease_expires_at: null, updated_at: now })
      .where('id', '=', id)
      .where('status', '!=', 'pending')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}
