import { randomUUID } from 'node:crypto';
import { syncHealthEvent } from '../events/tenants.ts';
import type { EntraApp } from '../identity/entra-app.ts';
import { whenDatabaseAnswers, type Store } from '../store/database.ts';
import { repositoriesOf, transaction, type Repositories } from '../store/repositories.ts';
import type { SyncRunRepository, SyncRunRow } from '../store/sync-runs.ts';
import { TenantLifecycle } from '../tenants/lifecycle.ts';
import { HeldDeletionError, NoHeldDeletionError, SyncStoppedError, TenantBusyError, TenantNotActiveError } from './errors.ts';
import { classifyFailure, isExpiredDeltaLink } from './failures.ts';
import type { AccessTokenSource, GraphPage, GraphReader } from './graph-reader.ts';
import { DEFAULT_MASS_DELETION_SHARE } from './mass-deletion.ts';
import type { DeltaItem, KindRows, ObjectKind, RoundKind } from './object-kind.ts';
import { PageSink, type PageOutcome, type Round } from './sink.ts';
import { GraphSource } from './source.ts';
import { TenantLock } from './tenant-lock.ts';
import { GROUPS } from './group-kind.ts';
import { reconcileGroupRoles } from '../tenants/group-roles.ts';
import { USERS } from './user-kind.ts';

export { HeldDeletionError, TenantBusyError };
export { SYNCED_PROPERTIES } from './user-kind.ts';

/** A run that created this many objects refreshes the database's statistics of their table. */
const ANALYZE_AFTER_CREATED = 1000;

/** Why a run stopped on its caller's signal: recorded on the run, which the next run resumes. */
export const STOPPED_REASON = 'stopped: Roster was shutting down';

export interface SyncProgress {
  runId: string;
  /** Which kind the run is mirroring: users first, then groups. */
  objects: 'users' | 'groups';
  kind: RoundKind;
  phase: 'listing' | 'removing' | 'waiting' | 'done';
  pages: number;
  users: number;
  created: number;
  updated: number;
  deleted: number;
  detail?: string;
}

export type SyncOutcome = Omit<SyncRunRow, 'tenant_id'> & {
  tenantId: string;
  /** The groups' run that followed a successful users' run; absent when it did not run (users failed, groups held, stopped). */
  groups?: SyncOutcome;
};

export interface RunOptions {
  full?: boolean;
  onProgress?: (progress: SyncProgress) => void;
  /**
   * Aborting it stops the run after the page in hand is committed (or rolled
   * back): the run is recorded as failed with `STOPPED_REASON`, the tenant's
   * lease is released at once, and the next run resumes from the saved cursor.
   */
  signal?: AbortSignal;
}

export interface DirectorySyncOptions {
  store: Store;
  entra: EntraApp;
  reader: GraphReader;
  graphBaseUrl: URL;
  now?: () => number;
  /** A full resync or delta round that would remove more than this share of a tenant's users is held (default 0.3). */
  massDeletionShare?: number;
  /** Consent reaches every Microsoft service within minutes: token failures this soon after sign-up are retried, not flagged. */
  consentGraceMs?: number;
  pageSize?: number;
}

/** How a listing ended, short of an error. */
type ListingEnd = Exclude<PageOutcome, 'continue'> | 'stopped' | { expired: string };

type Kind = ObjectKind<unknown, unknown>;

/**
 * Keeps one tenant's users, then its groups and memberships, equal to what
 * Graph reports: full listings through the kind's delta function (which ends
 * with a delta link), then incremental rounds from that link. Pages flow from
 * the Graph source through the kind's fold into the page sink, which commits
 * each page's writes with the cursor that follows it. Each kind has its own
 * cursor and health; the tenant's lease covers both.
 */
export class DirectorySync {
  readonly #store: Store;
  readonly #repos: Repositories;
  readonly #lifecycle: TenantLifecycle;
  readonly #entra: EntraApp;
  readonly #reader: GraphReader;
  readonly #graphBaseUrl: URL;
  readonly #now: () => number;
  readonly #massDeletionShare: number;
  readonly #consentGraceMs: number;
  readonly #pageSize: number;

