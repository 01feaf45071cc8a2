import type { Kysely } from 'kysely';
import { AuthRequestRepository } from './auth-requests.ts';
import type { Store } from './database.ts';
import type { Database, SyncStateTable } from './schema.ts';
import { SessionRepository } from './sessions.ts';

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
}

/** What the jobs layer asks of the database: the schedule of active tenants, and purging rows that expired. */
export class JobsRepository {
  readonly #db: Kysely<Database>;
  readonly #authRequests: AuthRequestRepository;
  readonly #sessions: SessionRepository;

  /** `sessionIdleMs`: a session unused this long has expired even before its absolute end. */
  constructor(store: Store, options: { sessionIdleMs: number }) {
    this.#db = store.db;
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
    return { authRequests: await this.#authRequests.deleteExpired(now), sessions: await this.#sessions.deleteExpired(now) };
  }
}
