import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SyncedUserRepository, type UserWrite } from '../../src/store/synced-users.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const NOW = 1_700_000_000_000;

for (const engine of ENGINES) {
  describe(`synced users store on ${engine}`, () => {
    let test: TestStore;
    let synced: SyncedUserRepository;
    before(async () => {
      test = await openTestStore(engine);
      synced = new SyncedUserRepository(test.store.db, engine);
    });
    after(async () => {
      await test.drop();
    });

    async function tenant(): Promise<string> {
      const id = randomUUID();
      await new TenantRepository(test.store.db).activate({ id, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: 'o1', signupContext: null }, NOW);
      return id;
    }

    const row = (tenantId: string, id: string) => test.store.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();

    it('creates members with an enabled account, updates only the columns a write sets, and keeps tenants apart', async () => {
      const [t, other] = [await tenant(), await tenant()];
      await synced.upsert(t, [
        { id: 'u1', display_name: 'Ada', job_title: 'Engineer', updated_at: NOW },
        { id: 'u2', display_name: 'Grace', job_title: null, updated_at: NOW },
        // Another shape in the same call: its own statement.
        { id: 'u3', display_name: 'Off', account_enabled: 0, roster_role: 'admin', updated_at: NOW },
      ]);
      await synced.upsert(other, [{ id: 'u1', display_name: 'Other Ada', updated_at: NOW }]);
      const ada = await row(t, 'u1');
      assert.deepEqual([ada?.display_name, ada?.job_title, ada?.roster_role, ada?.account_enabled, ada?.deleted_at], ['Ada', 'Engineer', 'member', 1, null]);
      assert.equal((await row(t, 'u2'))?.job_title, null);
      assert.equal((await row(t, 'u3'))?.account_enabled, 0);
      assert.equal((await row(t, 'u3'))?.roster_role, 'admin');

      // A partial update: the title changes, the name stays, the role an admin gave stays.
      await test.store.db.updateTable('users').set({ roster_role: 'admin' }).where('tenant_id', '=', t).where('id', '=', 'u1').execute();
      await synced.upsert(t, [{ id: 'u1', job_title: 'Manager', updated_at: NOW + 1 }]);
      const u1 = await row(t, 'u1');
      assert.equal(u1?.display_name, 'Ada');
      assert.equal(u1?.job_title, 'Manager');
      assert.equal(u1?.roster_role, 'admin');
      assert.equal(Number(u1?.updated_at), NOW + 1);
      assert.equal((await row(other, 'u1'))?.display_name, 'Other Ada');
      assert.equal((await synced.stored(t, ['u1', 'u2', 'u3', 'nobody'])).size, 3);
    });

    it('writes more rows than one statement takes, and the same shape again from its kept statement', async () => {
      const t = await tenant();
      const writes = (title: string): UserWrite[] => Array.from({ length: 2345 }, (_, i) => ({ id: `u${i}`, display_name: `User ${i}`, job_title: title, updated_at: NOW }));
      await synced.upsert(t, writes('first'));
      await synced.upsert(t, writes('second'));
      const stored = await synced.stored(t, writes('').map((w) => w.id));
      assert.equal(stored.size, 2345);
      assert.ok([...stored.values()].every((user) => user.job_title === 'second'));
    });

    it('refuses a write naming a column users do not have, and writes nothing of it', async () => {
      const t = await tenant();
      const forged = { id: 'u1', display_name: 'Mallory', updated_at: NOW, 'job_title = 1; drop table users; --': 'x' } as unknown as UserWrite;
      await assert.rejects(synced.upsert(t, [forged]));
      assert.equal(await row(t, 'u1'), undefined);
    });
  });
}
