import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { DeltaItem } from '../../src/directory/object-kind.ts';
import { PageSink, type Round } from '../../src/directory/sink.ts';
import { TenantLock } from '../../src/directory/tenant-lock.ts';
import { USERS } from '../../src/directory/user-kind.ts';
import { WrittenIds } from '../../src/directory/written-ids.ts';
import { repositoriesOf, type Repositories } from '../../src/store/repositories.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

describe('the ids a round has written', () => {
  it('holds every id added, and few others, at a million ids', () => {
    const written = new WrittenIds();
    const ids = Array.from({ length: 1_000_000 }, () => randomUUID());
    for (const id of ids) written.add(id);
    assert.ok(ids.every((id) => written.mightHold(id)));
    const others = Array.from({ length: 100_000 }, () => randomUUID());
    const falsePositives = others.filter((id) => written.mightHold(id)).length;
    assert.ok(falsePositives < 500, `${falsePositives} of 100,000 ids never added were reported held`);
  });

  it('holds nothing when empty, and tells ids apart that differ in one character or by case', () => {
    const written = new WrittenIds();
    assert.equal(written.mightHold('a'), false);
    assert.equal(written.mightHold(''), false);
    written.add('0b3f2c1e-0000-4000-8000-000000000001');
    assert.equal(written.mightHold('0b3f2c1e-0000-4000-8000-000000000001'), true);
    assert.equal(written.mightHold('0b3f2c1e-0000-4000-8000-000000000002'), false);
    assert.equal(written.mightHold('0B3F2C1E-0000-4000-8000-000000000001'), false);
  });
});

for (const engine of ENGINES) {
  describe(`a first listing into an empty tenant (${engine})`, () => {
    let test: TestStore;
    before(async () => {
      test = await openTestStore(engine);
    });
    after(async () => {
      await test.drop();
    });

    /** A new tenant (holding what `stock` writes) with a full round begun under its lock, and the sink its pages go through. */
    async function fullRound(stock?: (repos: Repositories, tenantId: string, now: number) => Promise<unknown>) {
      const now = Date.now();
      const tenantId = randomUUID();
      await new TenantRepository(test.store.db).activate({ id: tenantId, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: null, signupContext: null }, now);
      const repos = repositoriesOf(test.store);
      await stock?.(repos, tenantId, now);
      await repos.syncState.ensure(tenantId, now);
      const lock = new TenantLock(repos.syncState, () => now);
      await lock.acquire(tenantId);
      const runId = randomUUID();
      await repos.syncRuns.start({ id: runId, tenantId, kind: 'full', now });
      await repos.syncState.beginRun(tenantId, runId, 'full', now);
      const round: Round = { tenantId, runId, kind: 'full', counters: { pages: 0, listed: 0, created: 0, updated: 0, deleted: 0 }, pendingRemovals: 0 };
      const sink = new PageSink({ store: test.store, kind: USERS, lock, massDeletionShare: 1, now: () => now });
      return { tenantId, repos, round, sink };
    }

    const user = (id: string, jobTitle: string): DeltaItem => ({ id, displayName: `User ${id}`, jobTitle, accountEnabled: true, businessPhones: [] });

    it('looks up only what its earlier pages wrote: a user listed on two pages is created once, with one event, and ends as the last page says', async () => {
      const { tenantId, repos, round, sink } = await fullRound();

      assert.equal(await sink.write(round, { value: [user('u1', 'Engineer'), user('u2', 'Engineer')], '@odata.nextLink': 'https://graph.example/next' }), 'continue');
      assert.equal(round.startedEmpty, true);
      assert.equal(round.written?.mightHold('u2'), true);
      assert.equal(await sink.write(round, { value: [user('u2', 'Manager'), user('u3', 'Engineer')], '@odata.deltaLink': 'https://graph.example/delta' }), 'succeeded');

      assert.equal(round.counters.created, 3);
      assert.equal(round.counters.updated, 1);
      assert.equal(round.counters.listed, 4);
      const stored = await repos.syncedUsers.stored(tenantId, ['u1', 'u2', 'u3']);
      assert.equal(stored.get('u2')?.job_title, 'Manager');
      const events = await repos.events.list({ after: 0, tenantId, limit: 100 });
      assert.deepEqual(
        events.map((event) => `${event.type} ${(JSON.parse(event.data) as { id: string }).id}`),
        ['user.created u1', 'user.created u2', 'user.updated u2', 'user.created u3'],
      );
      assert.deepEqual(JSON.parse(events[2]!.previous_attributes!), { job_title: 'Engineer' });
    });

    it('a tenant that holds users reads every listed id again', async () => {
      const { round, sink } = await fullRound((repos, tenantId, now) => repos.syncedUsers.upsert(tenantId, [{ id: 'u1', display_name: 'User u1', job_title: 'Engineer', updated_at: now }]));
      assert.equal(await sink.write(round, { value: [user('u1', 'Engineer')], '@odata.deltaLink': 'https://graph.example/delta' }), 'succeeded');
      assert.equal(round.startedEmpty, false);
      assert.equal(round.written, undefined);
      assert.equal(round.counters.created, 0);
    });
  });
}