  constructor(options: DirectorySyncOptions) {
    this.#store = options.store;
    this.#repos = repositoriesOf(options.store);
    this.#lifecycle = new TenantLifecycle(options.store);
    this.#entra = options.entra;
    this.#reader = options.reader;
    this.#graphBaseUrl = options.graphBaseUrl;
    this.#now = options.now ?? Date.now;
    this.#massDeletionShare = options.massDeletionShare ?? DEFAULT_MASS_DELETION_SHARE;
    this.#consentGraceMs = options.consentGraceMs ?? 5 * 60_000;
    this.#pageSize = options.pageSize ?? 999;
    if (!(this.#massDeletionShare >= 0 && this.#massDeletionShare <= 1)) throw new RangeError(`massDeletionShare must be between 0 and 1, not ${this.#massDeletionShare}`);
    if (!Number.isInteger(this.#pageSize) || this.#pageSize < 1) throw new RangeError(`pageSize must be a positive integer, not ${this.#pageSize}`);
  }

  /**
   * Runs (or resumes) a sync of one active tenant; the tenant id comes from
   * Roster's registry. Throws `TenantBusyError` while another process syncs it.
   */
  async run(tenantId: string, options: RunOptions = {}): Promise<SyncOutcome> {
    if (options.signal?.aborted) throw new SyncStoppedError(`the sync of tenant ${tenantId} was stopped before it started`);
    const tenant = await this.#repos.tenants.get(tenantId);
    if (!tenant || tenant.state !== 'active') throw new TenantNotActiveError(`tenant ${tenantId} is not an active tenant`);
    await this.#repos.syncState.ensure(tenantId, this.#now());
    const lock = new TenantLock(this.#repos.syncState, this.#now);
    await lock.acquire(tenantId);
    try {
      // A new run would replace the held one, and with it the decision an admin or operator owes.
      if ((await this.#repos.syncState.ensure(tenantId, this.#now())).health === 'held') throw new HeldDeletionError(`tenant ${tenantId} has a mass deletion waiting for a decision`);
      const users = await this.#run(tenantId, tenant.updatedAt, lock, options, USERS as Kind);
      // Groups follow users in the same run. Their failure (a missing group permission, rule 25) is their own: users' outcome and health stand.
      if (users.status !== 'succeeded' || options.signal?.aborted) return users;
      const groupsHeld = (await GROUPS.cursor(this.#repos).ensure(tenantId, this.#now())).health === 'held';
      const outcome = groupsHeld ? users : { ...users, groups: await this.#run(tenantId, tenant.updatedAt, lock, options, GROUPS as Kind) };
      // Roles and access from groups follow the directory as this round left it.
      await reconcileGroupRoles(this.#repos, tenant, this.#now());
      return outcome;
    } finally {
      // Given back once the database answers again, or the tenant would wait out the lease.
      await whenDatabaseAnswers(() => lock.release(tenantId));
    }
  }

  async #run(tenantId: string, signedUpAt: number, lock: TenantLock, options: RunOptions, kind: Kind): Promise<SyncOutcome> {
    const token: AccessTokenSource = async ({ fresh }) => (await this.#entra.appToken(tenantId, { forceRefresh: fresh })).accessToken;
    const source = new GraphSource({ reader: this.#reader, graphBaseUrl: this.#graphBaseUrl, pageSize: this.#pageSize, token });
    const cursor = kind.cursor(this.#repos);
    const runs = kind.runs(this.#repos);
    const { round, url } = await this.#openRound(tenantId, source, options.full ?? false, kind);
    const { runId } = round;
    try {
      const end = await this.#list(round, url, source, lock, options, kind);
      if (typeof end === 'object') {
        // The delta link expired: start over with a full listing, which removes what vanished meanwhile.
        await runs.close(runId, 'failed', `delta link expired (${end.expired}); full resync started`, this.#now());
        await cursor.forgetDeltaLink(tenantId, this.#now());
        return this.#run(tenantId, signedUpAt, lock, { ...options, full: true }, kind);
      }
      if (end === 'stopped') {
        // The cursor stays: the next run picks the round up where this one stopped.
        await runs.close(runId, 'failed', STOPPED_REASON, this.#now());
        return toOutcome(await runs.require(runId));
      }
      const closed = await runs.require(runId);
      if (closed.created >= ANALYZE_AFTER_CREATED) await kind.rows(this.#repos).refreshStatistics();
      options.onProgress?.({ ...progressOf(round, 'done', kind) });
      return toOutcome(closed);
    } catch (err) {
      if (err instanceof TenantBusyError) throw err;
      const failure = classifyFailure(err, { now: this.#now(), signedUpAt, consentGraceMs: this.#consentGraceMs, permission: kind.permission, reading: `list ${kind.noun}` });
      // A run cut off from its database is recorded as failed, with that reason, once the database is back.
      return whenDatabaseAnswers(async () => {
        await runs.close(runId, 'failed', failure.message, this.#now());
        await transaction(this.#store, async (tx) => {
          const now = this.#now();
          const health = await kind.cursor(tx).recordFailure(tenantId, failure.health, failure.message, now);
          const event = syncHealthEvent(tenantId, { ...health, error: failure.message, runId, objects: kind.objects });
          if (event) await tx.events.append([event], now);
        });
        if (failure.health === 'disconnected') await this.#lifecycle.disconnect(tenantId, failure.message, this.#now());
        return toOutcome(await runs.require(runId));
      });
    }
  }

  /** Resumes the round whose cursor was saved, or starts a new one (a delta round when a delta link is known). */
  async #openRound(tenantId: string, source: GraphSource, full: boolean, objectKind: Kind): Promise<{ round: Round; url: string }> {
    const now = this.#now();
    const syncRuns = objectKind.runs(this.#repos);
    const syncState = objectKind.cursor(this.#repos);
    const state = await syncState.ensure(tenantId, now);
    if (state.run_id && state.run_kind && state.next_link && !full) {
      await syncRuns.reopen(state.run_id);
      const run = await syncRuns.require(state.run_id);
      const round: Round = { tenantId, runId: run.id, kind: state.run_kind, counters: { pages: run.pages, listed: run.listed, created: run.created, updated: run.updated, deleted: run.deleted }, pendingRemovals: 0 };
      // Resumed after a crash or a stop: the committed pages' marks are in the database; a delta round marks whom it will remove.
      if (round.kind === 'delta') round.pendingRemovals = await objectKind.rows(this.#repos).countMarked(tenantId, run.id);
      return { round, url: state.next_link };
    }
    if (state.run_id) await syncRuns.close(state.run_id, 'failed', 'superseded by a new run', now);
    const kind: RoundKind = full || !state.delta_link ? 'full' : 'delta';
    const runId = randomUUID();
    await syncRuns.start({ id: runId, tenantId, kind, now });
    await syncState.beginRun(tenantId, runId, kind, now);
    const round: Round = { tenantId, runId, kind, counters: { pages: 0, listed: 0, created: 0, updated: 0, deleted: 0 }, pendingRemovals: 0 };
    return { round, url: kind === 'full' ? source.fullListingUrl(objectKind) : state.delta_link! };
  }

  /** Reads the round's pages and sinks each; the next page is read while this one is written. */
  async #list(round: Round, url: string, source: GraphSource, lock: TenantLock, options: RunOptions, kind: Kind): Promise<ListingEnd> {
    const sink = new PageSink({ store: this.#store, kind, lock, massDeletionShare: this.#massDeletionShare, now: this.#now });
    let next = source.page(url);
    for (;;) {
      let page: GraphPage<DeltaItem> | undefined;
      try {
        page = await untilAborted(next, options.signal);
      } catch (err) {
        if (round.kind === 'delta' && isExpiredDeltaLink(err)) return { expired: err.code };
        throw err;
      }
      if (!page) return 'stopped';
      const nextLink = page['@odata.nextLink'];
      // Its cursor is saved only with this page's writes.
      if (nextLink) {
        next = source.page(nextLink);
        next.catch(() => {});
      }
      // A full listing omits soft-deleted objects; read them before the last page's transaction so they are kept as such (rule 3).
      if (round.kind === 'full' && !nextLink) round.softDeleted = (await source.softDeletedIds(kind)) ?? new Set(await kind.rows(this.#repos).softDeletedIds(round.tenantId));
      let phase: SyncProgress['phase'] = 'listing';
      const outcome = await sink.write(round, page, () => (phase = 'removing'));
      options.onProgress?.(progressOf(round, phase, kind));
      if (outcome !== 'continue') return outcome;
      if (options.signal?.aborted) return 'stopped';
    }
  }

  /**
   * Applies a held mass deletion: the users (or groups and memberships) the
   * held full listing did not see, or the held delta round reported deleted,
   * are removed; users' sessions end.
   */
  async confirmHeldDeletion(tenantId: string): Promise<number> {
    return this.#decideHeld(tenantId, async (rows, runs, run) => {
      const removed = await rows.removePending(tenantId, run.id, run.kind, this.#now());
      await runs.settleHeld(run.id, { deleted: run.deleted + removed, now: this.#now() });
      return removed;
    });
  }

  /** Keeps the users a held run would have removed; the next full resync asks again if they are still missing. */
  async discardHeldDeletion(tenantId: string): Promise<void> {
    await this.#decideHeld(tenantId, async (rows, runs, run) => {
      if (run.kind === 'delta') await rows.unmarkPendingRemovals(tenantId, run.id);
      await runs.settleHeld(run.id, { error: 'mass deletion discarded by an operator', now: this.#now() });
    });
  }

  /** An operator's decision on a held run (the users' first, else the groups'), under the tenant's lock so no run can be changing the same rows. */
  async #decideHeld<T>(tenantId: string, decide: (rows: KindRows<unknown, unknown>, runs: SyncRunRepository, run: SyncRunRow) => Promise<T>): Promise<T> {
    await this.#repos.syncState.ensure(tenantId, this.#now());
    const lock = new TenantLock(this.#repos.syncState, this.#now);
    await lock.acquire(tenantId);
    try {
      return await transaction(this.#store, async (repos) => {
        for (const kind of [USERS as Kind, GROUPS as Kind]) {
          const cursor = kind.cursor(repos);
          const state = await cursor.get(tenantId);
          const run = state?.run_id ? await kind.runs(repos).get(state.run_id) : undefined;
          // A newer run may have taken the tenant's run id since: only a run still held can be decided.
          if (state?.health !== 'held' || run?.status !== 'held') continue;
          const result = await decide(kind.rows(repos), kind.runs(repos), run);
          const now = this.#now();
          const health = await cursor.settleHeld(tenantId, now);
          const event = syncHealthEvent(tenantId, { ...health, error: null, runId: run.id, objects: kind.objects });
          if (event) await repos.events.append([event], now);
          return result;
        }
        throw new NoHeldDeletionError(`tenant ${tenantId} has no held deletion`);
      });
    } finally {
      await lock.release(tenantId);
    }
  }
}

/** The page read, or undefined once the signal aborts first (the read is left to finish unobserved). */
function untilAborted<T>(read: Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
  if (!signal) return read;
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    read.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

function progressOf(round: Round, phase: SyncProgress['phase'], kind: Kind): SyncProgress {
  const { pages, listed, created, updated, deleted } = round.counters;
  return { runId: round.runId, objects: kind.objects, kind: round.kind, phase, pages, users: listed, created, updated, deleted };
}

function toOutcome(run: SyncRunRow): SyncOutcome {
  const { tenant_id: tenantId, ...rest } = run;
  return { tenantId, ...rest };
}
