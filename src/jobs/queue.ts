import { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import { logOutcome, settleRun } from '../directory/outcome.ts';
import type { DirectorySync } from '../directory/sync.ts';
import type { JobsRepository } from '../store/jobs.ts';
import { runOptions } from './scheduler.ts';

export const SYNC_QUEUE = 'directory-sync';
/** A scheduled job: pg-boss hands each minute's purge of expired rows to one worker, however many run. */
export const PURGE_QUEUE = 'purge-expired';
const PURGE_CRON = '* * * * *';

interface SyncJob {
  tenantId: string;
  full: boolean;
}

export interface QueueWork {
  sync: DirectorySync;
  jobs: JobsRepository;
  concurrency: number;
  /** Aborted at shutdown: the run in hand stops after its page commits. */
  signal?: AbortSignal;
  now?: () => number;
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
  #working = false;

  private constructor(boss: PgBoss, logger: Logger) {
    this.#boss = boss;
    this.#logger = logger;
  }

  static async start(connectionString: string, logger: Logger): Promise<SyncQueue> {
    const boss = new PgBoss({ connectionString, schema: 'pgboss' });
    boss.on('error', (err) => logger.error({ err }, 'job queue error'));
    await boss.start();
    await boss.createQueue(SYNC_QUEUE, { policy: 'stately', retryLimit: 0, expireInSeconds: 3600 });
    await boss.createQueue(PURGE_QUEUE, { policy: 'singleton', retryLimit: 0, expireInSeconds: 300 });
    await boss.schedule(PURGE_QUEUE, PURGE_CRON);
    return new SyncQueue(boss, logger);
  }

  /** Queues a sync of the tenant unless one is already queued. */
  async enqueue(tenantId: string, options: { full?: boolean } = {}): Promise<boolean> {
    const id = await this.#boss.send(SYNC_QUEUE, { tenantId, full: options.full ?? false } satisfies SyncJob, { singletonKey: tenantId });
    return id !== null;
  }

  /** Queues a purge of expired rows now (the schedule queues one every minute). */
  async enqueuePurge(): Promise<void> {
    await this.#boss.send(PURGE_QUEUE, {});
  }

  /** Takes sync jobs from the queue, `concurrency` at a time in this process, and the scheduled purges. */
  async work({ sync, jobs, concurrency, signal, now = Date.now }: QueueWork): Promise<void> {
    this.#working = true;
    await this.#boss.work<SyncJob>(SYNC_QUEUE, { localConcurrency: concurrency, pollingIntervalSeconds: 1 }, async ([job]) => {
      if (!job) return;
      const { tenantId, full } = job.data;
      logOutcome(this.#logger, { id: tenantId }, await settleRun(sync.run(tenantId, runOptions({ full }, signal))));
    });
    await this.#boss.work(PURGE_QUEUE, { pollingIntervalSeconds: 5 }, async () => {
      const purged = await jobs.purgeExpired(now());
      if (purged.authRequests + purged.sessions > 0) this.#logger.info(purged, 'expired sign-in requests and sessions purged');
    });
  }

  /** Stops fetching jobs and waits for the ones in hand (stopped early by the shutdown signal). */
  async stopWorking(): Promise<void> {
    if (!this.#working) return;
    this.#working = false;
    await Promise.all([this.#boss.offWork(SYNC_QUEUE, { wait: true }), this.#boss.offWork(PURGE_QUEUE, { wait: true })]);
  }

  async stop(): Promise<void> {
    await this.stopWorking();
    await this.#boss.stop({ graceful: true, timeout: 30_000 });
  }
}
