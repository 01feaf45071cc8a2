import type { EventDraft } from '../store/events.ts';

/** What every synced object's event data carries besides its own columns. */
interface ObjectEventData {
  id: string;
  state: 'active' | 'soft_deleted';
  deleted_at: string | null;
}

/** The keys whose values differ, with their old values (Stripe's `previous_attributes`); the deletion state has events of its own. */
function previousAttributes<Data extends ObjectEventData>(before: Data, after: Data): Record<string, unknown> {
  const previous: Record<string, unknown> = {};
  for (const key of Object.keys(after) as (keyof Data & string)[]) {
    if (key === 'state' || key === 'deleted_at') continue;
    const [was, is] = [before[key], after[key]];
    // Only arrays (phone numbers) need comparing by content; every other value is a primitive.
    if (was !== is && (typeof was !== 'object' || typeof is !== 'object' || JSON.stringify(was) !== JSON.stringify(is))) previous[key] = was;
  }
  return previous;
}

/** One object's row after a page: its merged columns when its data changed, null otherwise. */
export interface RowChangeOf<Row> {
  id: string;
  change: string;
  row: Row | null;
}

/**
 * The events of a page's applied row changes (users or groups): derived from
 * what changed, once, so a replayed page (which changes nothing) emits nothing
 * (sync rules 21 and 22). `created`, `soft_deleted`, `restored`, or `updated`
 * with the changed keys only.
 */
export function rowChangeEvents<Stored extends { deleted_at: number | null }, Row extends object, Data extends ObjectEventData>(
  object: 'user' | 'group',
  tenantId: string,
  changes: readonly RowChangeOf<Row>[],
  stored: ReadonlyMap<string, Stored>,
  dataOf: (row: Partial<Stored> & Row & { id: string }) => Data,
): EventDraft[] {
  const drafts: EventDraft[] = [];
  for (const { id, change, row } of changes) {
    if (!row) continue;
    const before = stored.get(id);
    // A new object's row is all there is: read as it is, not copied (a full sync's every event is one).
    const merged = before ? { ...before, ...row, id } : (row as { id?: unknown }).id === id ? row : { ...row, id };
    const after = dataOf(merged as Partial<Stored> & Row & { id: string });
    let type: string;
    let previous: Record<string, unknown> | null = null;
    if (!before) type = `${object}.created`;
    else if (change === 'soft-deleted') type = `${object}.soft_deleted`;
    else if (before.deleted_at !== null && after.deleted_at === null) type = `${object}.restored`;
    else {
      previous = previousAttributes(dataOf({ ...before, id } as unknown as Partial<Stored> & Row & { id: string }), after);
      if (Object.keys(previous).length === 0) continue;
      type = `${object}.updated`;
    }
    drafts.push({ type, tenantId, data: after, previousAttributes: previous });
  }
  return drafts;
}
