import type { Logger } from 'pino';
import { logOutcome, settleRun } from '../directory/outcome.ts';
import type { DirectorySync, RunOptions, SyncOutcome } from '../directory/sync.ts';
import { databaseUnavailable, type Store } from '../store/database.ts';
import { GraphSubscriptionRepository } from '../store/graph-subscriptions.ts';
import { JobsRepository } from '../store/jobs.ts';
import { SyncDebouncer } from './debounce.ts';
import type { SyncQueue } from './queue.ts';

export interface SchedulerOptions {
  store: Store;
  sync: DirectorySync;
  logger: Logger;
  /** Every active tenant is synced this often (default 15 minutes, well inside a delta link's 7 days). */
  intervalMinutes: number;
  /** How often the schedule is checked. */
  tickMs?: number;
  /** With a queue (PostgreSQL), due tenants are queued for any worker instead of run here, and the queue purges expired rows. */
  queue?: SyncQueue;
  now?: () => number;
  /** Aborted at shutdown: runs under way stop after the page in hand commits. */
  signal?: AbortSignal;
  /** Sessions unused this long are purged with the expired ones (default 60). */
  sessionIdleMinutes?: number;
  /** Graph change notifications: subscriptions kept at every tick, and the longer interval of tenants whose subscription is healthy. */
  notifications?: {
    subscriptions: { maintain(): Promise<unknown> };
    healthyIntervalMinutes: number;
    /** How long a wish to sync waits for the rest of its burst (default 500 ms). */
    debounceMs?: number;
  };
}

/**
 * In-process scheduling: every active tenant on its interval, plus on demand.
 * Each tenant's run is its own task, so one failing or throttled tenant never
 * holds up another; `DirectorySync` keeps it to one run per tenant at a time,
 * also against other processes. Without a queue, each tick also purges
 * expired sign-in requests and sessions.
 */
export class SyncScheduler {
  readonly #options: SchedulerOptions;
  readonly #jobs: JobsRepository;
  readonly #running = new Map<string, Promise<SyncOutcome | undefined>>();
  readonly #now: () => number;
  readonly #subscriptions: GraphSubscriptionRepository;
  readonly #debouncer: SyncDebouncer;
  #timer: NodeJS.Timeout | undefined;
  #stopping = false;
  #tickFailing = false;
  #purgeFailing = false;

