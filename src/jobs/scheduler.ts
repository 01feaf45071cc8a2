import type { Logger } from 'pino';
import type { DirectorySync, SyncOutcome } from '../directory/sync.ts';
import { HeldDeletionError, TenantBusyError } from '../directory/sync.ts';
import type { Store } from '../store/database.ts';
import type { SyncQueue } from './queue.ts';

export interface SchedulerOptions {
  store: Store;
  sync: DirectorySync;
  logger: Logger;
  /** Every active tenant is synced this often (default 15 minutes, well inside a delta link's 7 days). */
  intervalMinutes: number;
  /** How often the schedule is checked. */
  tickMs?: number;
  /** With a queue (PostgreSQL), due tenants are queued for any worker instead of run here. */
  queue?: SyncQueue;
  now?: () => number;
}

/**
 * In-process scheduling: every active tenant on its interval, plus on demand.
 * Each tenant's run is its own task, so one failing or throttled tenant never
 * holds up another; `DirectorySync` keeps it to one run per tenant at a time,
 * also against other processes.
 */
export class SyncScheduler {
  readonly #options: SchedulerOptions;
  readonly #running = new Map<string, Promise<SyncOutcome | undefined>>();
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #stopping = false;
  #tickFailing = false;

  constructor(options: SchedulerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
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
    const { db } = this.#options.store;
    const tenants = await db
      .selectFrom('tenants')
      .leftJoin('sync_state', 'sync_state.tenant_id', 'tenants.id')
      .select(['tenants.id as id', 'sync_state.last_success_at as lastSuccess', 'sync_state.updated_at as lastAttempt', 'sync_state.health as health'])
      .where('tenants.state', '=', 'active')
      .execute();
    const intervalMs = this.#options.intervalMinutes * 60_000;
    const started: string[] = [];
    for (const tenant of tenants) {
      if (this.#running.has(tenant.id) || tenant.health === 'held') continue;
      const last = Math.max(tenant.lastSuccess ?? 0, tenant.health === 'ok' ? 0 : (tenant.lastAttempt ?? 0));
      if (last !== 0 && this.#now() - last < intervalMs) continue;
      if (this.#options.queue) {
        if (await this.#options.queue.enqueue(tenant.id)) started.push(tenant.id);
        continue;
      }
      this.#launch(tenant.id, {});
      started.push(tenant.id);
    }
    return started;
  }

  /** "Sync now": starts (or, with a queue, queues) a run unless one is under way; resolves when it ends here. */
  syncNow(tenantId: string, options: { full?: boolean } = {}): Promise<SyncOutcome | undefined> {
    if (this.#options.queue) return this.#options.queue.enqueue(tenantId, options).then(() => undefined);
    return this.#running.get(tenantId) ?? this.#launch(tenantId, options);
  }

  isRunning(tenantId: string): boolean {
    return this.#running.has(tenantId);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#timer);
    await Promise.allSettled(this.#running.values());
  }

  #launch(tenantId: string, options: { full?: boolean }): Promise<SyncOutcome | undefined> {
    const { logger, sync } = this.#options;
    const task = sync
      .run(tenantId, options)
      .then((outcome) => {
        logger.info({ tenant: tenantId, kind: outcome.kind, status: outcome.status, pages: outcome.pages, created: outcome.created, updated: outcome.updated, deleted: outcome.deleted, error: outcome.error }, 'sync run finished');
        return outcome;
      })
      .catch((err: unknown) => {
        if (err instanceof TenantBusyError) logger.info({ tenant: tenantId }, 'sync skipped: another process is syncing this tenant');
        else if (err instanceof HeldDeletionError) logger.info({ tenant: tenantId }, 'sync skipped: a held deletion waits for a decision');
        else logger.error({ tenant: tenantId, err }, 'sync run crashed');
        return undefined;
      })
      .finally(() => this.#running.delete(tenantId));
    this.#running.set(tenantId, task);
    return task;
  }
}
