import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GroupRecord } from '../../src/emulator/groups.ts';
import type { Tenant } from '../../src/emulator/model.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { appToken } from '../helpers/tokens.ts';

type Json = Record<string, unknown>;
interface MemberEntry {
  '@odata.type': string;
  id: string;
  '@removed'?: { reason: string };
}
interface Round {
  /** Every item of every page, in order, with the page it was on. */
  items: (Json & { page: number })[];
  pages: number;
  deltaLink: string;
  preferenceApplied: (string | null)[];
}
/** What a client holds after merging a round into its copy: properties and direct members per group. */
interface Mirror {
  groups: Map<string, { props: Json; members: Set<string> }>;
  removed: Map<string, string>;
}

const GROUP_ROLE = ['User.Read.All', 'GroupMember.Read.All'];

describe('Graph /groups/delta', () => {
  let emu: TestEmulator;
  let tenant: Tenant;
  let token: string;

  const get = async (url: string, headers: Record<string, string> = {}, bearer = token) => {
    const res = await emu.fetch(url.startsWith('https://') ? url : `${emu.urls.graph}${url}`, { headers: { authorization: `Bearer ${bearer}`, ...headers } });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: JSON.parse(text) as Json };
  };

  /** Follows next links to the end of a round. */
  const round = async (start: string, headers: Record<string, string> = {}): Promise<Round> => {
    let url: string | undefined = start;
    const items: Round['items'] = [];
    const preferenceApplied: (string | null)[] = [];
    let pages = 0;
    let deltaLink: string | undefined;
    while (url) {
      const res = await get(url, headers);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      preferenceApplied.push(res.headers.get('preference-applied'));
      for (const item of res.body.value as Json[]) items.push({ ...item, page: pages });
      pages += 1;
      url = res.body['@odata.nextLink'] as string | undefined;
      deltaLink = res.body['@odata.deltaLink'] as string | undefined;
      assert.ok(url === undefined || deltaLink === undefined, 'a page has a next link or a delta link, never both');
    }
    assert.ok(deltaLink?.startsWith(`${emu.urls.graph}/v1.0/groups/delta?$deltatoken=`), 'the round ends with a delta link');
    return { items, pages, deltaLink: deltaLink!, preferenceApplied };
  };

  /** Merges a round the way groups.md asks a client to: slices merged, properties merged, removals applied. */
  const merge = (mirror: Mirror, r: Round): Mirror => {
    for (const { page: _page, ...item } of r.items) {
      const id = item.id as string;
      const removed = item['@removed'] as { reason: string } | undefined;
      if (removed) {
        mirror.groups.delete(id);
        mirror.removed.set(id, removed.reason);
        continue;
      }
      mirror.removed.delete(id);
      const entry = mirror.groups.get(id) ?? { props: {}, members: new Set<string>() };
      const { 'members@delta': members, ...props } = item;
      Object.assign(entry.props, props);
      for (const member of (members as MemberEntry[] | undefined) ?? []) {
        if (member['@removed']) entry.members.delete(member.id);
        else entry.members.add(member.id);
      }
      mirror.groups.set(id, entry);
    }
    return mirror;
  };
  const emptyMirror = (): Mirror => ({ groups: new Map(), removed: new Map() });

  const assertMirrorsDirectory = (mirror: Mirror) => {
    assert.deepEqual([...mirror.groups.keys()].sort(), tenant.groups.map((g) => g.props.id).sort());
    for (const group of tenant.groups) {
      const copy = mirror.groups.get(group.props.id)!;
      assert.deepEqual([...copy.members].sort(), [...group.members].sort(), `members of ${group.props.displayName}`);
      assert.equal(copy.props.displayName, group.props.displayName);
      assert.equal(copy.props.description, group.props.description);
    }
  };

  let big: GroupRecord;
  let userIds: string[];

  before(async () => {
    emu = await startTestEmulator();
    const d = emu.ctx.directory;
    tenant = d.addTenant({ displayName: 'Contoso', domains: ['contoso.onmicrosoft.com', 'contoso.com'] });
    for (let i = 0; i < 1234; i++) d.addUser(tenant, { displayName: `User ${i}`, userPrincipalName: `user${i}@contoso.com` });
    userIds = tenant.users.map((u) => u.props.id);
    big = d.addGroup(tenant, { displayName: 'Everyone', members: userIds.slice(0, 1050) });
    const engineers = d.addGroup(tenant, { displayName: 'Engineers', description: 'Builds things', members: userIds.slice(0, 30) });
    d.addGroup(tenant, { displayName: 'Staff', members: [engineers.props.id, ...userIds.slice(1100, 1110)] });
    d.addGroup(tenant, { displayName: 'Marketing', groupTypes: ['Unified'], members: userIds.slice(40, 45) });
    d.addGroup(tenant, { displayName: 'Newsletter', mailEnabled: true, securityEnabled: false, members: userIds.slice(200, 420) });
    d.addGroup(tenant, { displayName: 'Everyone in Sales', groupTypes: ['DynamicMembership'], membershipRule: 'user.department -eq "Sales"', members: userIds.slice(500, 520) });
    d.addGroup(tenant, { displayName: 'Empty' });
    token = await appToken(emu.ctx, tenant.id, { roles: GROUP_ROLE });
  });

  after(() => emu.close());

  test('rule 23: a full round spreads a large group over many pages, not in group order; merged slices equal the directory', async () => {
    const first = await round('/v1.0/groups/delta?$select=displayName,description,groupTypes,securityEnabled,mailEnabled,mail,membershipRule,members', { prefer: 'odata.maxpagesize=3' });
    const pagesOfBig = [...new Set(first.items.filter((i) => i.id === big.props.id).map((i) => i.page))];
    assert.equal(pagesOfBig.length, Math.ceil(1050 / 100), 'each page holds one slice of the big group');
    assert.ok(pagesOfBig[1]! - pagesOfBig[0]! > 1, 'the big group comes back after other groups');
    for (const item of first.items) {
      const members = item['members@delta'] as MemberEntry[];
      assert.ok(Array.isArray(members), 'members@delta on every group of a first round');
      assert.ok(members.length <= 100);
    }
    // A page never holds two slices of one group.
    for (let p = 0; p < first.pages; p++) {
      const ids = first.items.filter((i) => i.page === p).map((i) => i.id);
      assert.equal(new Set(ids).size, ids.length);
    }
    const staff = first.items.find((i) => i.displayName === 'Staff')!;
    const types = (staff['members@delta'] as MemberEntry[]).map((m) => m['@odata.type']);
    assert.deepEqual([...new Set(types)].sort(), ['#microsoft.graph.group', '#microsoft.graph.user']);
    assertMirrorsDirectory(merge(emptyMirror(), first));
    const dynamic = first.items.find((i) => i.displayName === 'Everyone in Sales')!;
    assert.deepEqual(dynamic.groupTypes, ['DynamicMembership']);
    assert.equal(dynamic.membershipRule, 'user.department -eq "Sales"');
  });

  test('$select goes on the first request only; without members there is no members@delta', async () => {
    const r = await round('/v1.0/groups/delta?$select=displayName');
    for (const item of r.items) assert.deepEqual(Object.keys(item).sort(), ['displayName', 'id', 'page']);
    const next = await round(r.deltaLink);
    assert.deepEqual(next.items, []);
    const unknown = await get('/v1.0/groups/delta?$select=displayName,shoeSize');
    assert.equal(unknown.status, 400);
    assert.match((unknown.body.error as Json).message as string, /shoeSize.*microsoft\.graph\.group/);
  });

  test('rule 23: membership changes come as member entries; a member removed and re-added in one round stays a member', async () => {
    const d = emu.ctx.directory;
    const mirror = merge(emptyMirror(), await round('/v1.0/groups/delta', { prefer: 'odata.maxpagesize=50' }));
    const base = (await round('/v1.0/groups/delta?$deltatoken=latest')).deltaLink;
    const engineers = d.requireGroup(tenant, 'engineers');
    const [kept, dropped] = [engineers.members[0]!, engineers.members[1]!];
    d.removeGroupMember(tenant, engineers.props.id, kept);
    d.addGroupMember(tenant, engineers.props.id, kept);
    d.removeGroupMember(tenant, engineers.props.id, dropped);
    d.addGroupMember(tenant, engineers.props.id, userIds[1200]!);
    const changes = await round(base);
    assert.equal(changes.items.length, 1);
    const item = changes.items[0]!;
    assert.equal(item.id, engineers.props.id);
    assert.equal(item.displayName, 'Engineers', 'without return=minimal the whole group comes back');
    const entries = item['members@delta'] as MemberEntry[];
    assert.deepEqual(
      entries.map((m) => [m.id, m['@removed']?.reason ?? 'member']).sort(),
      [
        [kept, 'member'],
        [dropped, 'deleted'],
        [userIds[1200]!, 'member'],
      ].sort(),
    );
    merge(mirror, changes);
    assertMirrorsDirectory(mirror);
  });

  test('a large membership change is sliced too, and merging it keeps the mirror equal', async () => {
    const d = emu.ctx.directory;
    const mirror = merge(emptyMirror(), await round('/v1.0/groups/delta'));
    const start = (await round('/v1.0/groups/delta?$deltatoken=latest')).deltaLink;
    const everyone = d.requireGroup(tenant, 'everyone');
    for (const id of userIds.slice(1050, 1234)) d.addGroupMember(tenant, everyone.props.id, id);
    for (const id of userIds.slice(0, 150)) d.removeGroupMember(tenant, everyone.props.id, id);
    const changes = await round(start, { prefer: 'odata.maxpagesize=10' });
    assert.equal(changes.items.length, Math.ceil((184 + 150) / 100));
    assert.equal(changes.pages, changes.items.length, 'one slice per page');
    merge(mirror, changes);
    assertMirrorsDirectory(mirror);
  });

  test('permanent deletion of a user removes its memberships through delta; a soft deletion keeps them', async () => {
    const d = emu.ctx.directory;
    const start = (await round('/v1.0/groups/delta?$deltatoken=latest')).deltaLink;
    const newsletter = d.requireGroup(tenant, 'newsletter');
    const softly = newsletter.members[0]!;
    const forGood = newsletter.members[1]!;
    d.softDeleteUser(tenant, softly);
    const afterSoft = await round(start);
    assert.deepEqual(afterSoft.items, [], 'a soft-deleted user stays in its groups');
    assert.ok(newsletter.members.includes(softly));
    const holders = tenant.groups.filter((g) => g.members.includes(forGood)).map((g) => g.props.id);
    assert.ok(holders.length >= 2, 'the user is in more than one group');
    d.purgeUser(tenant, forGood);
    const afterPurge = await round(afterSoft.deltaLink);
    assert.deepEqual(
      afterPurge.items.map((i) => [i.id, i['members@delta']]).sort(),
      holders.map((id) => [id, [{ '@odata.type': '#microsoft.graph.user', id: forGood, '@removed': { reason: 'deleted' } }]]).sort(),
    );
    assert.ok(tenant.groups.every((g) => !g.members.includes(forGood)));
    assert.ok(!newsletter.members.includes(forGood));
    d.restoreUser(tenant, softly);
  });

  test('rule 26: a Microsoft 365 group is soft-deleted (changed), restored with its members, then purged (deleted); a security group goes at once', async () => {
    const d = emu.ctx.directory;
    let link = (await round('/v1.0/groups/delta?$deltatoken=latest')).deltaLink;
    const marketing = d.requireGroup(tenant, 'marketing');
    const members = [...marketing.members];
    assert.deepEqual(d.deleteGroup(tenant, marketing.props.id), { id: marketing.props.id, deleted: 'soft' });
    let r = await round(link);
    assert.deepEqual(r.items.map(({ page: _p, ...i }) => i), [{ id: marketing.props.id, '@removed': { reason: 'changed' } }]);
    assert.ok(!tenant.groups.includes(marketing));

    d.restoreGroup(tenant, marketing.props.id);
    r = await round(r.deltaLink);
    assert.equal(r.items.length, 1);
    assert.equal(r.items[0]!.displayName, 'Marketing');
    assert.deepEqual((r.items[0]!['members@delta'] as MemberEntry[]).map((m) => m.id), members);
    assert.equal(tenant.groups.indexOf(marketing), tenant.groups.findIndex((g) => g.ordinal > 2), 'back in its listing place');

    d.deleteGroup(tenant, marketing.props.id);
    d.purgeGroup(tenant, marketing.props.id);
    link = r.deltaLink;
    r = await round(link);
    assert.deepEqual(r.items.map(({ page: _p, ...i }) => i), [{ id: marketing.props.id, '@removed': { reason: 'deleted' } }]);
    assert.throws(() => d.restoreGroup(tenant, marketing.props.id), /no deleted group/);

    const empty = d.requireGroup(tenant, 'empty');
    assert.deepEqual(d.deleteGroup(tenant, empty.props.id), { id: empty.props.id, deleted: 'permanent' });
    r = await round(r.deltaLink);
    assert.deepEqual(r.items.map(({ page: _p, ...i }) => i), [{ id: empty.props.id, '@removed': { reason: 'deleted' } }]);
    assert.throws(() => d.restoreGroup(tenant, empty.props.id), /no deleted group/);
  });

  test('Prefer: return=minimal sends only the changed properties, and membership changes as members@delta only', async () => {
    const d = emu.ctx.directory;
    const start = (await round('/v1.0/groups/delta?$deltatoken=latest', { prefer: 'return=minimal' })).deltaLink;
    const staff = d.requireGroup(tenant, 'staff');
    d.editGroup(tenant, staff.props.id, { description: 'Everyone on the payroll' });
    const r = await round(start);
    assert.deepEqual(r.preferenceApplied, ['return=minimal']);
    assert.deepEqual(r.items.map(({ page: _p, ...i }) => i), [{ id: staff.props.id, description: 'Everyone on the payroll' }]);
    d.addGroupMember(tenant, staff.props.id, userIds[3]!);
    const m = await round(r.deltaLink);
    assert.deepEqual(m.items.map(({ page: _p, ...i }) => i), [{ id: staff.props.id, 'members@delta': [{ '@odata.type': '#microsoft.graph.user', id: userIds[3]! }] }]);
    d.editGroup(tenant, staff.props.id, { displayName: 'All staff' });
    d.addGroup(tenant, { displayName: 'Created later', members: [userIds[7]!] });
    const both = await round(m.deltaLink);
    const created = both.items.find((i) => i.displayName === 'Created later')!;
    assert.equal(created.securityEnabled, true, 'a created group comes whole, even under return=minimal');
    assert.deepEqual(both.items.find((i) => i.id === staff.props.id), { id: staff.props.id, displayName: 'All staff', page: 0 });
  });

  test('delta links expire: the expire control and seven days both answer 410 syncStateNotFound with where to start again', async () => {
    const link = (await round('/v1.0/groups/delta?$select=displayName,members')).deltaLink;
    const mid = await get('/v1.0/groups/delta', { prefer: 'odata.maxpagesize=1' });
    const nextLink = mid.body['@odata.nextLink'] as string;
    await emu.control('POST', `/tenants/${tenant.id}/delta/expire`);
    for (const url of [link, nextLink]) {
      const gone = await get(url);
      assert.equal(gone.status, 410);
      assert.equal((gone.body.error as Json).code, 'syncStateNotFound');
    }
    assert.equal((await get(link)).headers.get('location'), `${emu.urls.graph}/v1.0/groups/delta?$select=displayName,id,members`);
    const fresh = (await round('/v1.0/groups/delta')).deltaLink;
    assert.equal((await get(fresh)).status, 200);
    emu.ctx.clock.advance(8 * 24 * 3600);
    try {
      token = await appToken(emu.ctx, tenant.id, { roles: GROUP_ROLE });
      assert.equal((await get(fresh)).status, 410);
    } finally {
      emu.ctx.clock.advance(-8 * 24 * 3600);
      token = await appToken(emu.ctx, tenant.id, { roles: GROUP_ROLE });
    }
  });

  test('forged or foreign tokens are refused: another tenant, a users delta link, a damaged token', async () => {
    const d = emu.ctx.directory;
    const other = d.addTenant({ displayName: 'Fabrikam', domains: ['fabrikam.onmicrosoft.com'] });
    d.addGroup(other, { displayName: 'Secret' });
    const otherToken = await appToken(emu.ctx, other.id, { roles: GROUP_ROLE });
    const foreign = (await get('/v1.0/groups/delta', {}, otherToken)).body['@odata.deltaLink'] as string;
    const usersLink = (await get('/v1.0/users/delta?$deltatoken=latest')).body['@odata.deltaLink'] as string;
    const usersToken = new URL(usersLink).searchParams.get('$deltatoken')!;
    for (const url of [foreign, `/v1.0/groups/delta?$deltatoken=${usersToken}`, '/v1.0/groups/delta?$skiptoken=bm90LWEtdG9rZW4', `/v1.0/groups/delta?$skiptoken=${usersToken}`]) {
      const res = await get(url);
      assert.equal(res.status, 400, url);
      assert.equal((res.body.error as Json).code, 'Request_BadRequest');
    }
  });

  test('rule 25: without GroupMember.Read.All, Group.Read.All or Directory.Read.All the group routes answer 403 Authorization_RequestDenied', async () => {
    const usersOnly = await appToken(emu.ctx, tenant.id, { roles: ['User.Read.All'] });
    const group = tenant.groups[0]!.props.id;
    const user = tenant.users[0]!.props.id;
    for (const path of ['/v1.0/groups/delta', '/v1.0/groups', `/v1.0/groups/${group}`, `/v1.0/groups/${group}/members`, `/v1.0/groups/${group}/transitiveMembers`, `/v1.0/users/${user}/memberOf`, `/v1.0/users/${user}/transitiveMemberOf`]) {
      const res = await get(path, {}, usersOnly);
      assert.equal(res.status, 403, path);
      const error = res.body.error as Json;
      assert.equal(error.code, 'Authorization_RequestDenied');
      assert.equal(error.message, 'Insufficient privileges to complete the operation.');
      assert.ok((error.innerError as Json)['request-id']);
    }
    assert.equal((await get('/v1.0/users', {}, usersOnly)).status, 200, 'users still read');
    for (const role of ['GroupMember.Read.All', 'Group.Read.All', 'Directory.Read.All']) {
      const res = await get('/v1.0/groups/delta', {}, await appToken(emu.ctx, tenant.id, { roles: [role] }));
      assert.equal(res.status, 200, role);
    }
  });

  test('rule 25: a consent granted without the group permission gives tokens that get 403; consenting again grants it', async () => {
    const tokenFromEndpoint = async () => {
      const res = await emu.fetch(`${emu.urls.authority}/${tenant.id}/oauth2/v2.0/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: emu.demoApp.clientId, client_secret: emu.demoApp.clientSecret, scope: 'https://graph.microsoft.com/.default' }).toString(),
      });
      return ((await res.json()) as { access_token: string }).access_token;
    };
    const granted = await emu.control<{ appRoles: string[] }>('POST', `/tenants/${tenant.id}/consent`, { appRoles: ['User.Read.All'] });
    assert.deepEqual(granted.appRoles, ['User.Read.All']);
    const before = await tokenFromEndpoint();
    assert.equal((await get('/v1.0/groups/delta', {}, before)).status, 403);
    assert.equal((await get('/v1.0/users', {}, before)).status, 200);
    const again = await emu.control<{ appRoles: string[] }>('POST', `/tenants/${tenant.id}/consent`, {});
    assert.deepEqual(again.appRoles, ['User.Read.All', 'GroupMember.Read.All']);
    assert.equal((await get('/v1.0/groups/delta', {}, await tokenFromEndpoint())).status, 200);
  });

  test('faults injected for Graph hit the group routes too', async () => {
    await emu.control('POST', '/faults', { target: 'graph', kind: 'throttle', retryAfter: 2, count: 1, tenant: tenant.id });
    const throttled = await get('/v1.0/groups/delta');
    assert.equal(throttled.status, 429);
    assert.equal(throttled.headers.get('retry-after'), '2');
    assert.equal((await get('/v1.0/groups/delta')).status, 200);
  });
});