  constructor(options: SchedulerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#jobs = new JobsRepository(options.store, { sessionIdleMs: (options.sessionIdleMinutes ?? 60) * 60_000 });
    this.#subscriptions = new GraphSubscriptionRepository(options.store.db);
    this.#debouncer = new SyncDebouncer({
      delayMs: options.notifications?.debounceMs ?? 500,
      run: (tenantId) => this.#running.get(tenantId) ?? this.#launch(tenantId, {}),
      isRunning: (tenantId) => this.#running.has(tenantId),
    });
  }

  start(): void {
    void this.#scheduledTick();
    this.#timer = setInterval(() => void this.#scheduledTick(), this.#options.tickMs ?? 30_000);
    this.#timer.unref();
  }

  /** A tick from the timer: a database outage is logged when it starts and when it ends, and the next tick tries again. */
  async #scheduledTick(): Promise<void> {
    try {
      await this.tick();
      if (this.#tickFailing) this.#options.logger.info('sync schedule checks work again');
      this.#tickFailing = false;
    } catch (err) {
      if (!this.#tickFailing) this.#options.logger.warn({ err }, 'could not check the sync schedule; trying again at every tick');
      this.#tickFailing = true;
    }
  }

  /** Starts a run for every active tenant that is due; returns the ones started. */
  async tick(): Promise<string[]> {
    if (this.#stopping) return [];
    const { queue, logger } = this.#options;
    // Like the schedule checks, a purge that keeps failing (a database out of reach) is logged when it starts and when it ends.
    if (!queue) {
      await this.purgeExpired().then(
        () => {
          if (this.#purgeFailing) logger.info('purging expired sign-in requests and sessions works again');
          this.#purgeFailing = false;
        },
        (err: unknown) => {
          if (!this.#purgeFailing) logger.warn({ err: databaseUnavailable(err) ?? err }, 'purging expired sign-in requests and sessions failed; trying again at every tick');
          this.#purgeFailing = true;
        },
      );
    }
    const { notifications } = this.#options;
    if (notifications) await notifications.subscriptions.maintain().catch((err: unknown) => logger.error({ err }, 'keeping Graph subscriptions failed'));
    const tenants = await this.#jobs.activeTenantSchedules();
    const intervalMs = this.#options.intervalMinutes * 60_000;
    // Notifications are a shortcut, not the source of truth (rule 5): a tenant whose subscription is healthy is still synced, less often.
    const live = notifications ? await this.#subscriptions.healthyTenants(this.#now()) : new Set<string>();
    const started: string[] = [];
    for (const tenant of tenants) {
      if (this.#stopping) break;
      if (this.#running.has(tenant.id) || tenant.health === 'held') continue;
      const last = Math.max(tenant.lastSuccessAt ?? 0, tenant.health === 'ok' ? 0 : (tenant.lastAttemptAt ?? 0));
      const interval = live.has(tenant.id) ? Math.max(intervalMs, notifications!.healthyIntervalMinutes * 60_000) : intervalMs;
      if (last !== 0 && this.#now() - last < interval) continue;
      if (queue) {
        if (await queue.enqueue(tenant.id)) started.push(tenant.id);
        continue;
      }
      this.#launch(tenant.id, {});
      started.push(tenant.id);
    }
    return started;
  }

  /** Deletes expired sign-in requests and sessions; logs how many when there were any. */
  async purgeExpired(): Promise<void> {
    const purged = await this.#jobs.purgeExpired(this.#now());
    if (purged.authRequests + purged.sessions + purged.events > 0) this.#options.logger.info(purged, 'expired sign-in requests, sessions and events purged');
  }

  /** "Sync now": starts (or, with a queue, queues) a run unless one is under way; resolves when it ends here. */
  syncNow(tenantId: string, options: { full?: boolean } = {}): Promise<SyncOutcome | undefined> {
    if (this.#stopping) return Promise.resolve(undefined);
    if (this.#options.queue) return this.#options.queue.enqueue(tenantId, options).then(() => undefined);
    return this.#running.get(tenantId) ?? this.#launch(tenantId, options);
  }

  /**
   * A change notification's wish to sync: a delta round soon, bursts coalesced
   * (rule 3). In process: debounced here; with a queue: a deferred job that
   * the queue's one-queued-job-per-tenant policy coalesces across processes.
   */
  syncSoon(tenantId: string): void {
    if (this.#stopping) return;
    const { queue, logger, notifications } = this.#options;
    if (queue) {
      void queue.enqueue(tenantId, { startAfterSeconds: Math.ceil((notifications?.debounceMs ?? 500) / 1000) }).catch((err: unknown) => logger.warn({ err, tenant: tenantId }, 'could not queue the sync a change notification asked for; the scheduled round will catch it'));
      return;
    }
    this.#debouncer.request(tenantId);
  }

  /** Resolves once every round a notification asked for has ended. */
  settleRequested(): Promise<void> {
    return this.#debouncer.settle();
  }

  isRunning(tenantId: string): boolean {
    return this.#running.has(tenantId);
  }

  /** Takes no new work and waits for the runs under way (which stop early once `signal` is aborted). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#debouncer.stop();
    clearInterval(this.#timer);
    await Promise.allSettled(this.#running.values());
  }

  #launch(tenantId: string, options: { full?: boolean }): Promise<SyncOutcome | undefined> {
    const { logger, sync, signal } = this.#options;
    const task = settleRun(sync.run(tenantId, runOptions(options, signal)))
      .then((result) => {
        logOutcome(logger, { id: tenantId }, result);
        return 'outcome' in result ? result.outcome : undefined;
      })
      .finally(() => this.#running.delete(tenantId));
    this.#running.set(tenantId, task);
    return task;
  }
}

/** Run options with the shutdown signal, when there is one. */
export function runOptions(options: Omit<RunOptions, 'signal'>, signal: AbortSignal | undefined): RunOptions {
  return signal ? { ...options, signal } : options;
}
