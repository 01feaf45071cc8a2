import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, PageIterator, type PageCollection } from '@microsoft/microsoft-graph-client';
import { Agent } from 'undici';
import type { Tenant } from '../../src/emulator/model.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { appToken } from '../helpers/tokens.ts';

type Json = Record<string, unknown>;
interface DeltaPage {
  '@odata.context': string;
  '@odata.nextLink'?: string;
  '@odata.deltaLink'?: string;
  value: Json[];
}
interface Round {
  items: Json[];
  pages: number;
  deltaLink: string;
  preferenceApplied: (string | null)[];
}

describe('Graph /users/delta', () => {
  let emu: TestEmulator;
  let tenant: Tenant;
  let token: string;

  /** Follows next links to the end of a round; returns every item and the delta link. */
  const round = async (start: string, headers: Record<string, string> = {}): Promise<Round> => {
    let url: string | undefined = start.startsWith('https://') ? start : `${emu.urls.graph}${start}`;
    const items: Json[] = [];
    const preferenceApplied: (string | null)[] = [];
    let pages = 0;
    let deltaLink: string | undefined;
    while (url) {
      const res = await emu.fetch(url, { headers: { authorization: `Bearer ${token}`, ...headers } });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      const page = JSON.parse(text) as DeltaPage;
      preferenceApplied.push(res.headers.get('preference-applied'));
      items.push(...page.value);
      pages += 1;
      url = page['@odata.nextLink'];
      deltaLink = page['@odata.deltaLink'];
      assert.ok(url === undefined || deltaLink === undefined, 'a page has a next link or a delta link, never both');
    }
    assert.ok(deltaLink?.startsWith(`${emu.urls.graph}/v1.0/users/delta?$deltatoken=`), 'the round ends with a delta link');
    return { items, pages, deltaLink: deltaLink!, preferenceApplied };
  };

  before(async () => {
    emu = await startTestEmulator();
    tenant = emu.ctx.directory.addTenant({ displayName: 'Contoso', domains: ['contoso.onmicrosoft.com', 'contoso.com'] });
    for (let i = 0; i < 12; i++) {
      emu.ctx.directory.addUser(tenant, { displayName: `User ${i}`, userPrincipalName: `user${i}@contoso.com`, jobTitle: 'Engineer' });
    }
    token = await appToken(emu.ctx, tenant.id);
  });

  after(() => emu.close());

  test('a full round with the Graph client: every user, then a delta link', async () => {
    const dispatcher = new Agent({ connect: { ca: emu.caCertPem } });
    try {
      const client = Client.init({
        authProvider: (done) => done(null, token),
        baseUrl: emu.urls.graph,
        customHosts: new Set(['localhost']),
        fetchOptions: { dispatcher } as RequestInit,
      });
      const first = (await client.api('/users/delta').select('id,displayName').header('Prefer', 'odata.maxpagesize=5').get()) as PageCollection;
      const ids: string[] = [];
      const iterator = new PageIterator(client, first, (user: Json) => {
        ids.push(user.id as string);
        assert.deepEqual(Object.keys(user).sort(), ['displayName', 'id']);
        return true;
      });
      await iterator.iterate();
      assert.deepEqual(ids, tenant.users.map((u) => u.props.id));
      assert.match(iterator.getDeltaLink() ?? '', /\/v1\.0\/users\/delta\?\$deltatoken=/);
    } finally {
      await dispatcher.close();
    }
  });

  test('create, update, soft delete, restore and permanent delete come through delta links', async () => {
    const { directory } = emu.ctx;
    const initial = await round('/v1.0/users/delta?$select=id,displayName,jobTitle', { prefer: 'odata.maxpagesize=5' });
    assert.equal(initial.pages, 3);
    assert.equal(initial.items.length, 12);
    assert.deepEqual(Object.keys(initial.items[0]!), ['id', 'displayName', 'jobTitle']);

    // Nothing changed: an empty round and a fresh delta link.
    const quiet = await round(initial.deltaLink);
    assert.deepEqual(quiet.items, []);

    // Create.
    const created = directory.addUser(tenant, { displayName: 'Newcomer', userPrincipalName: 'newcomer@contoso.com' });
    const afterCreate = await round(quiet.deltaLink);
    assert.deepEqual(afterCreate.items, [{ id: created.props.id, displayName: 'Newcomer', jobTitle: null }]);

    // Update: the whole selected object by default (query options were folded into the token).
    const target = tenant.users[2]!.props;
    directory.editUser(tenant, target.id, { jobTitle: 'Architect' });
    const afterUpdate = await round(afterCreate.deltaLink);
    assert.deepEqual(afterUpdate.items, [{ id: target.id, displayName: target.displayName, jobTitle: 'Architect' }]);

    // Soft delete, then restore, then permanent delete.
    directory.softDeleteUser(tenant, target.id);
    const afterDelete = await round(afterUpdate.deltaLink);
    assert.deepEqual(afterDelete.items, [{ id: target.id, '@removed': { reason: 'changed' } }]);

    directory.restoreUser(tenant, target.id);
    const afterRestore = await round(afterDelete.deltaLink);
    assert.deepEqual(afterRestore.items, [{ id: target.id, displayName: target.displayName, jobTitle: 'Architect' }]);

    directory.purgeUser(tenant, target.id);
    const afterPurge = await round(afterRestore.deltaLink);
    assert.deepEqual(afterPurge.items, [{ id: target.id, '@removed': { reason: 'deleted' } }]);

    // An older delta link still replays everything since it was issued (each user once, in its latest state).
    const replay = await round(initial.deltaLink);
    assert.deepEqual(
      replay.items.map((i) => i.id),
      [created.props.id, target.id],
    );
    assert.deepEqual(replay.items[1], { id: target.id, '@removed': { reason: 'deleted' } });
  });

  test('Prefer: return=minimal gives id plus only the changed properties, and says so', async () => {
    const { directory } = emu.ctx;
    const initial = await round('/v1.0/users/delta?$select=displayName,jobTitle,department', { prefer: 'return=minimal, odata.maxpagesize=999' });
    assert.equal(initial.pages, 1);
    assert.deepEqual(initial.preferenceApplied, ['return=minimal']);
    assert.deepEqual(Object.keys(initial.items[0]!), ['displayName', 'jobTitle', 'department', 'id'], 'id is always there');

    const a = tenant.users[0]!.props;
    const b = tenant.users[1]!.props;
    directory.editUser(tenant, a.id, { jobTitle: 'Lead' });
    directory.editUser(tenant, a.id, { department: 'R&D' });
    directory.editUser(tenant, b.id, { displayName: 'Renamed', mobilePhone: '+1 555 0100' });
    const created = directory.addUser(tenant, { displayName: 'Minimal newcomer', userPrincipalName: 'minimal@contoso.com' });

    // No Prefer header on the later call: the preference travels in the token.
    const changes = await round(initial.deltaLink);
    assert.deepEqual(changes.preferenceApplied, ['return=minimal']);
    assert.deepEqual(changes.items, [
      { jobTitle: 'Lead', department: 'R&D', id: a.id },
      { displayName: 'Renamed', id: b.id },
      { displayName: 'Minimal newcomer', jobTitle: null, department: null, id: created.props.id },
    ]);
  });

  test('$deltatoken=latest returns no users, only a delta link from now on', async () => {
    const latest = await round('/v1.0/users/delta?$deltatoken=latest&$select=id,displayName');
    assert.deepEqual(latest.items, []);
    const created = emu.ctx.directory.addUser(tenant, { displayName: 'After latest', userPrincipalName: 'latest@contoso.com' });
    const next = await round(latest.deltaLink);
    assert.deepEqual(next.items, [{ id: created.props.id, displayName: 'After latest' }]);
  });

  test('changes spanning several pages are paged with next links inside the round', async () => {
    const initial = await round('/v1.0/users/delta?$select=id,displayName', { prefer: 'odata.maxpagesize=4' });
    const edited = tenant.users.slice(0, 10).map((u) => u.props.id);
    for (const id of edited) emu.ctx.directory.editUser(tenant, id, { displayName: `Paged ${id.slice(0, 4)}` });
    const changes = await round(initial.deltaLink);
    assert.equal(changes.pages, 3);
    assert.deepEqual(
      changes.items.map((i) => i.id),
      edited,
    );
    assert.ok(changes.items.every((i) => (i.displayName as string).startsWith('Paged ')));
  });

  test('expired delta tokens: 410 syncStateNotFound with a Location for a fresh round', async () => {
    const t = emu.ctx.directory.addTenant({ displayName: 'Expiring', domains: ['expiring.onmicrosoft.com'] });
    emu.ctx.directory.addUser(t, { displayName: 'Only user' });
    const expiringToken = await appToken(emu.ctx, t.id, { expiresInSeconds: 30 * 24 * 3600 });
    const call = (url: string) => emu.fetch(url, { headers: { authorization: `Bearer ${expiringToken}` } });

    const first = (await (await call(`${emu.urls.graph}/v1.0/users/delta?$select=id,displayName`)).json()) as DeltaPage;
    const deltaLink = first['@odata.deltaLink']!;
    assert.equal((await call(deltaLink)).status, 200);

    // "Expire delta tokens" for the tenant.
    t.deltaFloor = t.seq + 1;
    const gone = await call(deltaLink);
    assert.equal(gone.status, 410);
    const body = (await gone.json()) as { error: Json };
    assert.equal(body.error.code, 'syncStateNotFound');
    assert.match(body.error.message as string, /resync is required/);
    const location = gone.headers.get('location');
    assert.equal(location, `${emu.urls.graph}/v1.0/users/delta?$select=id,displayName`);

    // The Location starts a fresh round whose delta link works again.
    const fresh = (await (await call(location!)).json()) as DeltaPage;
    assert.equal(fresh.value.length, 1);
    const freshLink = fresh['@odata.deltaLink']!;
    assert.equal((await call(freshLink)).status, 200);

    // Seven days on the emulator clock later, it is gone too.
    emu.ctx.clock.advance(8 * 24 * 3600);
    try {
      const old = await call(freshLink);
      assert.equal(old.status, 410);
      assert.equal(((await old.json()) as { error: Json }).error.code, 'syncStateNotFound');
      assert.ok(old.headers.get('location'));
    } finally {
      emu.ctx.clock.advance(-8 * 24 * 3600);
    }
  });

  test('a damaged delta token is a 400', async () => {
    const res = await emu.fetch(`${emu.urls.graph}/v1.0/users/delta?$deltatoken=garbage`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: Json }).error.code, 'Request_BadRequest');
  });

  test('a delta token of another tenant is refused', async () => {
    const other = emu.ctx.directory.addTenant({ displayName: 'Other', domains: ['other.onmicrosoft.com'] });
    const otherToken = await appToken(emu.ctx, other.id);
    const mine = await round('/v1.0/users/delta?$deltatoken=latest');
    const res = await emu.fetch(mine.deltaLink, { headers: { authorization: `Bearer ${otherToken}` } });
    assert.equal(res.status, 400);
  });
});
