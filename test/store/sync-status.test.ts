import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { repositoriesOf } from '../../src/store/repositories.ts';
import { newSyncState, SyncStatusRepository } from '../../src/store/sync-status.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const NOW = 1_700_000_000_000;

for (const engine of ENGINES) {
  describe(`a tenant's sync status on ${engine}`, () => {
    let test: TestStore;
    before(async () => {
      test = await openTestStore(engine);
    });
    after(async () => {
      await test.drop();
    });

    async function tenantWithUsers(count: number): Promise<string> {
      const repos = repositoriesOf(test.store);
      const tenantId = randomUUID();
      await repos.tenants.activate({ id: tenantId, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: null, signupContext: null }, NOW);
      for (let i = 0; i < count; i++) await repos.users.recordSignIn({ tenantId, objectId: `u${i}`, displayName: null, username: null, email: null }, NOW);
      return tenantId;
    }

    async function run(tenantId: string, status: 'running' | 'succeeded' | 'failed' | 'held'): Promise<string> {
      const id = randomUUID();
      await test.store.db.insertInto('sync_runs').values({ id, tenant_id: tenantId, kind: 'full', status, pages: 3, listed: 250, created: 7, updated: 2, deleted: 1, error: status === 'failed' ? 'boom' : null, started_at: NOW - 5000, finished_at: status === 'running' ? null : NOW }).execute();
      return id;
    }

    it('before any sync: healthy, nothing under way, the user count of the tenant', async () => {
      const tenantId = await tenantWithUsers(3);
      assert.deepEqual(await new SyncStatusRepository(test.store.db).status(tenantId), { health: 'ok', lastSuccessAt: null, lastError: null, current: null, requestedAt: null, users: 3 });
    });

    it('shows the run under way or held, never a finished one, with the state beside it', async () => {
      const tenantId = await tenantWithUsers(2);
      const status = new SyncStatusRepository(test.store.db);
      const running = await run(tenantId, 'running');
      await test.store.db.insertInto('sync_state').values({ ...newSyncState(tenantId, NOW), run_id: running, health: 'failing', last_success_at: NOW - 60_000, last_error: 'throttled', requested_at: NOW - 1000 }).execute();
      assert.deepEqual(await status.status(tenantId), {
        health: 'failing',
        lastSuccessAt: NOW - 60_000,
        lastError: 'throttled',
        current: { id: running, kind: 'full', status: 'running', pages: 3, listed: 250, created: 7, updated: 2, deleted: 1, error: null, startedAt: NOW - 5000, finishedAt: null },
        requestedAt: NOW - 1000,
        users: 2,
      });
      const held = await run(tenantId, 'held');
      await test.store.db.updateTable('sync_state').set({ run_id: held }).where('tenant_id', '=', tenantId).execute();
      assert.equal((await status.status(tenantId)).current?.status, 'held');
      for (const finished of ['succeeded', 'failed'] as const) {
        const id = await run(tenantId, finished);
        await test.store.db.updateTable('sync_state').set({ run_id: id }).where('tenant_id', '=', tenantId).execute();
        assert.equal((await status.status(tenantId)).current, null, finished);
      }
      await test.store.db.updateTable('sync_state').set({ run_id: 'no-such-run' }).where('tenant_id', '=', tenantId).execute();
      assert.equal((await status.status(tenantId)).current, null, 'a run id that finds no run');
    });

    it("keeps one tenant's state to itself; a tenant without a row has no state", async () => {
      const [a, b] = [await tenantWithUsers(1), await tenantWithUsers(4)];
      const status = new SyncStatusRepository(test.store.db);
      await test.store.db.insertInto('sync_state').values({ ...newSyncState(a, NOW), health: 'disconnected', last_success_at: NOW - 7 }).execute();
      assert.equal((await status.status(a)).health, 'disconnected');
      assert.equal(await status.lastSuccessAt(a), NOW - 7);
      assert.equal(await status.lastSuccessAt(b), null, 'never synced');
      assert.deepEqual(await status.status(b), { health: 'ok', lastSuccessAt: null, lastError: null, current: null, requestedAt: null, users: 4 });
      assert.deepEqual(await status.status(randomUUID()), { health: 'ok', lastSuccessAt: null, lastError: null, current: null, requestedAt: null, users: 0 });
      assert.deepEqual(await status.status("' or 1=1 --"), { health: 'ok', lastSuccessAt: null, lastError: null, current: null, requestedAt: null, users: 0 });
    });
  });
}
