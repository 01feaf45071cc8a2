import type { EventDraft } from '../store/events.ts';
import type { Repositories } from '../store/repositories.ts';
import type { SyncRunRepository } from '../store/sync-runs.ts';
import type { SyncCursorRepository } from '../store/sync-state.ts';
import type { WrittenIds } from './written-ids.ts';

export type RoundKind = 'full' | 'delta';

/** One object of a Graph delta page: its properties, or `@removed` when it left the listing. */
export type DeltaItem = { id: string; '@removed'?: { reason?: string } } & Record<string, unknown>;

/** How an object's change is counted on its run. */
export type ChangeKind = 'created' | 'updated' | 'soft-deleted' | 'removed' | 'unchanged';

export interface FoldContext {
  runId: string;
  kind: RoundKind;
  now: number;
}

/** One object after a page: how it changed, and what to write for it. */
export interface ObjectChange<Write> {
  id: string;
  change: ChangeKind;
  /** The row with its merged columns, when its data changed (created, updated, soft-deleted). */
  write: Write | null;
  /** Bookkeeping only (seen in the listing, marked for removal), when its data did not change. */
  mark: Record<string, unknown> | null;
  /** Listed as an object by the page (not only as `@removed`). */
  listed: boolean;
  /** The object stopped being usable here (a user deleted or disabled): its sessions end. */
  ends: boolean;
  /** Change in the number of objects the round will remove at its end (delta rounds). */
  pendingRemovals: number;
}

/** A page the store merged itself: what changed, the stored rows as they were before, and the items left to the usual way. */
export interface MergedPage<Stored, Write> {
  changes: ObjectChange<Write>[];
  stored: Map<string, Stored>;
  rest: DeltaItem[];
}

/**
 * Where a kind's objects are stored, over the repositories of one transaction.
 * The sink and the run use only these, so a kind brings its own tables.
 */
export interface KindRows<Stored, Write> {
  /**
   * The stored rows the page's items name (a kind may load more than the rows, e.g. a group's memberships the page mentions).
   * In a round that started empty, `written` holds (at least) every id its earlier pages wrote: no other can be stored.
   */
  stored(tenantId: string, items: readonly DeltaItem[], startedEmpty?: boolean, written?: WrittenIds): Promise<Map<string, Stored>>;
  /**
   * Whether the tenant holds none of what `stored` would otherwise probe for (a
   * first listing): then a page need look up only what its own round wrote.
   * Asked at the first page of a full round, so a resumed round never counts as empty.
   */
  holdsNothing?(tenantId: string): Promise<boolean>;
  /**
   * Writes a page without reading its stored rows back, where the database can
   * compare them itself (PostgreSQL): the changes with the rows they replaced,
   * and the items it left to the usual read, fold and apply. Null when the
   * page needs the usual way as a whole.
   */
  mergePage?(tenantId: string, items: readonly DeltaItem[], context: FoldContext, startedEmpty: boolean): Promise<MergedPage<Stored, Write> | null>;
  /** Writes the page's changes; returns the events owed for what only the writes know (e.g. which memberships were really inserted). */
  apply(tenantId: string, changes: readonly ObjectChange<Write>[]): Promise<EventDraft[]>;
  /** Objects the run has marked: seen by a full listing, or to be removed by a delta round. */
  countMarked(tenantId: string, runId: string): Promise<number>;
  countPending(tenantId: string, runId: string, kind: RoundKind): Promise<number>;
  total(tenantId: string): Promise<number>;
  /** Removes the objects the finished round leaves pending (and what hangs on them), with their events; returns how many. */
  removePending(tenantId: string, runId: string, kind: RoundKind, now: number): Promise<number>;
  /** Keeps, soft-deleted (with their events), the objects a full listing omitted but Graph holds as deleted items; returns how many changed. */
  keepSoftDeleted(tenantId: string, runId: string, ids: readonly string[], now: number): Promise<number>;
  unmarkPendingRemovals(tenantId: string, runId: string): Promise<void>;
  /** Ids of the objects stored as soft-deleted: kept by a full listing when Graph cannot list its deleted items. */
  softDeletedIds(tenantId: string): Promise<string[]>;
  refreshStatistics(): Promise<void>;
}

/**
 * A kind of directory object the engine mirrors: where Graph lists it, what it
 * selects, how a page folds into rows, and where the rows and the kind's own
 * cursor live. Users (`user-kind.ts`) and groups with their memberships
 * (`group-kind.ts`) are the two.
 */
export interface ObjectKind<Stored, Write> {
  /** What it is called in progress reports. */
  objects: 'users' | 'groups';
  /** Plural noun for messages ("users"). */
  noun: string;
  /** The delta function that lists the kind, e.g. `/v1.0/users/delta`. */
  deltaPath: string;
  select: readonly string[];
  /** Graph's deleted items of the kind (a full listing omits soft-deleted objects). */
  deletedItemsPath: string;
  /** The least privileged application permission that reads the kind, named in the fix for a 403. */
  permission: string;
  /** Pure: a page's items against the stored rows, to the changes. */
  fold(items: readonly DeltaItem[], stored: ReadonlyMap<string, Stored>, context: FoldContext): ObjectChange<Write>[];
  rows(repositories: Repositories): KindRows<Stored, Write>;
  /** The kind's cursor and health, one row per tenant. */
  cursor(repositories: Repositories): SyncCursorRepository;
  /** Where the kind's runs are recorded. */
  runs(repositories: Repositories): SyncRunRepository;
  /** Pure: the events of a page's changes, derived from what changed (a replayed page yields none). */
  events(tenantId: string, changes: readonly ObjectChange<Write>[], stored: ReadonlyMap<string, Stored>): EventDraft[];
}
