import { groupChangeEvents, groupEvents, membershipEvents } from '../events/groups.ts';
import type { EventDraft } from '../store/events.ts';
import type { Repositories } from '../store/repositories.ts';
import type { GroupKind, GroupMembersTable, GroupsTable } from '../store/schema.ts';
import { GROUP_DATA_COLUMNS, type GroupDataColumn, type GroupRowWrite, type MembershipRow, type MembershipWrite, type StoredGroup } from '../store/synced-groups.ts';
import type { DeltaItem, FoldContext, KindRows, ObjectChange, ObjectKind, RoundKind } from './object-kind.ts';
import { marksByValues, mergeItems, rowChange, type RowMapping } from './row-fold.ts';

/** The `$select` of `/groups/delta` (spec/groups.md): the group's properties and its direct members. */
export const SYNCED_GROUP_PROPERTIES = ['displayName', 'description', 'groupTypes', 'securityEnabled', 'mailEnabled', 'mail', 'membershipRule', 'members'] as const;

/** A group's rows after a page: its own columns, and the memberships the page added, re-marked or removed. */
export interface GroupWrite {
  row: GroupRowWrite | null;
  add: MembershipWrite[];
  remove: string[];
}

/** One entry of `members@delta`. */
type MemberEntry = { id?: unknown; '@odata.type'?: unknown; '@removed'?: unknown };

type GroupRow = Pick<GroupsTable, 'id' | 'seen_run_id' | 'deleted_at'> & Partial<Pick<GroupsTable, GroupDataColumn>>;

const TEXT_COLUMNS = { displayName: 'display_name', description: 'description', mail: 'mail', membershipRule: 'membership_rule' } as const;
const FLAG_COLUMNS = { securityEnabled: 'security_enabled', mailEnabled: 'mail_enabled' } as const;

/** Graph's kinds (spec/groups.md): `Unified` is a Microsoft 365 group; otherwise security-enabled, or a distribution list. */
export function groupKindOf(groupTypes: readonly string[], securityEnabled: boolean, mailEnabled: boolean): GroupKind {
  if (groupTypes.includes('Unified')) return 'microsoft365';
  return mailEnabled && !securityEnabled ? 'distribution' : 'security';
}

const GROUP_MAPPING: RowMapping<GroupRow> = {
  fresh: (id) => ({ id, deleted_at: null, seen_run_id: null }),
  *assign(row, item) {
    for (const [property, column] of Object.entries(TEXT_COLUMNS)) {
      if (!(property in item)) continue;
      row[column] = typeof item[property] === 'string' ? item[property] : null;
      yield column;
    }
    for (const [property, column] of Object.entries(FLAG_COLUMNS)) {
      if (!(property in item)) continue;
      row[column] = item[property] === true ? 1 : 0;
      yield column;
    }
    if ('groupTypes' in item) {
      row.group_types = JSON.stringify(Array.isArray(item.groupTypes) ? item.groupTypes.filter((t) => typeof t === 'string') : []);
      yield 'group_types';
    }
    // The kind follows from the merged row, so a minimal update of one flag still classifies the group right.
    if ('groupTypes' in item || 'securityEnabled' in item || 'mailEnabled' in item) {
      const types = JSON.parse(row.group_types ?? '[]') as string[];
      row.kind = groupKindOf(types, row.security_enabled === 1, row.mail_enabled === 1);
      row.dynamic = types.includes('DynamicMembership') ? 1 : 0;
      yield 'kind';
      yield 'dynamic';
    }
  },
};

/** A member's type from its `@odata.type`; devices, contacts and service principals are not mirrored. */
function memberType(entry: MemberEntry): GroupMembersTable['member_type'] | null {
  const type = entry['@odata.type'];
  if (type === undefined || type === '#microsoft.graph.user') return 'user';
  if (type === '#microsoft.graph.group') return 'group';
  return null;
}

/**
 * The `members@delta` entries of the page, by group, last entry winning:
 * true for a member present, false for one removed. A large group's slices
 * arrive on several pages; each page adds its own slice (rule 23).
 */
