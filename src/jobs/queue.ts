import { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import type { DirectorySync } from '../directory/sync.ts';
import { HeldDeletionError, TenantBusyError } from '../directory/sync.ts';

export const SYNC_QUEUE = 'directory-sync';

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
    const boss = new PgBoss({ connectionString, schema: 'pgboss' });
    boss.on('error', (err) => logger.error({ err }, 'job queue error'));
    await boss.start();
    await boss.createQueue(SYNC_QUEUE, { policy: 'stately', retryLimit: 0, expireInSeconds: 3600 });
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
