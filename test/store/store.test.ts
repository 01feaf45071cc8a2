import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { migrateToLatest, openStore, StoreUnavailableError } from '../../src/store/database.ts';
import { AuthRequestRepository } from '../../src/store/auth-requests.ts';
import { SessionRepository } from '../../src/store/sessions.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { SEARCH_COUNT_CAP, UserRepository } from '../../src/store/users.ts';
import { TenantLifecycle } from '../../src/tenants/lifecycle.ts';
import { hashToken } from '../../src/store/tokens.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

/** A tenant id no other test uses: rows an earlier test leaves behind cannot change this test's counts. */
function newTenantId(): string {
  return randomUUID();
}
const MINUTE = 60_000;

for (const engine of ENGINES) {
  describe(`store on ${engine}`, () => {
    let test: TestStore;
    before(async () => {
      test = await openTestStore(engine);
    });
    after(async () => {
      await test.drop();
    });

    it('migrations are idempotent: a second run applies nothing', async () => {
      const again = await migrateToLatest(test.store);
      assert.deepEqual(again, []);
    });

    it('registering the same tenant twice keeps one active row with the latest name', async () => {
      const tenantA = newTenantId();
      const tenants = new TenantRepository(test.store.db);
      await tenants.activate({ id: tenantA.toUpperCase(), displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: 'o1', signupContext: { plan: 'team' } }, 1000);
      await tenants.activate({ id: tenantA, displayName: 'Contoso Ltd', domains: ['contoso.com', 'contoso.onmicrosoft.com'], signedUpByOid: 'o1', signupContext: null }, 2000);
      const all = (await tenants.list()).filter((t) => t.id === tenantA);
      assert.equal(all.length, 1);
      assert.equal(all[0]!.displayName, 'Contoso Ltd');
      assert.deepEqual(all[0]!.domains, ['contoso.com', 'contoso.onmicrosoft.com']);
      assert.equal(all[0]!.state, 'active');
      assert.equal(all[0]!.createdAt, 1000);
      assert.equal(all[0]!.updatedAt, 2000);
    });

    it('a disconnected tenant becomes active again when it is confirmed again', async () => {
      const tenantA = newTenantId();
      const tenants = new TenantRepository(test.store.db);
      await tenants.activate({ id: tenantA, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: 'o1', signupContext: null }, 2000);
      await tenants.setState(tenantA, 'disconnected', 'consent revoked', 3000);
      assert.equal((await tenants.get(tenantA))!.state, 'disconnected');
      await tenants.activate({ id: tenantA, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: 'o2', signupContext: null }, 4000);
      const tenant = (await tenants.get(tenantA))!;
      assert.equal(tenant.state, 'active');
      assert.equal(tenant.stateReason, null);
    });

    it('users are keyed by (tenant, object id): the same email in two tenants is two users, a changed email keeps the user', async () => {
      const [tenantA, tenantB] = [newTenantId(), newTenantId()];
      const tenants = new TenantRepository(test.store.db);
      await tenants.activate({ id: tenantA, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: null, signupContext: null }, 1000);
      await tenants.activate({ id: tenantB, displayName: 'Fabrikam', domains: ['fabrikam.com'], signedUpByOid: null, signupContext: null }, 1000);
      const users = new UserRepository(test.store.db);
      await users.recordSignIn({ tenantId: tenantA, objectId: 'u1', displayName: 'Ann', username: 'ann@contoso.com', email: 'same@example.com' }, 1000);
      await users.recordSignIn({ tenantId: tenantB, objectId: 'u1', displayName: 'Ann B', username: 'ann@fabrikam.com', email: 'same@example.com' }, 1000);
      assert.equal(await users.countInTenant(tenantA), 1);
      assert.equal(await users.countInTenant(tenantB), 1);
      const renamed = await users.recordSignIn({ tenantId: tenantA, objectId: 'u1', displayName: 'Ann', username: 'ann@contoso.com', email: 'new@example.com' }, 2000);
      assert.equal(renamed.mail, 'new@example.com');
      assert.equal(renamed.lastSignInAt, 2000);
      assert.equal(await users.countInTenant(tenantA), 1);
      assert.equal((await users.get(tenantB, 'u1'))!.displayName, 'Ann B');
    });

    it('sessions: the table keeps only a hash of the id; idle and absolute limits end them', async () => {
      const tenantA = newTenantId();
      const sessions = new SessionRepository(test.store.db, { idleMs: 30 * MINUTE, absoluteMs: 8 * 60 * MINUTE });
      const { id } = await sessions.create(tenantA, 'u1', 0);
      assert.ok(id.length >= 43, 'at least 256 bits, base64url');
      const stored = await test.store.db.selectFrom('sessions').select('id_hash').execute();
      assert.ok(stored.every((row) => row.id_hash !== id));
      assert.ok(stored.some((row) => row.id_hash === hashToken(id)));

      assert.ok(await sessions.resume(id, 20 * MINUTE), 'alive within the idle limit');
      assert.ok(await sessions.resume(id, 45 * MINUTE), 'the previous request moved the idle window');
      assert.equal(await sessions.resume(id, 80 * MINUTE), undefined, 'idle for 35 minutes');
      assert.equal(await sessions.resume(id, 81 * MINUTE), undefined, 'deleted once found expired');

      const long = await sessions.create(tenantA, 'u1', 0);
      for (let t = 20; t < 8 * 60; t += 20) assert.ok(await sessions.resume(long.id, t * MINUTE));
      assert.equal(await sessions.resume(long.id, 8 * 60 * MINUTE), undefined, 'absolute limit even when active');
    });

    it('sessions end per user and per tenant', async () => {
      const [tenantA, tenantB] = [newTenantId(), newTenantId()];
      const sessions = new SessionRepository(test.store.db, { idleMs: 30 * MINUTE, absoluteMs: 8 * 60 * MINUTE });
      const a1 = await sessions.create(tenantA, 'u1', 0);
      const a2 = await sessions.create(tenantA, 'u2', 0);
      const b1 = await sessions.create(tenantB, 'u1', 0);
      assert.equal(await sessions.destroyForUsers(tenantA, ['u1']), 1);
      assert.equal(await sessions.resume(a1.id, 1), undefined);
      assert.ok(await sessions.resume(a2.id, 1));
      assert.ok(await sessions.resume(b1.id, 1), 'same object id in another tenant is untouched');
      await sessions.destroyForTenant(tenantA);
      assert.equal(await sessions.resume(a2.id, 2), undefined);
      assert.ok(await sessions.resume(b1.id, 2));
    });

    it('sessions end for any number of users at once (more ids than one statement may bind)', async () => {
      const tenantA = newTenantId();
      const sessions = new SessionRepository(test.store.db, { idleMs: 30 * MINUTE, absoluteMs: 8 * 60 * MINUTE });
      const kept = await sessions.create(tenantA, 'stays', 0);
      const ended = await sessions.create(tenantA, 'u-2999', 0);
      const ids = Array.from({ length: 40_000 }, (_, i) => `u-${i}`);
      assert.equal(await sessions.destroyForUsers(tenantA, ids), 1);
      assert.equal(await sessions.resume(ended.id, 1), undefined);
      assert.ok(await sessions.resume(kept.id, 1));
    });

    it('disconnecting a tenant ends its sessions and keeps its users, in one step', async () => {
      const [tenantA, tenantB] = [newTenantId(), newTenantId()];
      const tenants = new TenantRepository(test.store.db);
      for (const id of [tenantA, tenantB]) await tenants.activate({ id, displayName: id.slice(0, 4), domains: [], signedUpByOid: null, signupContext: null }, 1);
      const users = new UserRepository(test.store.db, engine);
      await users.recordSignIn({ tenantId: tenantA, objectId: 'u1', displayName: 'Ann', username: null, email: null }, 1);
      const sessions = new SessionRepository(test.store.db, { idleMs: 30 * MINUTE, absoluteMs: 8 * 60 * MINUTE });
      const [a, b] = [await sessions.create(tenantA, 'u1', 0), await sessions.create(tenantB, 'u1', 0)];
      await new TenantLifecycle(test.store).disconnect(tenantA, 'consent revoked', 5);
      const tenant = (await tenants.get(tenantA))!;
      assert.deepEqual([tenant.state, tenant.stateReason], ['disconnected', 'consent revoked']);
      assert.equal(await sessions.resume(a.id, 1), undefined);
      assert.ok(await sessions.resume(b.id, 1), "another tenant's sessions stay");
      assert.equal(await users.countInTenant(tenantA), 1, 'the data stays for a reconnect');
    });

    it('auth requests: single use, bound to the browser, the kind and a lifetime', async () => {
      const requests = new AuthRequestRepository(test.store.db, 10 * MINUTE);
      const base = { kind: 'signin' as const, browserBinding: 'browser-1', nonce: 'n', codeVerifier: 'v', returnTo: '/users', context: { plan: 'team' } };
      const state = await requests.create(base, 0);
      const taken = await requests.take(state, 'signin', 'browser-1', MINUTE);
      assert.equal(taken?.nonce, 'n');
      assert.deepEqual(taken?.context, { plan: 'team' });
      assert.equal(await requests.take(state, 'signin', 'browser-1', MINUTE), undefined, 'replayed state');

      const other = await requests.create(base, 0);
      assert.equal(await requests.take(other, 'signin', 'browser-2', MINUTE), undefined, 'another browser');
      assert.equal(await requests.take(other, 'signup', 'browser-1', MINUTE), undefined, 'wrong kind');
      assert.ok(await requests.take(other, 'signin', 'browser-1', MINUTE), 'neither attempt spoiled it for its own browser');

      const old = await requests.create(base, 0);
      assert.equal(await requests.take(old, 'signin', 'browser-1', 10 * MINUTE), undefined, 'expired');
      assert.equal(await requests.take('never-issued', 'signin', 'browser-1', 0), undefined, 'unknown');
    });

    it('search text with SQL metacharacters is only text', async () => {
      const tenantA = newTenantId();
      await new TenantRepository(test.store.db).activate({ id: tenantA, displayName: 'Contoso', domains: [], signedUpByOid: null, signupContext: null }, 1);
      const users = new UserRepository(test.store.db);
      const evil = "x'); drop table users; --";
      await users.recordSignIn({ tenantId: tenantA, objectId: 'u9', displayName: evil, username: evil, email: null }, 1);
      assert.equal((await users.get(tenantA, 'u9'))!.displayName, evil);
      const { rows } = await sql<{ n: number }>`select count(*) as n from users`.execute(test.store.db);
      assert.ok(Number(rows[0]!.n) >= 1);
    });

    it('the searched columns are indexed for "contains" search (trigrams on PostgreSQL, one narrow index on SQLite)', async () => {
      const names =
        engine === 'postgres'
          ? (await sql<{ name: string }>`select indexname as name from pg_indexes where tablename = 'users'`.execute(test.store.db)).rows.map((r) => r.name)
          : (await sql<{ name: string }>`select name from sqlite_master where type = 'index' and tbl_name = 'users'`.execute(test.store.db)).rows.map((r) => r.name);
      const expected = engine === 'postgres' ? ['users_search_name', 'users_search_upn', 'users_search_mail', 'users_search_department'] : ['users_search_columns'];
      for (const name of expected) assert.ok(names.includes(name), `${name} among ${names.join(', ')}`);
    });

    it('the tenant user count kept by the database follows inserts, upserts, deletes and leaving', async () => {
      const tenant = '44444444-4444-4444-8444-444444444444';
      const other = '55555555-5555-4555-8555-555555555555';
      const tenants = new TenantRepository(test.store.db);
      for (const id of [tenant, other]) await tenants.activate({ id, displayName: id.slice(0, 4), domains: [], signedUpByOid: null, signupContext: null }, 1);
      const users = new UserRepository(test.store.db, engine);
      const counted = async (id: string) => (await tenants.get(id))!.userCount;
      const actual = async (id: string) => Number((await test.store.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', id).executeTakeFirstOrThrow()).n);
      const row = (t: string, i: number) => ({ tenant_id: t, id: `c-${i}`, display_name: `C ${i}`, account_enabled: 1, roster_role: 'member' as const, updated_at: 1 });

      await test.store.db.insertInto('users').values([...Array.from({ length: 30 }, (_, i) => row(tenant, i)), ...Array.from({ length: 7 }, (_, i) => row(other, i))]).execute();
      // An upsert that updates existing rows and inserts new ones counts only the new ones.
      await test.store.db
        .insertInto('users')
        .values(Array.from({ length: 40 }, (_, i) => row(tenant, i + 10)))
        .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet({ display_name: 'renamed' }))
        .execute();
      await users.recordSignIn({ tenantId: tenant, objectId: 'c-5', displayName: 'again', username: null, email: null }, 2);
      await users.recordSignIn({ tenantId: tenant, objectId: 'new-one', displayName: 'new', username: null, email: null }, 2);
      await test.store.db.deleteFrom('users').where('tenant_id', '=', tenant).where('id', 'in', ['c-0', 'c-1', 'c-2']).execute();
      assert.equal(await counted(tenant), 48);
      assert.equal(await counted(tenant), await actual(tenant));
      assert.equal(await counted(other), 7);
      assert.equal(await users.countInTenant(tenant), 48);

      await new TenantLifecycle(test.store).offboard(tenant, 'test', 3);
      assert.equal(await counted(tenant), 0);
      assert.equal(await counted(other), 7);
    });

    it('a text search pages frequent and rare matches alike, in order, with a capped count', async () => {
      const tenant = '33333333-3333-4333-8333-333333333333';
      await new TenantRepository(test.store.db).activate({ id: tenant, displayName: 'Searchco', domains: [], signedUpByOid: null, signupContext: null }, 1);
      // 10,100 frequent matches (past the count's cap: the page walks the sort index) and 30 rare ones (collected, then sorted), in scrambled name order.
      const rows = Array.from({ length: 10_300 }, (_, i) => {
        const name = `${String((i * 7919) % 10_300).padStart(5, '0')} ${i < 10_100 ? 'Common' : i < 10_130 ? 'Rare' : 'Other'}`;
        return { tenant_id: tenant, id: `user-${i}`, display_name: name, mail: null, user_principal_name: `u${i}@searchco.com`, department: null, account_enabled: 1, roster_role: 'member' as const, updated_at: 1 };
      });
      for (let i = 0; i < rows.length; i += 500) await test.store.db.insertInto('users').values(rows.slice(i, i + 500)).execute();
      const users = new UserRepository(test.store.db, engine);
      for (const [term, expected] of [['common', 10_100], ['RARE', 30], ['mon', 10_100], ['re', 30]] as const) {
        const names = rows.filter((r) => r.display_name.toLowerCase().includes(term.toLowerCase())).map((r) => r.display_name.toLowerCase()).sort();
        for (const descending of [false, true]) {
          const wanted = descending ? [...names].reverse() : names;
          const first = await users.search(tenant, { search: term, descending }, { offset: 0, limit: 50 });
          const third = await users.search(tenant, { search: term, descending }, { offset: 100, limit: 50 });
          assert.equal(first.total, Math.min(expected, SEARCH_COUNT_CAP));
          assert.equal(first.totalIsAtLeast, expected > SEARCH_COUNT_CAP);
          assert.deepEqual(first.users.map((u) => u.displayName!.toLowerCase()), wanted.slice(0, 50));
          assert.deepEqual(third.users.map((u) => u.displayName!.toLowerCase()), wanted.slice(100, 150));
        }
      }
    });
  });
}

describe('opening a database that cannot be used', () => {
  it('an unreachable PostgreSQL fails at open with a message naming the host, without the password', async () => {
    await assert.rejects(
      openStore({ engine: 'postgres', url: 'postgres://roster:s3cret@127.0.0.1:1/roster' }),
      (err: unknown) => {
        assert.ok(err instanceof StoreUnavailableError);
        assert.match(err.message, /cannot connect to PostgreSQL at postgres:\/\/roster:\*\*\*@127\.0\.0\.1:1\/roster/);
        assert.doesNotMatch(err.message, /s3cret/);
        return true;
      },
    );
  });

  it('a SQLite path that cannot be created fails with the path in the message', async () => {
    await assert.rejects(openStore({ engine: 'sqlite', path: '/etc/hostname/roster/roster.db' }), (err: unknown) => {
      assert.ok(err instanceof StoreUnavailableError);
      assert.match(err.message, /\/etc\/hostname\/roster\/roster\.db/);
      return true;
    });
  });
});
