import type { ChangeKind, DeltaItem, FoldContext } from './object-kind.ts';

/** What every mirrored row carries besides its data: the run's mark and the soft delete. */
export interface MarkedRow {
  id: string;
  seen_run_id: string | null;
  deleted_at: number | null;
}

export interface WorkingRow<Row> {
  row: Row;
  /** Columns the page's items named: written even when unchanged, as Graph sent them. */
  mentioned: Set<string>;
  /** Reported as an object (not only as `@removed`). */
  listed: boolean;
  /** The last item about it reported it permanently deleted. */
  removed: boolean;
}

/** How one kind turns a listed item's properties into its columns. */
export interface RowMapping<Row> {
  /** A row for an object not stored yet. */
  fresh(id: string): Row;
  /** Sets the columns the item mentions (a partial update never blanks the rest); returns their names. */
  assign(row: Row, item: DeltaItem): Iterable<string>;
}

/**
 * What each object becomes after the page's items, in the page's order
 * (duplicates and all). `@removed` with reason `deleted` waits for the end of
 * the round (rules 8 and 9): a full listing leaves it unseen, a delta round
 * marks it pending; any other reason soft-deletes.
 */
export function mergeItems<Row extends MarkedRow>(
  items: readonly DeltaItem[],
  stored: ReadonlyMap<string, Row>,
  { runId, kind, now }: FoldContext,
  mapping: RowMapping<Row>,
): Map<string, WorkingRow<Row>> {
  const current = new Map<string, WorkingRow<Row>>();
  for (const item of items) {
    const before = stored.get(item.id);
    let working = current.get(item.id) ?? (before ? { row: { ...before }, mentioned: new Set<string>(), listed: false, removed: false } : undefined);
    const removed = item['@removed'];
    if (removed) {
      if (!working) continue;
      if (removed.reason === 'deleted') {
        working.row.seen_run_id = kind === 'delta' ? runId : null;
        working.removed = true;
      } else working.row.deleted_at ??= now;
    } else {
      working ??= { row: mapping.fresh(item.id), mentioned: new Set(), listed: false, removed: false };
      for (const column of mapping.assign(working.row, item)) working.mentioned.add(column);
      working.row.deleted_at = null;
      working.listed = true;
      working.removed = false;
      if (kind === 'full') working.row.seen_run_id = runId;
      else if (working.row.seen_run_id === runId) working.row.seen_run_id = null;
    }
    current.set(item.id, working);
  }
  return current;
}

/** One row's outcome: only real changes are written and counted; bookkeeping alone is a mark. */
export interface RowChange<Write> {
  change: ChangeKind;
  write: Write | null;
  mark: Record<string, unknown> | null;
  pendingRemovals: number;
}

/** Compares a merged row with the stored one over the kind's data columns. */
export function rowChange<Row extends MarkedRow, Write extends { id: string }>(
  working: WorkingRow<Row>,
  before: Row | undefined,
  dataColumns: readonly string[],
  { runId, kind, now }: FoldContext,
): RowChange<Write> {
  const { row, mentioned, listed, removed } = working;
  const value = (r: Row, c: string) => (r as unknown as Record<string, unknown>)[c];
  const columns = dataColumns.filter((c) => c in row && (!before || mentioned.has(c) || value(row, c) !== value(before, c)));
  const changed = !before || columns.some((c) => value(row, c) !== value(before, c));
  const seenChanged = row.seen_run_id !== (before?.seen_run_id ?? null);
  const pendingRemovals = kind === 'delta' ? Number(row.seen_run_id === runId) - Number(before?.seen_run_id === runId) : 0;
  const bookkeeping = { ...(listed ? { synced_at: now } : {}), ...(seenChanged ? { seen_run_id: row.seen_run_id } : {}) };
  if (changed) {
    const write: Record<string, unknown> = { id: row.id, updated_at: now };
    for (const c of columns) write[c] = value(row, c);
    Object.assign(write, bookkeeping);
    const change = !before ? 'created' : before.deleted_at === null && row.deleted_at !== null ? 'soft-deleted' : 'updated';
    return { change, write: write as Write, mark: null, pendingRemovals };
  }
  return { change: removed ? 'removed' : 'unchanged', write: null, mark: listed || seenChanged ? bookkeeping : null, pendingRemovals };
}

/** Rows with nothing but bookkeeping share one update per set of values. */
export function marksByValues(changes: readonly { id: string; mark: Record<string, unknown> | null }[]): { values: Record<string, unknown>; ids: string[] }[] {
  const marks = new Map<string, { values: Record<string, unknown>; ids: string[] }>();
  for (const change of changes) {
    if (!change.mark) continue;
    const key = JSON.stringify(change.mark);
    const group = marks.get(key) ?? { values: change.mark, ids: [] };
    group.ids.push(change.id);
    marks.set(key, group);
  }
  return [...marks.values()];
}
