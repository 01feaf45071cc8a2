import type { Store } from '../store/database.ts';
import { syncHealthEvent } from '../events/tenants.ts';
import { transaction } from '../store/repositories.ts';
import type { SyncRunCounters } from '../store/sync-runs.ts';
import type { GraphPage } from './graph-reader.ts';
import { decideRemovals } from './mass-deletion.ts';
import type { DeltaItem, ObjectKind, RoundKind } from './object-kind.ts';
import type { TenantLock } from './tenant-lock.ts';
import { WrittenIds } from './written-ids.ts';

/** A run in progress: what it has done so far and, in a delta round, how many objects it has marked for removal at its end. */
export interface Round {
  tenantId: string;
  runId: string;
  kind: RoundKind;
  counters: SyncRunCounters;
  pendingRemovals: number;
  /** At the end of a full listing: ids of the tenant's soft-deleted objects (Graph's deleted items), which the listing omits. */
  softDeleted?: ReadonlySet<string>;
  /** Known at the first page of a full round: the tenant held nothing `KindRows.holdsNothing` asks about. */
  startedEmpty?: boolean;
  /** In a round that started empty: the ids its pages have written, so a page looks up only those it may have written before. */
  written?: WrittenIds;
}

export type PageOutcome = 'continue' | 'held' | 'succeeded';

export interface PageSinkOptions<Stored, Write> {
  store: Store;
  kind: ObjectKind<Stored, Write>;
  lock: TenantLock;
  massDeletionShare: number;
  now: () => number;
}

/**
 * Writes one page in one transaction: the lease renewal, the folded changes,
 * the run's counters and the cursor that follows the page, so a crash at any
 * instant resumes where the last commit left off. The last page of a round
 * also applies (or holds) the round's removals.
 */
export class PageSink<Stored, Write> {
  readonly #options: PageSinkOptions<Stored, Write>;

  constructor(options: PageSinkOptions<Stored, Write>) {
    this.#options = options;
  }

  /** Writes the page; the round's counters move only once it has committed. */
  async write(round: Round, page: GraphPage<DeltaItem>, onRemoving?: () => void): Promise<PageOutcome> {
    const { store, kind, lock, massDeletionShare } = this.#options;
    const { tenantId, runId } = round;
    const now = this.#options.now();
    const counters = { ...round.counters };
    let pendingRemovals = round.pendingRemovals;
    const outcome = await transaction(store, async (repos) => {
      await lock.renew(repos.syncState, tenantId);
      const rows = kind.rows(repos);
      const items = page.value ?? [];
      if (round.kind === 'full' && round.counters.pages === 0) {
        round.startedEmpty = (await rows.holdsNothing?.(tenantId)) ?? false;
        round.written = round.startedEmpty ? new WrittenIds() : undefined;
      }
      const context = { runId, kind: round.kind, now };
      const merged = (await rows.mergePage?.(tenantId, items, context, round.startedEmpty === true)) ?? null;
      const rest = merged ? merged.rest : items;
      // What a merge leaves over is what another writer stored meanwhile: looked up in full, not through the round's written ids.
      const stored = rest.length > 0 ? await rows.stored(tenantId, rest, round.startedEmpty === true, merged ? undefined : round.written) : new Map<string, Stored>();
      const folded = rest.length > 0 ? kind.fold(rest, stored, context) : [];
      const written = folded.length > 0 ? await rows.apply(tenantId, folded) : [];
      const changes = merged ? [...merged.changes, ...folded] : folded;
      // Before the commit: should it fail, an id too many only costs a lookup.
      if (round.written) for (const change of changes) if (change.write) round.written.add(change.id);
      // An object's own event first, then those of what hangs on it (a new group, then its members).
      // With events off nothing is built for them either.
      const events = repos.events.enabled ? [...(merged ? kind.events(tenantId, merged.changes, merged.stored) : []), ...kind.events(tenantId, folded, stored), ...written] : [];
      for (const change of changes) {
        if (change.change === 'created') counters.created += 1;
        else if (change.change === 'updated') counters.updated += 1;
        else if (change.change === 'soft-deleted') counters.deleted += 1;
        if (change.listed) counters.listed += 1;
        pendingRemovals += change.pendingRemovals;
      }
      counters.pages += 1;

      const nextLink = page['@odata.nextLink'] ?? null;
      let status: 'running' | 'succeeded' | 'held' = nextLink ? 'running' : 'succeeded';
      let error: string | null = null;
      if (!nextLink && (round.kind === 'full' || pendingRemovals > 0)) {
        // The round is complete: its removals are applied in one step, or held when they are too many.
        onRemoving?.();
        if (round.kind === 'full' && round.softDeleted?.size) counters.updated += await rows.keepSoftDeleted(tenantId, runId, [...round.softDeleted], now);
        // Counted by the kind: a group's removal also takes its memberships.
        const removing = await rows.countPending(tenantId, runId, round.kind);
        const decision = decideRemovals({ kind: round.kind, removing, total: await rows.total(tenantId), share: massDeletionShare, noun: kind.noun });
        if (decision.hold) {
          status = 'held';
          error = decision.reason;
        } else counters.deleted += await rows.removePending(tenantId, runId, round.kind, now);
      }
      await kind.runs(repos).record(runId, counters, { status, error, now });
      const health = await kind.cursor(repos).savePage(tenantId, { nextLink, deltaLink: page['@odata.deltaLink'] ?? null, status, error, now });
      const healthEvent = health && syncHealthEvent(tenantId, { ...health, error, runId, objects: kind.objects });
      // Last, so the outbox's turn (on PostgreSQL) is held only until the commit that follows.
      await repos.events.append(healthEvent ? [...events, healthEvent] : events, now);
      return status === 'running' ? 'continue' : status;
    });
    round.counters = counters;
    round.pendingRemovals = pendingRemovals;
    return outcome;
  }
}
