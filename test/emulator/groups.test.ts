import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Clock } from '../../src/emulator/clock.ts';
import { groupKind, type GroupRecord } from '../../src/emulator/groups.ts';
import { Directory, type Tenant } from '../../src/emulator/model.ts';
import { loadState, saveState } from '../../src/emulator/persistence.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { directoryWithDemoApp } from '../helpers/fixtures.ts';
import { appToken } from '../helpers/tokens.ts';

type Json = Record<string, unknown>;

/** A tenant with users u0..u9 and groups nested three deep (top > middle > bottom), with a cycle back to top. */
function nestedTenant(d: Directory): { tenant: Tenant; users: string[]; top: GroupRecord; middle: GroupRecord; bottom: GroupRecord } {
  const tenant = d.addTenant({ displayName: 'Contoso', domains: ['contoso.onmicrosoft.com', 'contoso.com'] });
  const users = Array.from({ length: 10 }, (_, i) => d.addUser(tenant, { userPrincipalName: `u${i}@contoso.com` }).props.id);
  const bottom = d.addGroup(tenant, { displayName: 'Bottom', members: [users[5]!, users[6]!] });
  const middle = d.addGroup(tenant, { displayName: 'Middle', members: [users[3]!, bottom.props.id, users[5]!] });
  const top = d.addGroup(tenant, { displayName: 'Top', members: [users[0]!, users[1]!, middle.props.id] });
  d.addGroupMember(tenant, bottom.props.id, top.props.id);
  return { tenant, users, top, middle, bottom };
}