function memberEntries(items: readonly DeltaItem[]): Map<string, Map<string, { type: GroupMembersTable['member_type']; present: boolean }>> {
  const byGroup = new Map<string, Map<string, { type: GroupMembersTable['member_type']; present: boolean }>>();
  for (const item of items) {
    if (item['@removed']) continue;
    const entries = item['members@delta'];
    if (!Array.isArray(entries)) continue;
    const members = byGroup.get(item.id) ?? new Map();
    for (const entry of entries as MemberEntry[]) {
      if (typeof entry?.id !== 'string' || entry.id === '') continue;
      const removed = entry['@removed'] !== undefined;
      const type = memberType(entry);
      if (type === null) continue;
      members.set(entry.id, { type: removed ? (members.get(entry.id)?.type ?? type) : type, present: !removed });
    }
    byGroup.set(item.id, members);
  }
  return byGroup;
}

/**
 * A page of `/groups/delta` against the stored groups and the memberships the
 * page names: group rows merged as users' are (minimal updates never blank),
 * memberships added, re-marked by a full listing, or removed one by one.
 * Only real changes are written and counted, so a replayed page changes
 * nothing. Pure.
 */
export function foldGroups(items: readonly DeltaItem[], stored: ReadonlyMap<string, StoredGroup>, context: FoldContext): ObjectChange<GroupWrite>[] {
  const { runId, kind } = context;
  const entries = memberEntries(items);
  const changes: ObjectChange<GroupWrite>[] = [];
  for (const [id, working] of mergeItems<GroupRow>(items, stored as ReadonlyMap<string, GroupRow>, context, GROUP_MAPPING)) {
    const before = stored.get(id);
    const row = rowChange<GroupRow, GroupRowWrite>(working, before, GROUP_DATA_COLUMNS, context);
    const add: MembershipWrite[] = [];
    const remove: string[] = [];
    // A group leaving for good takes its memberships at the end of the round; nothing to add to it now.
    if (!working.removed) {
      for (const [memberId, { type, present }] of entries.get(id) ?? []) {
        const had = before?.members.get(memberId);
        if (!present) {
          if (had) remove.push(memberId);
        } else if (!had || had.member_type !== type) add.push({ group_id: id, member_id: memberId, member_type: type, seen_run_id: kind === 'full' ? runId : null });
        else if (kind === 'full' && had.seen_run_id !== runId) add.push({ group_id: id, member_id: memberId, member_type: type, seen_run_id: runId });
      }
    }
    const membershipsChanged = remove.length > 0 || add.some((m) => before?.members.get(m.member_id)?.member_type !== m.member_type);
    const change = row.change === 'unchanged' && membershipsChanged ? 'updated' : row.change;
    const write = row.write || add.length || remove.length ? { row: row.write, add, remove } : null;
    changes.push({ id, change, write, mark: row.mark, listed: working.listed, ends: false, pendingRemovals: row.pendingRemovals });
  }
  return changes;
}

/** Groups and memberships over one transaction's repositories. */
class GroupRows implements KindRows<StoredGroup, GroupWrite> {
  readonly #repos: Repositories;
  /** What `stored` read for this page, in this transaction: which of the page's memberships were there already. */
  #stored: ReadonlyMap<string, StoredGroup> = new Map();
  /** Whether the round began with no membership stored: then the page's new memberships are plain inserts. */
  #startedEmpty = false;

  constructor(repositories: Repositories) {
    this.#repos = repositories;
  }

  /**
   * When the round began with no membership stored, a listed member can only
   * be one an earlier page of this round wrote: its insert finds it (`insertMembers`
   * skips it, owing no event), so only the page's removals are looked up.
   */
  async stored(tenantId: string, items: readonly DeltaItem[], startedEmpty = false): Promise<Map<string, StoredGroup>> {
    const pairs = new Map<string, readonly [string, string]>();
    for (const item of items) {
      const entries = item['members@delta'];
      if (Array.isArray(entries)) for (const entry of entries as MemberEntry[]) if (typeof entry?.id === 'string' && (!startedEmpty || entry['@removed'] !== undefined)) pairs.set(`${item.id} ${entry.id}`, [item.id, entry.id]);
    }
    const stored = await this.#repos.syncedGroups.stored(tenantId, [...new Set(items.map((item) => item.id))], [...pairs.values()]);
    this.#stored = stored;
    this.#startedEmpty = startedEmpty;
    return stored;
  }

