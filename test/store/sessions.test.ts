import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { CompiledOnce } from '../../src/store/compiled-query.ts';
import { repositoriesOf } from '../../src/store/repositories.ts';
import { SessionRepository } from '../../src/store/sessions.ts';
import { hashToken } from '../../src/store/tokens.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const MINUTE = 60_000;
const NOW = 1_700_000_000_000;
const LIMITS = { idleMs: 30 * MINUTE, absoluteMs: 8 * 60 * MINUTE };

for (const engine of ENGINES) {
  describe(`sessions with their tenant and user on ${engine}`, () => {
    let test: TestStore;
    before(async () => {
      test = await openTestStore(engine);
    });
    after(async () => {
      await test.drop();
    });

    async function tenantWithUser(userId = 'u1'): Promise<string> {
      const repos = repositoriesOf(test.store);
      const tenantId = randomUUID();
      await repos.tenants.activate({ id: tenantId, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: 'signer', signupContext: { plan: 'team' } }, NOW);
      await repos.users.recordSignIn({ tenantId, objectId: userId, displayName: 'Ann', username: 'ann@contoso.com', email: 'ann@contoso.com' }, NOW);
      return tenantId;
    }

    async function lastSeenAt(id: string): Promise<number | undefined> {
      const row = await test.store.db.selectFrom('sessions').select('last_seen_at').where('id_hash', '=', hashToken(id)).executeTakeFirst();
      return row === undefined ? undefined : Number(row.last_seen_at);
    }

    it('reads the session, its tenant and its user as the repositories do, in one statement', async () => {
      const tenantId = await tenantWithUser();
      const repos = repositoriesOf(test.store);
      const sessions = new SessionRepository(test.store.db, LIMITS);
      const { id, session } = await sessions.create(tenantId, 'u1', NOW, 'hint', ['62e90394-69f5-4237-9190-012177145e10']);
      const signedIn = await sessions.resumeSignedIn(id, NOW + MINUTE);
      assert.ok(signedIn);
      assert.deepEqual(signedIn.session, session);
      assert.deepEqual(signedIn.tenant, await repos.tenants.get(tenantId));
      assert.deepEqual(signedIn.user, await repos.users.get(tenantId, 'u1'));
      assert.equal(signedIn.tenantHasAccessList, false);
      assert.deepEqual(await sessions.resume(id, NOW + MINUTE), session, 'resume reads the same session');
    });

    it('says when the tenant or the user row is gone, and does not find a user of the same id in another tenant', async () => {
      const tenantId = await tenantWithUser();
      const otherTenant = await tenantWithUser('u2');
      const sessions = new SessionRepository(test.store.db, LIMITS);
      const stranger = await sessions.create(tenantId, 'u2', NOW);
      const strangerSignedIn = await sessions.resumeSignedIn(stranger.id, NOW);
      assert.ok(strangerSignedIn);
      assert.equal(strangerSignedIn.user, undefined, 'u2 exists only in the other tenant');
      assert.equal(strangerSignedIn.tenant?.id, tenantId);

      const orphan = await sessions.create(randomUUID(), 'u2', NOW);
      const orphanSignedIn = await sessions.resumeSignedIn(orphan.id, NOW);
      assert.ok(orphanSignedIn);
      assert.equal(orphanSignedIn.tenant, undefined);
      assert.equal(orphanSignedIn.user, undefined);
      assert.ok((await sessions.resumeSignedIn((await sessions.create(otherTenant, 'u2', NOW)).id, NOW))?.user);
    });

    it('says whether the tenant has an access list (only grants of access count)', async () => {
      const tenantId = await tenantWithUser();
      const repos = repositoriesOf(test.store);
      const sessions = new SessionRepository(test.store.db, LIMITS);
      const { id } = await sessions.create(tenantId, 'u1', NOW);
      await repos.groupRoles.add(tenantId, 'admins-group', 'admin', 'test', NOW);
      assert.equal((await sessions.resumeSignedIn(id, NOW))?.tenantHasAccessList, false);
      await repos.groupRoles.add(tenantId, 'staff-group', 'access', 'test', NOW);
      assert.equal((await sessions.resumeSignedIn(id, NOW))?.tenantHasAccessList, true);
      const other = await tenantWithUser();
      assert.equal((await sessions.resumeSignedIn((await sessions.create(other, 'u1', NOW)).id, NOW))?.tenantHasAccessList, false, "another tenant's list is not this one's");
    });

    it('ends idle and expired sessions as resume does, and moves the idle clock at most once a minute', async () => {
      const tenantId = await tenantWithUser();
      const sessions = new SessionRepository(test.store.db, LIMITS);
      const { id } = await sessions.create(tenantId, 'u1', NOW);
      assert.ok(await sessions.resumeSignedIn(id, NOW + 30_000));
      assert.equal(await lastSeenAt(id), NOW, 'not written within the minute');
      assert.ok(await sessions.resumeSignedIn(id, NOW + 20 * MINUTE, { touch: false }));
      assert.equal(await lastSeenAt(id), NOW, 'a check without activity writes nothing');
      assert.ok(await sessions.resumeSignedIn(id, NOW + 20 * MINUTE));
      assert.equal(await lastSeenAt(id), NOW + 20 * MINUTE);
      assert.ok(await sessions.resumeSignedIn(id, NOW + 45 * MINUTE), 'the previous request moved the idle window');
      assert.equal(await sessions.resumeSignedIn(id, NOW + 80 * MINUTE), undefined, 'idle for 35 minutes');
      assert.equal(await lastSeenAt(id), undefined, 'deleted once found idle');

      const long = await sessions.create(tenantId, 'u1', NOW);
      for (let t = 20; t < 8 * 60; t += 20) assert.ok(await sessions.resumeSignedIn(long.id, NOW + t * MINUTE));
      assert.equal(await sessions.resumeSignedIn(long.id, NOW + 8 * 60 * MINUTE), undefined, 'absolute limit even when active');
      assert.equal(await lastSeenAt(long.id), undefined);
    });

    it('finds nothing for forged, empty, odd or another session\'s hashed cookie values', async () => {
      const tenantId = await tenantWithUser();
      const sessions = new SessionRepository(test.store.db, LIMITS);
      const { id } = await sessions.create(tenantId, 'u1', NOW);
      for (const forged of ['', 'x', `${id}x`, id.slice(0, -1), hashToken(id), "' or 1=1 --", '\u0000idHash', 'a'.repeat(10_000)]) {
        assert.equal(await sessions.resumeSignedIn(forged, NOW), undefined, JSON.stringify(forged.slice(0, 40)));
      }
      assert.ok(await sessions.resumeSignedIn(id, NOW), 'the real one still works');
    });
  });

  describe(`a query compiled once on ${engine}`, () => {
    let test: TestStore;
    before(async () => {
      test = await openTestStore(engine);
    });
    after(async () => {
      await test.drop();
    });

    it('runs with each call\'s values in place of the placeholders and keeps the constants it was built with', async () => {
      const repos = repositoriesOf(test.store);
      const tenantId = randomUUID();
      await repos.tenants.activate({ id: tenantId, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: null, signupContext: null }, NOW);
      for (const [id, role] of [['a', 'admin'], ['b', 'member'], ['c', 'admin']] as const) await repos.users.recordSignIn({ tenantId, objectId: id, displayName: id, username: null, email: null }, NOW, role);
      const byRole = new CompiledOnce(test.store.db, ['tenantId', 'after'], (db, v) =>
        db.selectFrom('users').select('id').where('tenant_id', '=', v.tenantId).where('roster_role', '=', 'admin').where('id', '>', v.after).orderBy('id'),
      );
      const ids = async (values: { tenantId: string; after: string }) => (await byRole.execute(values)).map((row) => row.id);
      assert.deepEqual(await ids({ tenantId, after: '' }), ['a', 'c']);
      assert.deepEqual(await ids({ tenantId, after: 'a' }), ['c']);
      assert.deepEqual(await ids({ tenantId: randomUUID(), after: '' }), []);
      assert.deepEqual(await ids({ tenantId: "' or 1=1 --", after: '' }), [], 'a value is only ever bound');
    });

    it('refuses a build that does not bind every placeholder', async () => {
      const unused = new CompiledOnce(test.store.db, ['tenantId'], (db) => db.selectFrom('tenants').select('id'));
      await assert.rejects(unused.execute({ tenantId: 'x' }), /binds no parameter for tenantId/);
      const inlined = new CompiledOnce(test.store.db, ['tenantId'], (db, v) => db.selectFrom('tenants').select('id').where('id', '=', v.tenantId).where(sql.lit(v.tenantId), '=', sql.lit(v.tenantId)));
      await assert.rejects(inlined.execute({ tenantId: 'x' }), /written into the SQL text/);
    });
  });
}
