import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, PageIterator, type PageCollection } from '@microsoft/microsoft-graph-client';
import { Agent } from 'undici';
import { GRAPH_USER_PROPERTIES, type Tenant } from '../../src/emulator/model.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { appToken } from '../helpers/tokens.ts';

type Json = Record<string, unknown>;
interface Page {
  '@odata.context': string;
  '@odata.nextLink'?: string;
  value: Json[];
}

describe('Graph /users', () => {
  let emu: TestEmulator;
  let tenant: Tenant;
  let token: string;
  let dispatcher: Agent;

  const get = async (pathOrUrl: string, headers: Record<string, string> = {}) => {
    const url = pathOrUrl.startsWith('https://') ? pathOrUrl : `${emu.urls.graph}${pathOrUrl}`;
    const res = await emu.fetch(url, { headers: { authorization: `Bearer ${token}`, ...headers } });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Json };
  };

  before(async () => {
    emu = await startTestEmulator();
    dispatcher = new Agent({ connect: { ca: emu.caCertPem } });
    tenant = emu.ctx.directory.addTenant({ displayName: 'Contoso', domains: ['contoso.onmicrosoft.com', 'contoso.com'] });
    emu.ctx.directory.addUsersUnchecked(
      tenant,
      Array.from({ length: 2500 }, (_, i) => ({
        displayName: `User ${i}`,
        userPrincipalName: `user${i}@contoso.com`,
        jobTitle: i % 2 ? 'Engineer' : null,
      })),
    );
    token = await appToken(emu.ctx, tenant.id);
  });

  after(async () => {
    await dispatcher.close();
    await emu.close();
  });

  test('the Graph client pages through 2,500 users, 999 at a time, with the select honoured', async () => {
    const client = Client.init({
      authProvider: (done) => done(null, token),
      baseUrl: emu.urls.graph,
      defaultVersion: 'v1.0',
      customHosts: new Set(['localhost']),
      // Node's global fetch takes undici's dispatcher option: that is how the client trusts the emulator's CA.
      fetchOptions: { dispatcher } as RequestInit,
    });
    const before = emu.ctx.requestLog.countsByRoute()['GET /v1.0/users'] ?? 0;
    const first = (await client.api('/users').top(999).select(['id', 'displayName', 'userPrincipalName']).get()) as PageCollection;
    const seen = new Map<string, number>();
    const keys = new Set<string>();
    const iterator = new PageIterator(client, first, (user: Json) => {
      seen.set(user.id as string, (seen.get(user.id as string) ?? 0) + 1);
      for (const key of Object.keys(user)) keys.add(key);
      return true;
    });
    await iterator.iterate();
    assert.equal(seen.size, 2500);
    assert.ok([...seen.values()].every((n) => n === 1), 'every user exactly once');
    assert.deepEqual(new Set(tenant.users.map((u) => u.props.id)), new Set(seen.keys()));
    assert.deepEqual([...keys].sort(), ['displayName', 'id', 'userPrincipalName']);
    assert.equal((emu.ctx.requestLog.countsByRoute()['GET /v1.0/users'] ?? 0) - before, 3, 'three pages');
  });

  test('default page: 100 users in the default shape, Graph content type, absolute next link on the Graph host', async () => {
    const { status, headers, body } = await get('/v1.0/users');
    assert.equal(status, 200);
    assert.match(headers.get('content-type') ?? '', /^application\/json;odata\.metadata=minimal;odata\.streaming=true/);
    const page = body as unknown as Page;
    assert.equal(page['@odata.context'], `${emu.urls.graph}/v1.0/$metadata#users`);
    assert.equal(page.value.length, 100);
    assert.deepEqual(Object.keys(page.value[0]!), [
      'businessPhones',
      'displayName',
      'givenName',
      'jobTitle',
      'mail',
      'mobilePhone',
      'officeLocation',
      'surname',
      'userPrincipalName',
      'id',
    ]);
    assert.equal(page.value[0]!.displayName, 'User 0');
    assert.ok(page['@odata.nextLink']?.startsWith(`${emu.urls.graph}/v1.0/users?$skiptoken=`));
  });

  test('$select is case-insensitive, answers with the schema spelling and names the shape in @odata.context', async () => {
    const { status, body } = await get('/v1.0/users?$top=2&$select=DisplayName,ID,accountenabled');
    assert.equal(status, 200);
    const page = body as unknown as Page;
    assert.equal(page['@odata.context'], `${emu.urls.graph}/v1.0/$metadata#users(displayName,id,accountEnabled)`);
    assert.deepEqual(page.value[0], { displayName: 'User 0', id: tenant.users[0]!.props.id, accountEnabled: true });
  });

  test('the last page has no next link; unknown query options are ignored', async () => {
    let url: string | undefined = '/v1.0/users?$top=999&$select=id&client-request-id=abc&x-client-SKU=test';
    let pages = 0;
    let count = 0;
    let last: Page | undefined;
    while (url) {
      const { status, body } = await get(url);
      assert.equal(status, 200);
      last = body as unknown as Page;
      count += last.value.length;
      pages += 1;
      url = last['@odata.nextLink'];
    }
    assert.equal(pages, 3);
    assert.equal(count, 2500);
    assert.equal(last!.value.length, 502);
    assert.ok(!('@odata.nextLink' in last!));
  });

  test('$select of every property gives exactly those properties in schema order, after edits too', async () => {
    const all = GRAPH_USER_PROPERTIES.join(',');
    const target = tenant.users[7]!;
    emu.ctx.directory.editUser(tenant, target.props.id, { department: 'Sales', mobilePhone: '+1 555 0100' });
    const { body } = await get(`/v1.0/users/${target.props.id}?$select=${all}`);
    const page = (await get(`/v1.0/users?$top=10&$select=${all}`)).body as unknown as Page;
    for (const user of [body, page.value[7]!]) {
      assert.deepEqual(Object.keys(user).filter((k) => !k.startsWith('@')), [...GRAPH_USER_PROPERTIES]);
      assert.equal(user.department, 'Sales');
    }
  });

  test('an unknown $select property is a 400 in Graph\'s words', async () => {
    const { status, body } = await get('/v1.0/users?$select=id,shoeSize');
    assert.equal(status, 400);
    const error = body.error as Json;
    assert.equal(error.code, 'Request_BadRequest');
    assert.equal(error.message, "Could not find a property named 'shoeSize' on type 'microsoft.graph.user'.");
    assert.ok((error.innerError as Json)['request-id']);
  });

  test('a $top outside 1..999 is a 400', async () => {
    for (const top of ['0', '1000', 'ten', '-5']) {
      const { status, body } = await get(`/v1.0/users?$top=${top}`);
      assert.equal(status, 400, `$top=${top}`);
      assert.equal((body.error as Json).code, 'Request_UnsupportedQuery');
      assert.match((body.error as Json).message as string, /Must be between 1 and 999 inclusive/);
    }
  });

  test('$search without ConsistencyLevel and $skip are refused as Graph does', async () => {
    const search = await get('/v1.0/users?$search="displayName:User"');
    assert.equal(search.status, 400);
    assert.match((search.body.error as Json).message as string, /ConsistencyLevel: eventual/);
    const skip = await get('/v1.0/users?$skip=10');
    assert.equal(skip.status, 400);
  });

  test('a path the emulator does not serve is answered like an unknown Graph segment', async () => {
    const { status, body } = await get('/v1.0/devices?$top=5');
    assert.equal(status, 400);
    assert.equal((body.error as Json).code, 'BadRequest');
    assert.equal((body.error as Json).message, "Resource not found for the segment 'devices'.");
  });

  test('a damaged $skiptoken is a 400', async () => {
    const { status, body } = await get('/v1.0/users?$skiptoken=not-a-token');
    assert.equal(status, 400);
    assert.equal((body.error as Json).code, 'Directory_ExpiredPageToken');
  });

  test('deleting users while paging never skips a user that is still there', async () => {
    const t = emu.ctx.directory.addTenant({ displayName: 'Fabrikam', domains: ['fabrikam.onmicrosoft.com'] });
    const users = Array.from({ length: 30 }, (_, i) => emu.ctx.directory.addUser(t, { displayName: `F${i}` }));
    const fabrikamToken = await appToken(emu.ctx, t.id);
    const page = async (url: string) => {
      const res = await emu.fetch(url, { headers: { authorization: `Bearer ${fabrikamToken}` } });
      assert.equal(res.status, 200);
      return (await res.json()) as Page;
    };
    const first = await page(`${emu.urls.graph}/v1.0/users?$top=10&$select=id`);
    // Remove one user already returned and one not yet returned: the cursor is an ordinal, not an offset.
    emu.ctx.directory.softDeleteUser(t, users[3]!.props.id);
    emu.ctx.directory.purgeUser(t, users[12]!.props.id);
    const ids = first.value.map((u) => u.id as string);
    let next = first['@odata.nextLink'];
    while (next) {
      const p = await page(next);
      ids.push(...p.value.map((u) => u.id as string));
      next = p['@odata.nextLink'];
    }
    const expected = users.filter((_, i) => i !== 12).map((u) => u.props.id);
    assert.deepEqual(ids, expected);
  });

  test('a page prepared ahead of time is not served once the tenant has changed', async () => {
    const first = (await get('/v1.0/users?$top=5&$select=id,displayName')).body as unknown as Page;
    const nextToken = new URL(first['@odata.nextLink']!).searchParams.get('$skiptoken')!;
    assert.equal(await emu.ctx.pageReadAhead.whenPrepared(nextToken), true, 'the next page was prepared ahead');
    const sixth = tenant.users[5]!;
    emu.ctx.directory.editUser(tenant, sixth.props.id, { displayName: 'Renamed while paging' });
    const second = (await get(first['@odata.nextLink']!)).body as unknown as Page;
    assert.deepEqual(second.value[0], { id: sixth.props.id, displayName: 'Renamed while paging' });
    emu.ctx.directory.editUser(tenant, sixth.props.id, { displayName: 'User 5' });
  });

  test('GET /users/{id} by id or UPN, with $select; unknown ids are a 404 in Graph\'s shape', async () => {
    const user = tenant.users[7]!.props;
    const byId = await get(`/v1.0/users/${user.id}`);
    assert.equal(byId.status, 200);
    assert.equal(byId.body['@odata.context'], `${emu.urls.graph}/v1.0/$metadata#users/$entity`);
    assert.equal(byId.body.userPrincipalName, 'user7@contoso.com');
    assert.equal(byId.body.id, user.id);

    const byUpn = await get(`/v1.0/users/USER7@contoso.com?$select=id,jobTitle`);
    assert.equal(byUpn.status, 200);
    assert.deepEqual(byUpn.body, { '@odata.context': `${emu.urls.graph}/v1.0/$metadata#users(id,jobTitle)/$entity`, id: user.id, jobTitle: 'Engineer' });

    const missing = await get('/v1.0/users/nobody@contoso.com');
    assert.equal(missing.status, 404);
    assert.equal((missing.body.error as Json).code, 'Request_ResourceNotFound');
    assert.equal(
      (missing.body.error as Json).message,
      "Resource 'nobody@contoso.com' does not exist or one of its queried reference-property objects are not present.",
    );
  });

  test('an edited user is served with the new values (cached JSON is rebuilt, default shape or not)', async () => {
    const user = tenant.users[1]!;
    await get('/v1.0/users?$top=3'); // fills the cache
    emu.ctx.directory.editUser(tenant, user.props.id, { jobTitle: 'Director' });
    const page = (await get('/v1.0/users?$top=3')).body as unknown as Page;
    assert.equal(page.value[1]!.jobTitle, 'Director');

    const selected = '/v1.0/users?$top=3&$select=id,jobTitle';
    assert.equal(((await get(selected)).body as unknown as Page).value[1]!.jobTitle, 'Director');
    emu.ctx.directory.editUser(tenant, user.props.id, { jobTitle: 'Engineer' });
    assert.equal(((await get(selected)).body as unknown as Page).value[1]!.jobTitle, 'Engineer');
  });

  test('deleted items list the soft-deleted users, paged and selected; purged and restored users leave it', async () => {
    const other = emu.ctx.directory.addTenant({ displayName: 'Bin', domains: ['bin.onmicrosoft.com'] });
    const users = Array.from({ length: 5 }, (_, i) => emu.ctx.directory.addUser(other, { displayName: `Gone ${i}`, userPrincipalName: `gone${i}@bin.onmicrosoft.com`, password: 'pw' }));
    for (const user of users.slice(0, 4)) emu.ctx.directory.softDeleteUser(other, user.props.id);
    emu.ctx.directory.purgeUser(other, users[0]!.props.id);
    emu.ctx.directory.restoreUser(other, users[1]!.props.id);
    const binToken = await appToken(emu.ctx, other.id);
    const read = async (url: string) => {
      const res = await emu.fetch(url, { headers: { authorization: `Bearer ${binToken}` } });
      assert.equal(res.status, 200);
      return (await res.json()) as Page;
    };
    const first = await read(`${emu.urls.graph}/v1.0/directory/deletedItems/microsoft.graph.user?$select=id,displayName&$top=1`);
    assert.match(first['@odata.context'], /#directoryObjects\/microsoft\.graph\.user$/);
    assert.deepEqual(first.value, [{ id: users[2]!.props.id, displayName: 'Gone 2' }]);
    const second = await read(first['@odata.nextLink']!);
    assert.deepEqual(second.value, [{ id: users[3]!.props.id, displayName: 'Gone 3' }]);
    assert.equal(second['@odata.nextLink'], undefined);
    // Another tenant sees only its own deleted items.
    const contosoDeleted = ((await get('/v1.0/directory/deletedItems/microsoft.graph.user')).body as unknown as Page).value.map((u) => u.id);
    assert.ok(!contosoDeleted.includes(users[2]!.props.id));
    const { status } = await get('/v1.0/directory/deletedItems/microsoft.graph.user?$top=5000');
    assert.equal(status, 400);
  });
});
