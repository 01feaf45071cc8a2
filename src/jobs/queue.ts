import { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import type { DirectorySync } from '../directory/sync.ts';
import { HeldDeletionError, TenantBusyError } from '../directory/sync.ts';
import { databaseUnavailable } from '../store/database.ts';

export const SYNC_QUEUE = 'directory-sync';

/**
 * A job whose worker stops refreshing it for this long is failed, which frees
 * its tenant for the next queued job. Without it, a job claimed by a fetch
 * whose answer was lost to a database outage would stay active, and block its
 * tenant (one active job per tenant), until it expires an hour later.
 */
const HEARTBEAT_SECONDS = 30;

/** pg-boss reports a failing poll every second while the database is away: the same error is logged once a minute. */
const REPEAT_LOG_MS = 60_000;

interface SyncJob {
  tenantId: string;
  full: boolean;
}

/**
 * Sync work shared by any number of processes on any number of machines
 * through pg-boss on Roster's PostgreSQL database. The queue's `stately`
 * policy with the tenant id as singleton key allows one queued and one active
 * job per tenant; the tenant lock in `sync_state` backs it up.
 */
export class SyncQueue {
  readonly #boss: PgBoss;
  readonly #logger: Logger;

  private constructor(boss: PgBoss, logger: Logger) {
    this.#boss = boss;
    this.#logger = logger;
  }

  static async start(connectionString: string, logger: Logger): Promise<SyncQueue> {
    // Checked every 10 s instead of every minute, so a job lost to an outage is failed (and its tenant free) soon after its heartbeat stops.
    const boss = new PgBoss({ connectionString, schema: 'pgboss', monitorIntervalSeconds: 10 });
    let last = { message: '', at: 0 };
    // Without a listener pg-boss's 'error' would end the process; its pool and polls recover by themselves.
    boss.on('error', (reported: unknown) => {
      const err = asError(reported);
      if (err.message === last.message && Date.now() - last.at < REPEAT_LOG_MS) return;
      last = { message: err.message, at: Date.now() };
      const unavailable = databaseUnavailable(err);
      if (unavailable) logger.warn({ err: unavailable }, 'job queue: the database is unavailable; polling on');
      else logger.error({ err }, 'job queue error');
    });
    await boss.start();
    await boss.createQueue(SYNC_QUEUE, { policy: 'stately', retryLimit: 0, expireInSeconds: 3600, heartbeatSeconds: HEARTBEAT_SECONDS });
    // Queues created before the heartbeat existed get it too.
    await boss.updateQueue(SYNC_QUEUE, { heartbeatSeconds: HEARTBEAT_SECONDS });
    return new SyncQueue(boss, logger);
  }

  /** Queues a sync of the tenant unless one is already queued. */
  async enqueue(tenantId: string, options: { full?: boolean } = {}): Promise<boolean> {
    const id = await this.#boss.send(SYNC_QUEUE, { tenantId, full: options.full ?? false } satisfies SyncJob, { singletonKey: tenantId });
    return id !== null;
  }

  /** Takes sync jobs from the queue, `concurrency` at a time in this process. */
  async work(sync: DirectorySync, concurrency: number): Promise<void> {
    await this.#boss.work<SyncJob>(SYNC_QUEUE, { localConcurrency: concurrency, pollingIntervalSeconds: 1 }, async ([job]) => {
      if (!job) return;
      try {
        const outcome = await sync.run(job.data.tenantId, { full: job.data.full });
        this.#logger.info({ tenant: job.data.tenantId, kind: outcome.kind, status: outcome.status, pages: outcome.pages, created: outcome.created, updated: outcome.updated, deleted: outcome.deleted, error: outcome.error }, 'sync run finished');
      } catch (err) {
        if (err instanceof TenantBusyError) this.#logger.info({ tenant: job.data.tenantId }, 'sync skipped: another process is syncing this tenant');
        else if (err instanceof HeldDeletionError) this.#logger.info({ tenant: job.data.tenantId }, 'sync skipped: a held deletion waits for a decision');
        else this.#logger.error({ tenant: job.data.tenantId, err }, 'sync run crashed');
      }
    });
  }

  async stop(): Promise<void> {
    await this.#boss.stop({ graceful: true, timeout: 30_000 });
  }
}

/** pg-boss reports its workers' errors as plain copies of them (`{...err, message, stack, queue}`). */
function asError(reported: unknown): Error {
  if (reported instanceof Error) return reported;
  const { message, stack, code } = (reported ?? {}) as { message?: unknown; stack?: unknown; code?: unknown };
  const err = new Error(typeof message === 'string' ? message : String(reported));
  if (typeof stack === 'string') err.stack = stack;
  if (typeof code === 'string') Object.assign(err, { code });
  return err;
}
