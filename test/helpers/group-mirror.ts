import assert from 'node:assert/strict';
import type { Tenant } from '../../src/emulator/model.ts';
import type { Store } from '../../src/store/database.ts';

/**
 * Roster's copy of a tenant's groups equals the emulator's directory: the same
 * active groups with their properties, the same soft-deleted ones, and exactly
 * the same direct memberships (soft-deleted groups keep theirs, rule 26).
 */
export async function assertGroupsMirror(store: Store, tenant: Tenant): Promise<void> {
  const rows = await store.db.selectFrom('groups').selectAll().where('tenant_id', '=', tenant.id).execute();
  const active = rows.filter((row) => row.deleted_at === null);
  assert.deepEqual(new Set(active.map((row) => row.id)), new Set(tenant.groups.map((g) => g.props.id)), 'same active groups');
  assert.deepEqual(new Set(rows.filter((row) => row.deleted_at !== null).map((row) => row.id)), new Set(tenant.deletedGroups.keys()), 'soft-deleted groups are the directory deleted items');
  const byId = new Map(rows.map((row) => [row.id, row]));
  for (const group of [...tenant.groups, ...tenant.deletedGroups.values()]) {
    const row = byId.get(group.props.id)!;
    const p = group.props;
    assert.deepEqual(
      [row.display_name, row.description, JSON.parse(row.group_types ?? '[]'), row.security_enabled, row.mail_enabled, row.mail, row.membership_rule],
      [p.displayName, p.description, p.groupTypes, p.securityEnabled ? 1 : 0, p.mailEnabled ? 1 : 0, p.mail, p.membershipRule],
      `group ${p.id}`,
    );
  }
  const memberships = await store.db.selectFrom('group_members').select(['group_id', 'member_id', 'member_type']).where('tenant_id', '=', tenant.id).execute();
  const isGroup = (id: string) => tenant.groupsById.has(id) || tenant.deletedGroups.has(id);
  const expected = [...tenant.groups, ...tenant.deletedGroups.values()].flatMap((g) => g.members.map((m) => `${g.props.id} ${m} ${isGroup(m) ? 'group' : 'user'}`));
  const actual = memberships.map((m) => `${m.group_id} ${m.member_id} ${m.member_type}`);
  assert.equal(actual.length, expected.length, 'same number of memberships');
  assert.deepEqual(new Set(actual), new Set(expected), 'same memberships');
}
