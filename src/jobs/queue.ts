import { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import { logOutcome, settleRun } from '../directory/outcome.ts';
import type { DirectorySync } from '../directory/sync.ts';
import type { JobsRepository } from '../store/jobs.ts';
import { runOptions } from './scheduler.ts';
import { databaseUnavailable } from '../store/database.ts';

export const SYNC_QUEUE = 'directory-sync';
/** A scheduled job: pg-boss hands each minute's purge of expired rows to one worker, however many run. */
export const PURGE_QUEUE = 'purge-expired';
const PURGE_CRON = '* * * * *';

/**
 * A job whose worker stops refreshing it for this long is failed, which frees
 * its tenant for the next queued job. Without it, a job claimed by a fetch
 * whose answer was lost to a database outage would stay active, and block its
 * tenant (one active job per tenant), until it expires an hour later.
 */
const HEARTBEAT_SECONDS = 30;

/**
 * How often pg-boss's checks run (expiry, heartbeats, and the list of tenants
 * with an active job), and how often each process rereads that list. A fetch
 * skips the tenants on it: a tenant whose run was under way at the last check
 * waits, after its run ended, until both have been redone. At pg-boss's
 * defaults (a minute each) that left a tenant's queued sync untouched for one
 * to two minutes with nothing active.
 */
const SUPERVISE_SECONDS = 10;
const QUEUE_CACHE_SECONDS = 2;

/** pg-boss reports a failing poll every second while the database is away: the same error or warning is logged once a minute. */
const REPEAT_LOG_MS = 60_000;

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

/** What pg-boss's warnings carry that an operator can act on; a slow query's parameters stay out of the logs. */
function warningDetails(data: unknown): Record<string, unknown> | undefined {
  if (!data || typeof data !== 'object') return undefined;
  const { elapsed, sql, name } = data as { elapsed?: unknown; sql?: unknown; name?: unknown };
  const details = { ...(typeof elapsed === 'number' ? { elapsedSeconds: elapsed } : {}), ...(typeof sql === 'string' ? { sql: sql.slice(0, 200) } : {}), ...(typeof name === 'string' ? { queue: name } : {}) };
  return Object.keys(details).length > 0 ? details : undefined;
}

/**
 * Logs what pg-boss reports, each message at most once a minute. Without an
 * 'error' listener pg-boss's errors would end the process (its pool and polls
 * recover by themselves); its warnings (a slow query, a backlog, its checks
 * backing off under load, which stalls queued syncs) are otherwise silent.
 */
export function reportQueueEvents(boss: Pick<PgBoss, 'on'>, logger: Logger): void {
  const lastLogged = new Map<string, number>();
  const due = (key: string) => {
    const now = Date.now();
    if (now - (lastLogged.get(key) ?? -Infinity) < REPEAT_LOG_MS) return false;
    // Messages that name a count or a time differ each time: the map is cut back rather than left to grow.
    if (lastLogged.size >= 100) lastLogged.clear();
    lastLogged.set(key, now);
    return true;
  };
  boss.on('error', (reported: unknown) => {
    const err = asError(reported);
    if (!due(`error:${err.message}`)) return;
    const unavailable = databaseUnavailable(err);
    if (unavailable) logger.warn({ err: unavailable }, 'job queue: the database is unavailable; polling on');
    else logger.error({ err }, 'job queue error');
  });
  boss.on('warning', (warning: { message?: unknown; data?: unknown }) => {
    const message = typeof warning?.message === 'string' ? warning.message : 'pg-boss warning';
    if (!due(`warning:${message}`)) return;
    logger.warn({ pgBoss: warningDetails(warning?.data) }, `job queue: ${message}`);
  });
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
    // The checks run every 10 s, so a job lost to an outage is failed (and its tenant free) soon after its heartbeat stops:
    // monitorIntervalSeconds alone does not do it, the checks run no more often than the supervise timer fires.
    const boss = new PgBoss({
      connectionString,
      schema: 'pgboss',
      superviseIntervalSeconds: SUPERVISE_SECONDS,
      monitorIntervalSeconds: SUPERVISE_SECONDS,
      queueCacheIntervalSeconds: QUEUE_CACHE_SECONDS,
    });
    reportQueueEvents(boss, logger);
    await boss.start();
    await boss.createQueue(SYNC_QUEUE, { policy: 'stately', retryLimit: 0, expireInSeconds: 3600, heartbeatSeconds: HEARTBEAT_SECONDS });
    // Queues created before the heartbeat existed get it too.
    await boss.updateQueue(SYNC_QUEUE, { heartbeatSeconds: HEARTBEAT_SECONDS });
    await boss.createQueue(PURGE_QUEUE, { policy: 'singleton', retryLimit: 0, expireInSeconds: 300 });
    await boss.schedule(PURGE_QUEUE, PURGE_CRON);
    return new SyncQueue(boss, logger);
  }

  /** Queues a sync of the tenant unless one is already queued; `startAfterSeconds` defers it (a burst of notifications joins it meanwhile). */
  async enqueue(tenantId: string, options: { full?: boolean; startAfterSeconds?: number } = {}): Promise<boolean> {
    const id = await this.#boss.send(SYNC_QUEUE, { tenantId, full: options.full ?? false } satisfies SyncJob, {
      singletonKey: tenantId,
      ...(options.startAfterSeconds ? { startAfter: options.startAfterSeconds } : {}),
    });
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
      if (purged.authRequests + purged.sessions + purged.events > 0) this.#logger.info(purged, 'expired sign-in requests, sessions and events purged');
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

/** pg-boss reports its workers' errors as plain copies of them (`{...err, message, stack, queue}`). */
function asError(reported: unknown): Error {
  if (reported instanceof Error) return reported;
  const { message, stack, code } = (reported ?? {}) as { message?: unknown; stack?: unknown; code?: unknown };
  const err = new Error(typeof message === 'string' ? message : String(reported));
  if (typeof stack === 'string') err.stack = stack;
  if (typeof code === 'string') Object.assign(err, { code });
  return err;
}
