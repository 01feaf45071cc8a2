import type { Kysely } from 'kysely';
import { AuthRequestRepository } from './auth-requests.ts';
import type { Store } from './database.ts';
import { EventRepository } from './events.ts';
import type { Database, SyncStateTable } from './schema.ts';
import { SessionRepository } from './sessions.ts';
import { WebhookRepository } from './webhooks.ts';

/** When an active tenant last synced, as the scheduler needs it to decide whether it is due. */
export interface TenantSchedule {
  id: string;
  lastSuccessAt: number | null;
  lastAttemptAt: number | null;
  health: SyncStateTable['health'] | null;
}

export interface PurgedRows {
  authRequests: number;
  sessions: number;
  /** Events older than the retention (their deliveries and attempts go with them). */
  events: number;
}

/** Events pruned per statement, and statements per purge: short transactions, and a backlog cleared over a few purges. */
const PRUNE_BATCH = 1000;
const PRUNE_BATCHES_PER_PURGE = 20;

/** What the jobs layer asks of the database: the schedule of active tenants, and purging rows that expired. */
export class JobsRepository {
  readonly #db: Kysely<Database>;
  readonly #authRequests: AuthRequestRepository;
  readonly #sessions: SessionRepository;
  readonly #events: EventRepository;
  readonly #webhooks: WebhookRepository;
  readonly #eventRetentionMs: number;

  /** `sessionIdleMs`: a session unused this long has expired even before its absolute end; events are kept `eventRetentionMs` (default 30 days). */
  constructor(store: Store, options: { sessionIdleMs: number; eventRetentionMs?: number }) {
    this.#db = store.db;
    this.#events = new EventRepository(store.db, store.engine, { enabled: true });
    this.#webhooks = new WebhookRepository(store.db, store.engine);
    this.#eventRetentionMs = options.eventRetentionMs ?? 30 * 86_400_000;
    // Only their expiry is used here: both purge by the times stored on each row (and the idle limit).
    this.#authRequests = new AuthRequestRepository(store.db, 0);
    this.#sessions = new SessionRepository(store.db, { idleMs: options.sessionIdleMs, absoluteMs: 0 });
  }

  /** Every active tenant with the times of its last successful and last attempted sync (null before the first). */
  async activeTenantSchedules(): Promise<TenantSchedule[]> {
    return this.#db
      .selectFrom('tenants')
      .leftJoin('sync_state', 'sync_state.tenant_id', 'tenants.id')
      .select(['tenants.id as id', 'sync_state.last_success_at as lastSuccessAt', 'sync_state.updated_at as lastAttemptAt', 'sync_state.health as health'])
      .where('tenants.state', '=', 'active')
      .execute();
  }

  /** Deletes sign-in requests and sessions that expired by `now`: an unfinished sign-in otherwise stays forever. */
  async purgeExpired(now: number): Promise<PurgedRows> {
    const authRequests = await this.#authRequests.deleteExpired(now);
    const sessions = await this.#sessions.deleteExpired(now);
    await this.#webhooks.dropExpiredSecrets(now);
    return { authRequests, sessions, events: await this.pruneEvents(now) };
  }

  /** Deletes events older than the retention in batches of `PRUNE_BATCH`, at most `PRUNE_BATCHES_PER_PURGE` of them. */
  async pruneEvents(now: number): Promise<number> {
    let pruned = 0;
    for (let i = 0; i < PRUNE_BATCHES_PER_PURGE; i++) {
      const deleted = await this.#events.pruneBatch(now - this.#eventRetentionMs, PRUNE_BATCH);
      pruned += deleted;
      if (deleted < PRUNE_BATCH) break;
    }
    return pruned;
  }
}