describe('groups in the emulator directory', () => {
  test('kinds: security, Microsoft 365, distribution and dynamic, with the properties Entra fills in', () => {
    const d = directoryWithDemoApp();
    const tenant = d.addTenant({ displayName: 'Contoso', domains: ['contoso.onmicrosoft.com', 'contoso.com'] });
    const security = d.addGroup(tenant, { displayName: 'Finance Team' });
    assert.deepEqual({ ...security.props, id: 'x', createdDateTime: 'x' }, {
      id: 'x',
      displayName: 'Finance Team',
      description: null,
      groupTypes: [],
      securityEnabled: true,
      mailEnabled: false,
      mail: null,
      mailNickname: 'financeteam',
      membershipRule: null,
      createdDateTime: 'x',
    });
    const m365 = d.addGroup(tenant, { displayName: 'Project Falcon', groupTypes: ['Unified'] });
    assert.equal(m365.props.mail, 'projectfalcon@contoso.com');
    assert.equal(m365.props.mailEnabled, true);
    const list = d.addGroup(tenant, { displayName: 'All Hands', mailEnabled: true, securityEnabled: false });
    const dynamic = d.addGroup(tenant, { displayName: 'Sales', groupTypes: ['DynamicMembership'], membershipRule: 'user.department -eq "Sales"' });
    assert.deepEqual([security, m365, list, dynamic].map((g) => groupKind(g.props)), ['security', 'microsoft365', 'distribution', 'security']);
    assert.deepEqual(tenant.groups, [security, m365, list, dynamic]);

    assert.throws(() => d.addGroup(tenant, { displayName: 'Rules', groupTypes: ['DynamicMembership'] }), /needs a membershipRule/);
    assert.throws(() => d.addGroup(tenant, { displayName: 'Nothing', securityEnabled: false, mailEnabled: false }), /security-enabled, mail-enabled or both/);
    assert.throws(() => d.addGroup(tenant, { displayName: 'Odd', groupTypes: ['Secret'] }), /groupTypes may hold only/);
    assert.throws(() => d.addGroup(tenant, { displayName: 'Finance team' }), /mailNickname financeteam is taken/);
    assert.throws(() => d.addGroup(tenant, { displayName: 'Again', id: security.props.id }), /already exists/);
    assert.throws(() => d.editGroup(tenant, m365.props.id, { groupTypes: [] }), /cannot become or stop being a Microsoft 365 group/);
    d.editGroup(tenant, 'financeteam', { description: 'Money' });
    assert.equal(security.props.description, 'Money');
  });

  test('membership rules: no strangers, no self, no nesting with Microsoft 365 groups, no duplicates', () => {
    const d = directoryWithDemoApp();
    const { tenant, users, top, middle } = nestedTenant(d);
    const m365 = d.addGroup(tenant, { displayName: 'Team', groupTypes: ['Unified'], members: [users[0]!] });
    assert.throws(() => d.addGroupMember(tenant, top.props.id, top.props.id), /member of itself/);
    assert.throws(() => d.addGroupMember(tenant, m365.props.id, middle.props.id), /members are users only/);
    assert.throws(() => d.addGroupMember(tenant, top.props.id, m365.props.id), /cannot be nested/);
    assert.throws(() => d.addGroupMember(tenant, top.props.id, users[0]!), /already a member/);
    assert.throws(() => d.addGroupMember(tenant, top.props.id, '00000000-0000-4000-8000-000000000000'), /no user or group/);
    assert.throws(() => d.removeGroupMember(tenant, top.props.id, users[9]!), /not a member/);
    d.addGroupMember(tenant, 'top', 'u9@contoso.com');
    assert.ok(top.members.includes(users[9]!));
    d.removeGroupMember(tenant, 'top', 'u9@contoso.com');
    assert.ok(!top.members.includes(users[9]!));
  });

  test('rule 24: transitiveMemberIds reaches every user three deep and stops on a cycle', () => {
    const d = directoryWithDemoApp();
    const { tenant, users, top, middle, bottom } = nestedTenant(d);
    const expected = [users[0], users[1], users[3], users[5], users[6]].sort();
    assert.deepEqual(d.transitiveMemberIds(tenant, top.props.id).sort(), expected);
    // The cycle (bottom contains top) makes every group of the loop reach the same users.
    assert.deepEqual(d.transitiveMemberIds(tenant, middle.props.id).sort(), expected);
    assert.deepEqual(d.transitiveMemberIds(tenant, bottom.props.id).sort(), expected);
    assert.equal(new Set(d.transitiveMemberIds(tenant, top.props.id)).size, 5, 'each user once');
  });

  test('a soft-deleted user keeps its memberships; a permanently deleted one loses them; a purged group leaves its parents', () => {
    const d = directoryWithDemoApp();
    const { tenant, users, top, middle, bottom } = nestedTenant(d);
    d.softDeleteUser(tenant, users[5]!);
    assert.ok(middle.members.includes(users[5]!) && bottom.members.includes(users[5]!));
    d.restoreUser(tenant, users[5]!);
    d.purgeUser(tenant, users[5]!);
    assert.ok(!middle.members.includes(users[5]!) && !bottom.members.includes(users[5]!));
    assert.equal(tenant.memberOf.has(users[5]!), false);
    d.purgeGroup(tenant, bottom.props.id);
    assert.deepEqual(middle.members, [users[3]!]);
    assert.deepEqual(d.transitiveMemberIds(tenant, top.props.id).sort(), [users[0], users[1], users[3]].sort());
    assert.equal(tenant.memberOf.get(top.props.id), undefined, 'the purged group held top; that membership is gone too');
  });

  test('groups, deleted groups, memberships and the group change log survive save and load', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'roster-groups-'));
    try {
      const d = directoryWithDemoApp();
      const { tenant, users } = nestedTenant(d);
      const team = d.addGroup(tenant, { displayName: 'Team', groupTypes: ['Unified'], members: [users[1]!, users[2]!] });
      d.deleteGroup(tenant, team.props.id);
      const big = d.addGroup(tenant, { displayName: 'Big' });
      for (let i = 0; i < 30_000; i++) big.members.push(`00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
      d.editGroup(tenant, 'big', { description: 'A long list' });
      await saveState(dir, d);
      const loaded = new Directory(new Clock());
      assert.equal(await loadState(dir, loaded), true);
      const copy = loaded.requireTenant(tenant.id);
      assert.deepEqual(copy.groups.map((g) => [g.props, g.members, g.ordinal]), tenant.groups.map((g) => [g.props, g.members, g.ordinal]));
      assert.deepEqual([...copy.deletedGroups.keys()], [team.props.id]);
      assert.deepEqual(copy.groupChangeLog, tenant.groupChangeLog);
      assert.equal(copy.nextGroupOrdinal, tenant.nextGroupOrdinal);
      assert.deepEqual(loaded.transitiveMemberIds(copy, 'top').sort(), d.transitiveMemberIds(tenant, 'top').sort());
      assert.deepEqual([...(copy.memberOf.get(users[1]!) ?? [])].sort(), [...tenant.memberOf.get(users[1]!)!].sort());
      loaded.restoreGroup(copy, team.props.id);
      assert.deepEqual(loaded.requireGroup(copy, 'team').members, [users[1]!, users[2]!]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Graph group reads', () => {
  let emu: TestEmulator;
  let nested: ReturnType<typeof nestedTenant>;
  let token: string;

  const get = async (path: string) => {
    const res = await emu.fetch(path.startsWith('https://') ? path : `${emu.urls.graph}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as Json };
  };
  /** Every item of a paged listing. */
  const all = async (path: string): Promise<Json[]> => {
    const items: Json[] = [];
    let url: string | undefined = path;
    while (url) {
      const res = await get(url);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      items.push(...(res.body.value as Json[]));
      url = res.body['@odata.nextLink'] as string | undefined;
    }
    return items;
  };

  before(async () => {
    emu = await startTestEmulator();
    nested = nestedTenant(emu.ctx.directory);
    for (let i = 0; i < 5; i++) emu.ctx.directory.addGroup(nested.tenant, { displayName: `Extra ${i}` });
    token = await appToken(emu.ctx, nested.tenant.id, { roles: ['GroupMember.Read.All'] });
  });
  after(() => emu.close());

  test('/groups pages with $top and $select; /groups/{id} reads one; unknown ids are 404', async () => {
    const groups = await all('/v1.0/groups?$top=3&$select=displayName');
    assert.deepEqual(groups.map((g) => g.displayName), nested.tenant.groups.map((g) => g.props.displayName));
    assert.deepEqual(Object.keys(groups[0]!).sort(), ['displayName', 'id']);
    const one = await get(`/v1.0/groups/${nested.top.props.id}`);
    assert.equal(one.body.displayName, 'Top');
    assert.match(one.body['@odata.context'] as string, /\$metadata#groups\/\$entity$/);
    assert.equal((await get('/v1.0/groups/00000000-0000-4000-8000-000000000000')).status, 404);
    assert.equal((await get('/v1.0/groups?$select=members')).status, 400);
  });

  test('rule 24: /members lists direct members with their types; /transitiveMembers every user and group below, once, despite the cycle', async () => {
    const { top, middle, bottom, users } = nested;
    const direct = await all(`/v1.0/groups/${top.props.id}/members?$top=1`);
    assert.deepEqual(direct.map((m) => [m['@odata.type'], m.id]), [
      ['#microsoft.graph.user', users[0]],
      ['#microsoft.graph.user', users[1]],
      ['#microsoft.graph.group', middle.props.id],
    ]);
    const transitive = await all(`/v1.0/groups/${top.props.id}/transitiveMembers?$top=2&$select=id,displayName`);
    const ids = transitive.map((m) => m.id as string);
    assert.deepEqual([...ids].sort(), [middle.props.id, bottom.props.id, users[0], users[1], users[3], users[5], users[6]].sort());
  });

  test('rule 24: /users/{id}/memberOf and /transitiveMemberOf, by id or UPN, cycle-safe', async () => {
    const { top, middle, bottom, users } = nested;
    const direct = await all(`/v1.0/users/${users[5]}/memberOf`);
    assert.deepEqual(direct.map((g) => g.id).sort(), [middle.props.id, bottom.props.id].sort());
    assert.ok(direct.every((g) => g['@odata.type'] === '#microsoft.graph.group'));
    const transitive = await all('/v1.0/users/u6@contoso.com/transitiveMemberOf?$top=1');
    assert.deepEqual(transitive.map((g) => g.id).sort(), [top.props.id, middle.props.id, bottom.props.id].sort());
    assert.equal((await get('/v1.0/users/nobody@contoso.com/memberOf')).status, 404);
  });

  test('a page token of one listing does not open another', async () => {
    const { top, middle } = nested;
    const first = await get(`/v1.0/groups/${top.props.id}/members?$top=1`);
    const next = new URL(first.body['@odata.nextLink'] as string);
    const forged = `/v1.0/groups/${middle.props.id}/members?$skiptoken=${next.searchParams.get('$skiptoken')}`;
    const res = await get(forged);
    assert.equal(res.status, 400);
    assert.equal((res.body.error as Json).code, 'Directory_ExpiredPageToken');
  });
});
