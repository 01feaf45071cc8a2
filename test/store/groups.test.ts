import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { GroupRepository } from '../../src/store/groups.ts';
import { SyncedGroupRepository, type MembershipWrite } from '../../src/store/synced-groups.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const NOW = 1_700_000_000_000;

for (const engine of ENGINES) {
  describe(`groups store on ${engine}`, () => {
    let test: TestStore;
    let groups: GroupRepository;
    let synced: SyncedGroupRepository;
    before(async () => {
      test = await openTestStore(engine);
      groups = new GroupRepository(test.store.db, engine);
      synced = new SyncedGroupRepository(test.store.db, engine);
    });
    after(async () => {
      await test.drop();
    });

    async function tenant(): Promise<string> {
      const id = randomUUID();
      await new TenantRepository(test.store.db).activate({ id, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: 'o1', signupContext: null }, NOW);
      return id;
    }

    async function group(tenantId: string, id: string, name: string, members: Record<string, 'user' | 'group'>, extra: Record<string, unknown> = {}): Promise<void> {
      await synced.upsert(tenantId, [{ id, display_name: name, kind: 'security', security_enabled: 1, updated_at: NOW, ...extra }]);
      const rows: MembershipWrite[] = Object.entries(members).map(([member_id, member_type]) => ({ group_id: id, member_id, member_type, seen_run_id: null }));
      await synced.addMembers(tenantId, rows);
    }

    it('rule 24: nesting three deep answers transitively and directly; a cycle does not loop', async () => {
      const t = await tenant();
      await group(t, 'top', 'Top', { 'mid': 'group', 'u-top': 'user' });
      await group(t, 'mid', 'Mid', { 'low': 'group', 'u-mid': 'user' });
      await group(t, 'low', 'Low', { 'u-low': 'user', 'u-mid': 'user' });
      assert.deepEqual(await groups.transitiveMemberIds(t, 'top'), ['low', 'mid', 'u-low', 'u-mid', 'u-top']);
      assert.equal(await groups.isMemberTransitively(t, 'top', 'u-low'), true);
      assert.equal(await groups.isDirectMember(t, 'top', 'u-low'), false);
      assert.equal(await groups.isMemberTransitively(t, 'low', 'u-top'), false);
      assert.equal(await groups.memberCount(t, 'top', { transitive: true, type: 'user' }), 3, 'u-mid reached twice is counted once');
      assert.deepEqual((await groups.memberOf(t, 'u-low')).map((g) => [g.id, g.direct]), [['low', true], ['mid', false], ['top', false]]);

      // Entra should never have one, but a mirror must not loop on it.
      await synced.addMembers(t, [{ group_id: 'low', member_id: 'top', member_type: 'group', seen_run_id: null }]);
      assert.deepEqual(await groups.transitiveMemberIds(t, 'mid'), ['low', 'mid', 'top', 'u-low', 'u-mid', 'u-top']);
      assert.equal(await groups.isMemberTransitively(t, 'low', 'u-top'), true);
      assert.deepEqual((await groups.memberOf(t, 'u-top')).map((g) => g.id).sort(), ['low', 'mid', 'top']);
    });

    it('rule 27: a membership naming a user Roster has not seen is kept and listed as not yet synced', async () => {
      const t = await tenant();
      await group(t, 'g', 'G', { 'ghost': 'user' });
      const page = await groups.members(t, 'g', { transitive: false, limit: 10 });
      assert.deepEqual(page.items.map((m) => [m.id, m.known]), [['ghost', false]]);
    });

    it('groups page: search, kind filter, member counts and keyset paging without gaps or repeats', async () => {
      const t = await tenant();
      for (let i = 0; i < 25; i++) await group(t, `g${String(i).padStart(2, '0')}`, `Team ${i % 5}`, Object.fromEntries(Array.from({ length: i }, (_, j) => [`u${j}`, 'user' as const])));
      await group(t, 'm365', 'Marketing 100%_', {}, { kind: 'microsoft365', group_types: '["Unified"]' });
      const seen: string[] = [];
      let after: string | undefined;
      do {
        const page = await groups.list(t, {}, { after, limit: 7 });
        seen.push(...page.items.map((g) => g.id));
        after = page.next ?? undefined;
      } while (after);
      assert.equal(seen.length, 26);
      assert.equal(new Set(seen).size, 26);
      assert.equal(seen[0], 'm365', 'by name: Marketing before Team');
      assert.deepEqual((await groups.list(t, { kind: 'microsoft365' }, { limit: 10 })).items.map((g) => g.id), ['m365']);
      assert.equal(await groups.count(t, { search: '100%' }), 1, 'a % in a search means the character');
      assert.equal(await groups.count(t, { search: '%' }), 1);
      const g7 = await groups.get(t, 'g07');
      assert.equal(g7?.memberCount, 7);
      assert.equal((await groups.list(t, {}, { after: 'not-a-key', limit: 1 })).items.length, 1, 'an edited key starts over instead of failing');
    });

    it('rule 23: a full listing removes only the memberships and groups it did not see, with what hangs on a removed group', async () => {
      const t = await tenant();
      await group(t, 'a', 'A', { u1: 'user', u2: 'user', b: 'group' });
      await group(t, 'b', 'B', { u3: 'user' });
      // The listing saw A with u1 only, and not B.
      await synced.touch(t, ['a'], { seen_run_id: 'run-9' });
      await synced.addMembers(t, [{ group_id: 'a', member_id: 'u1', member_type: 'user', seen_run_id: 'run-9' }]);
      assert.equal(await synced.countPending(t, 'run-9', 'full'), 4, 'B, u2 in A, B in A, u3 in B');
      assert.equal(await synced.total(t), 6);
      assert.equal((await synced.removePending(t, 'run-9', 'full')).removed, 4);
      assert.deepEqual(await groups.transitiveMemberIds(t, 'a'), ['u1']);
      assert.equal(await groups.get(t, 'b'), undefined);
    });

    it('rule 26: a soft-deleted group the full listing omits is kept with its memberships', async () => {
      const t = await tenant();
      await group(t, 'm', 'M', { u1: 'user' }, { kind: 'microsoft365' });
      assert.deepEqual((await synced.keepSoftDeleted(t, 'run-5', ['m'], NOW)).map((g) => g.id), ['m']);
      assert.equal(await synced.countPending(t, 'run-5', 'full'), 0);
      assert.equal((await synced.removePending(t, 'run-5', 'full')).removed, 0);
      assert.notEqual((await groups.get(t, 'm'))?.deletedAt, null);
      assert.deepEqual(await groups.transitiveMemberIds(t, 'm'), ['u1']);
    });
  });
}
