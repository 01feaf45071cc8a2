import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { repositoriesOf } from '../../src/store/repositories.ts';
import { SyncedGroupRepository, type MembershipWrite } from '../../src/store/synced-groups.ts';
import { reconcileGroupRoles } from '../../src/tenants/group-roles.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const NOW = 1_700_000_000_000;

for (const engine of ENGINES) {
  describe(`group roles store on ${engine}`, () => {
    let test: TestStore;
    before(async () => {
      test = await openTestStore(engine);
    });
    after(async () => {
      await test.drop();
    });

    async function group(tenantId: string, id: string, members: Record<string, 'user' | 'group'>, extra: Record<string, unknown> = {}): Promise<void> {
      const synced = new SyncedGroupRepository(test.store.db, engine);
      await synced.upsert(tenantId, [{ id, display_name: id, kind: 'security', security_enabled: 1, updated_at: NOW, ...extra }]);
      const rows: MembershipWrite[] = Object.entries(members).map(([member_id, member_type]) => ({ group_id: id, member_id, member_type, seen_run_id: null }));
      await synced.addMembers(tenantId, rows);
    }

    it('mapped roles: nested members count at any depth, admin wins over member, a cycle ends the walk, a deleted group grants nothing, and the recomputation drops roles no group gives any more', async () => {
      const repos = repositoriesOf(test.store);
      const tenantId = randomUUID();
      const tenant = await repos.tenants.activate({ id: tenantId, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: 'signer', signupContext: null }, NOW);
      for (const id of ['signer', 'deep', 'both', 'gone', 'stale', 'plain']) await repos.users.recordSignIn({ tenantId, objectId: id, displayName: id, username: null, email: null }, NOW);
      await group(tenantId, 'admins', { mid: 'group' });
      await group(tenantId, 'mid', { low: 'group', both: 'user' });
      // `low` contains `admins` again: a cycle.
      await group(tenantId, 'low', { deep: 'user', admins: 'group' });
      await group(tenantId, 'staff', { both: 'user', plain: 'user' });
      await group(tenantId, 'removed', { gone: 'user' }, { deleted_at: NOW });
      await repos.users.setRole(tenantId, 'stale', 'member', NOW);
      await test.store.db.updateTable('users').set({ mapped_role: 'admin' }).where('tenant_id', '=', tenantId).where('id', '=', 'stale').execute();
      for (const [groupId, grants] of [['admins', 'admin'], ['staff', 'member'], ['removed', 'admin']] as const) await repos.groupRoles.add(tenantId, groupId, grants, 'test', NOW);

      assert.deepEqual([...(await repos.groupRoles.mappedRoles(tenantId))].sort(), [['both', 'admin'], ['deep', 'admin'], ['plain', 'member']]);
      await reconcileGroupRoles(repos, tenant, NOW);
      const roles = Object.fromEntries((await test.store.db.selectFrom('users').select(['id', 'mapped_role']).where('tenant_id', '=', tenantId).execute()).map((row) => [row.id, row.mapped_role]));
      assert.deepEqual(roles, { signer: null, deep: 'admin', both: 'admin', gone: null, stale: null, plain: 'member' });
      assert.deepEqual((await repos.users.admins(tenantId)).map((user) => user.id).sort(), ['both', 'deep']);
      assert.deepEqual([...(await repos.groupRoles.grantsOf(tenantId, 'deep'))], ['admin']);
      assert.deepEqual([...(await repos.groupRoles.grantsOf(tenantId, 'gone'))], [], 'a deleted group passes nothing on');
    });
  });
}
