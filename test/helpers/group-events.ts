import type { Tenant } from '../../src/emulator/model.ts';
import type { Store } from '../../src/store/database.ts';

/** What the emulator's directory holds of a tenant's groups: each group's state and properties, and its direct user memberships. */
export interface GroupSnapshot {
  groups: Map<string, { state: 'active' | 'soft_deleted'; props: string }>;
  memberships: Set<string>;
}

export function snapshotGroups(tenant: Tenant): GroupSnapshot {
  const groups = new Map<string, { state: 'active' | 'soft_deleted'; props: string }>();
  const memberships = new Set<string>();
  const isGroup = (id: string) => tenant.groupsById.has(id) || tenant.deletedGroups.has(id);
  for (const [records, state] of [[tenant.groups, 'active'], [[...tenant.deletedGroups.values()], 'soft_deleted']] as const) {
    for (const group of records) {
      const { displayName, description, groupTypes, securityEnabled, mailEnabled, mail, membershipRule } = group.props;
      groups.set(group.props.id, { state, props: JSON.stringify([displayName, description, groupTypes, securityEnabled, mailEnabled, mail, membershipRule]) });
      // Soft-deleted groups keep their memberships (rule 26).
      for (const member of group.members) if (!isGroup(member)) memberships.add(`${group.props.id} ${member}`);
    }
  }
  return { groups, memberships };
}

/**
 * The group events a change of the directory from `before` to `after` is
 * owed, one per group and one per user membership, each as "type key".
 */
export function expectedGroupEvents(before: GroupSnapshot, after: GroupSnapshot): string[] {
  const expected: string[] = [];
  for (const [id, now] of after.groups) {
    const was = before.groups.get(id);
    if (!was) expected.push(`group.created ${id}`);
    else if (was.state !== now.state) expected.push(`${now.state === 'active' ? 'group.restored' : 'group.soft_deleted'} ${id}`);
    else if (was.props !== now.props) expected.push(`group.updated ${id}`);
  }
  for (const id of before.groups.keys()) if (!after.groups.has(id)) expected.push(`group.deleted ${id}`);
  for (const key of after.memberships) if (!before.memberships.has(key)) expected.push(`group.user_added ${key}`);
  for (const key of before.memberships) if (!after.memberships.has(key)) expected.push(`group.user_removed ${key}`);
  return expected.sort();
}

/** The tenant's group events after `after`, each as "type key" (group id, or group and user ids), in feed order. */
export async function groupEventKeys(store: Store, tenantId: string, after: number): Promise<string[]> {
  const rows = await store.db.selectFrom('events').select(['type', 'data']).where('tenant_id', '=', tenantId).where('sequence', '>', after).where('type', 'like', 'group.%').orderBy('sequence').execute();
  return rows.map((row) => {
    const data = JSON.parse(row.data) as { id?: string; group_id?: string; user_id?: string };
    return row.type.startsWith('group.user_') ? `${row.type} ${data.group_id} ${data.user_id}` : `${row.type} ${data.id}`;
  });
}

export async function lastEventSequence(store: Store): Promise<number> {
  const [last] = await store.db.selectFrom('events').select('sequence').orderBy('sequence', 'desc').limit(1).execute();
  return Number(last?.sequence ?? 0);
}