  /**
   * Writes a page's group changes, and returns the membership events they
   * are owed: `group.user_added` only for a row the insert really created,
   * `group.user_removed` only for a row the delete really removed, so a
   * replayed page emits none. Members that are groups get no events.
   */
  async apply(tenantId: string, changes: readonly ObjectChange<GroupWrite>[]): Promise<EventDraft[]> {
    const { syncedGroups } = this.#repos;
    const rows = changes.flatMap((change) => (change.write?.row ? [change.write.row] : []));
    await syncedGroups.upsert(tenantId, rows);
    for (const { values, ids } of marksByValues(changes)) await syncedGroups.touch(tenantId, ids, values);
    // A page's `add` mixes new memberships with re-marks (and, rarely, a member whose type changed).
    const fresh: MembershipWrite[] = [];
    const existing: MembershipWrite[] = [];
    const retypedFrom: MembershipRow[] = [];
    const retypedTo: MembershipRow[] = [];
    for (const membership of changes.flatMap((change) => change.write?.add ?? [])) {
      const had = this.#stored.get(membership.group_id)?.members.get(membership.member_id);
      if (!had) fresh.push(membership);
      else {
        existing.push(membership);
        if (had.member_type === membership.member_type) continue;
        retypedFrom.push({ ...membership, member_type: had.member_type });
        retypedTo.push(membership);
      }
    }
    await syncedGroups.addMembers(tenantId, existing);
    const inserted = this.#startedEmpty ? await syncedGroups.insertFirstMembers(tenantId, fresh) : await syncedGroups.insertMembers(tenantId, fresh);
    // One statement for the page's removals, not one a group: a delta round touches many groups a little.
    const removed = await syncedGroups.removeMembers(
      tenantId,
      changes.flatMap((change) => (change.write?.remove ?? []).map((member) => [change.id, member] as const)),
    );
    return [...membershipEvents('group.user_removed', tenantId, [...removed, ...retypedFrom]), ...membershipEvents('group.user_added', tenantId, [...inserted, ...retypedTo])];
  }

  holdsNothing(tenantId: string): Promise<boolean> {
    return this.#repos.syncedGroups.holdsNoMembership(tenantId);
  }

  countMarked(tenantId: string, runId: string): Promise<number> {
    return this.#repos.syncedGroups.countMarked(tenantId, runId);
  }

  countPending(tenantId: string, runId: string, kind: RoundKind): Promise<number> {
    return this.#repos.syncedGroups.countPending(tenantId, runId, kind);
  }

  total(tenantId: string): Promise<number> {
    return this.#repos.syncedGroups.total(tenantId);
  }

  /** The end of a round (or a confirmed hold): `group.user_removed` for each user membership that went, then `group.deleted` for each group, as it was. */
  async removePending(tenantId: string, runId: string, kind: RoundKind, now: number): Promise<number> {
    const { removed, memberships, groups } = await this.#repos.syncedGroups.removePending(tenantId, runId, kind);
    await this.#repos.events.append([...membershipEvents('group.user_removed', tenantId, memberships), ...groupEvents('group.deleted', tenantId, groups)], now);
    return removed;
  }

  async keepSoftDeleted(tenantId: string, runId: string, ids: readonly string[], now: number): Promise<number> {
    const newly = await this.#repos.syncedGroups.keepSoftDeleted(tenantId, runId, ids, now);
    await this.#repos.events.append(groupEvents('group.soft_deleted', tenantId, newly), now);
    return newly.length;
  }

  unmarkPendingRemovals(tenantId: string, runId: string): Promise<void> {
    return this.#repos.syncedGroups.unmarkPendingRemovals(tenantId, runId);
  }

  softDeletedIds(tenantId: string): Promise<string[]> {
    return this.#repos.syncedGroups.softDeletedIds(tenantId);
  }

  refreshStatistics(): Promise<void> {
    return this.#repos.syncedGroups.refreshStatistics();
  }
}

/** Groups with their direct memberships: the second kind the engine mirrors, on its own cursor. */
export const GROUPS: ObjectKind<StoredGroup, GroupWrite> = {
  objects: 'groups',
  noun: 'groups and memberships',
  deltaPath: '/v1.0/groups/delta',
  select: SYNCED_GROUP_PROPERTIES,
  deletedItemsPath: '/v1.0/directory/deletedItems/microsoft.graph.group',
  permission: 'GroupMember.Read.All',
  fold: foldGroups,
  rows: (repositories) => new GroupRows(repositories),
  runs: (repositories) => repositories.groupSyncRuns,
  cursor: (repositories) => repositories.groupSyncState,
  events: groupChangeEvents,
};
