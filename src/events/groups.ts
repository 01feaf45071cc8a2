import type { EventDraft } from '../store/events.ts';
import type { GroupKind } from '../store/schema.ts';
import type { GroupRowWrite, StoredGroup } from '../store/synced-groups.ts';
import type { EventType } from './types.ts';
import { rowChangeEvents } from './changes.ts';

/** A group as events show it: Roster's synced columns, booleans and arrays as such, and whether Graph holds it soft-deleted. */
export interface GroupEventData {
  id: string;
  display_name: string | null;
  description: string | null;
  group_types: string[];
  security_enabled: boolean;
  mail_enabled: boolean;
  mail: string | null;
  membership_rule: string | null;
  kind: GroupKind | null;
  dynamic: boolean;
  state: 'active' | 'soft_deleted';
  deleted_at: string | null;
}

/** A direct user membership that was added or removed; nested groups have no membership events. */
export interface GroupMembershipEventData {
  group_id: string;
  user_id: string;
}

type GroupColumns = Partial<Omit<StoredGroup, 'id' | 'seen_run_id' | 'members'>> & { id: string };

export function groupEventData(row: GroupColumns): GroupEventData {
  return {
    id: row.id,
    display_name: row.display_name ?? null,
    description: row.description ?? null,
    group_types: row.group_types ? (JSON.parse(row.group_types) as string[]) : [],
    security_enabled: row.security_enabled === 1,
    mail_enabled: row.mail_enabled === 1,
    mail: row.mail ?? null,
    membership_rule: row.membership_rule ?? null,
    kind: row.kind ?? null,
    dynamic: row.dynamic === 1,
    state: row.deleted_at == null ? 'active' : 'soft_deleted',
    deleted_at: row.deleted_at == null ? null : new Date(row.deleted_at).toISOString(),
  };
}

export interface GroupRowChange {
  id: string;
  change: string;
  write: { row: GroupRowWrite | null } | null;
}

/**
 * The events of a page's group rows (rule 22). Memberships have their own
 * events, from the rows the writes really inserted or deleted.
 */
export function groupChangeEvents(tenantId: string, changes: readonly GroupRowChange[], stored: ReadonlyMap<string, StoredGroup>): EventDraft[] {
  return rowChangeEvents('group', tenantId, changes.map(({ id, change, write }) => ({ id, change, row: write?.row ?? null })), stored, (row) => groupEventData(row as GroupColumns));
}

export function groupEvents(type: Extract<EventType, 'group.soft_deleted' | 'group.deleted'>, tenantId: string, rows: readonly GroupColumns[]): EventDraft[] {
  return rows.map((row) => ({ type, tenantId, data: groupEventData(row) }));
}

/** `group.user_added` / `group.user_removed` for the user memberships among `rows`; group members are skipped. */
export function membershipEvents(
  type: Extract<EventType, 'group.user_added' | 'group.user_removed'>,
  tenantId: string,
  rows: readonly { group_id: string; member_id: string; member_type: string }[],
): EventDraft[] {
  return rows.filter((row) => row.member_type === 'user').map((row) => ({ type, tenantId, data: { group_id: row.group_id, user_id: row.member_id } satisfies GroupMembershipEventData }));
}
