import assert from 'node:assert/strict';
import { before, beforeEach, describe, it } from 'node:test';
import { GraphReader } from '../../src/directory/graph-reader.ts';
import { GROUPS } from '../../src/directory/group-kind.ts';
import type { DeltaItem } from '../../src/directory/object-kind.ts';
import { DirectorySync } from '../../src/directory/sync.ts';
import type { Tenant } from '../../src/emulator/model.ts';
import { toEnvelope, type EventEnvelope } from '../../src/events/types.ts';
import { repositoriesOf, transaction } from '../../src/store/repositories.ts';
import type { TestEmulator } from '../helpers/emulator.ts';
import type { EmulatorConnection } from '../helpers/entra.ts';
import { expectedGroupEvents, groupEventKeys, lastEventSequence, snapshotGroups, type GroupSnapshot } from '../helpers/group-events.ts';
import { addSignedUpTenant, useSyncTestbed } from '../helpers/mirror.ts';
import { ENGINES, type TestStore } from '../helpers/stores.ts';

const USERS = 300;
const EMPTY: GroupSnapshot = { groups: new Map(), memberships: new Set() };

for (const engine of ENGINES) {
  describe(`group events in the outbox (${engine})`, () => {
    let emulator: TestEmulator;
    let connection: EmulatorConnection;
    let db: TestStore;
    let tenant: Tenant;
    let sync: DirectorySync;

    const bed = useSyncTestbed(engine);
    before(() => ({ emulator, connection, db } = bed));

    function makeSync(): DirectorySync {
      // Small pages: the large groups arrive in slices over several pages.
      return new DirectorySync({ store: db.store, entra: connection.app(), reader: new GraphReader({ http: connection.http, maxAttempts: 4 }), graphBaseUrl: connection.graphBaseUrl, pageSize: 40, consentGraceMs: 0 });
    }

    const user = (i: number) => tenant.users[i]!.props.id;
    const group = (name: string) => [...tenant.groups, ...tenant.deletedGroups.values()].find((g) => g.props.displayName === name)!.props.id;

    async function envelopes(after: number): Promise<EventEnvelope[]> {
      return (await repositoriesOf(db.store).events.list({ after, tenantId: tenant.id, limit: 100_000 })).map(toEnvelope);
    }

    /** Runs a sync and returns the group events it wrote, sorted, beside those the directory's change from `before` is owed. */
    async function syncAndCompare(before: GroupSnapshot, options: { full?: boolean } = {}): Promise<{ mark: number; actual: string[] }> {
      const mark = await lastEventSequence(db.store);
      const outcome = await sync.run(tenant.id, options);
      assert.equal(outcome.groups?.status, 'succeeded', outcome.groups?.error ?? '');
      const actual = await groupEventKeys(db.store, tenant.id, mark);
      assert.deepEqual([...actual].sort(), expectedGroupEvents(before, snapshotGroups(tenant)));
      return { mark, actual };
    }

    beforeEach(async () => {
      tenant = await addSignedUpTenant(emulator, db.store, USERS, (i, domain) => ({ userPrincipalName: `u${i}@${domain}`, displayName: `User ${i}` }));
      const d = emulator.ctx.directory;
      const ids = tenant.users.map((u) => u.props.id);
      const low = d.addGroup(tenant, { displayName: 'Low', securityEnabled: true, members: ids.slice(0, 50) });
      d.addGroup(tenant, { displayName: 'Mid', securityEnabled: true, members: [low.props.id, ...ids.slice(40, 120)] });
      d.addGroup(tenant, { displayName: 'Everyone', groupTypes: ['Unified'], mailEnabled: true, securityEnabled: false, mailNickname: 'everyone', members: ids.slice(0, 250) });
      d.addGroup(tenant, { displayName: 'Team', groupTypes: ['Unified'], mailEnabled: true, securityEnabled: false, mailNickname: 'team', members: ids.slice(100, 110) });
      d.addGroup(tenant, { displayName: 'Newsletter', mailEnabled: true, securityEnabled: false, mailNickname: 'news', members: ids.slice(200, 230) });
      sync = makeSync();
    });

    it('rule 22: a full sync emits one group.created per group and one group.user_added per direct user membership, the group first; a full resync and an empty delta round emit nothing', async () => {
      const { mark, actual } = await syncAndCompare(EMPTY);
      assert.equal(actual.filter((e) => e.startsWith('group.created')).length, 5);
      assert.equal(actual.filter((e) => e.startsWith('group.user_added')).length, 50 + 80 + 250 + 10 + 30, 'the nested group Low in Mid is no user_added');
      for (const name of ['Low', 'Everyone']) {
        const first = actual.findIndex((e) => e.includes(group(name)));
        assert.equal(actual[first], `group.created ${group(name)}`, `${name} is created before its members are added`);
      }
      const everyone = (await envelopes(mark)).find((e) => e.type === 'group.created' && (e.data as { id: string }).id === group('Everyone'))!;
      assert.deepEqual(everyone.data, {
        id: group('Everyone'), display_name: 'Everyone', description: null, group_types: ['Unified'], security_enabled: false, mail_enabled: true,
        mail: (everyone.data as { mail: string }).mail, membership_rule: null, kind: 'microsoft365', dynamic: false, state: 'active', deleted_at: null,
      });
      assert.equal(everyone.previous_attributes, undefined);
      const added = (await envelopes(mark)).find((e) => e.type === 'group.user_added')!;
      assert.deepEqual(Object.keys(added.data as object).sort(), ['group_id', 'user_id']);

      const again = await lastEventSequence(db.store);
      assert.equal((await sync.run(tenant.id, { full: true })).groups?.status, 'succeeded');
      assert.equal((await sync.run(tenant.id)).groups?.status, 'succeeded');
      assert.deepEqual(await groupEventKeys(db.store, tenant.id, again), [], 'replayed pages change nothing and emit nothing');
    });

    it('rules 22, 23 and 26: a delta round emits exactly what the directory changed: created, updated (changed keys only), soft_deleted, restored, deleted with its memberships, user_added, user_removed', async () => {
      const d = emulator.ctx.directory;
      const [low, mid, everyone, team, newsletter] = ['Low', 'Mid', 'Everyone', 'Team', 'Newsletter'].map(group) as [string, string, string, string, string];
      await sync.run(tenant.id);
      const beforeSoftDelete = snapshotGroups(tenant);
      d.deleteGroup(tenant, team);
      assert.deepEqual((await syncAndCompare(beforeSoftDelete)).actual, [`group.soft_deleted ${team}`]);
      const before = snapshotGroups(tenant);
      d.addGroup(tenant, { displayName: 'New', securityEnabled: true, members: [user(1), user(2), low] });
      d.editGroup(tenant, mid, { description: 'Middle management', displayName: 'Middle' });
      d.deleteGroup(tenant, everyone);
      d.restoreGroup(tenant, team);
      d.purgeGroup(tenant, newsletter);
      d.addGroupMember(tenant, low, user(299));
      d.removeGroupMember(tenant, low, user(3));
      d.removeGroupMember(tenant, mid, low);
      // Removed and added again within the round: Graph reports the membership as it is, so no event (the final state is unchanged).
      d.removeGroupMember(tenant, low, user(0));
      d.addGroupMember(tenant, low, user(0));
      const { mark, actual } = await syncAndCompare(before);
      assert.equal(actual.filter((e) => e.startsWith('group.user_removed')).length, 30 + 1, "Newsletter's members and Low's user 3");
      assert.ok(!actual.some((e) => e.endsWith(`${low} ${user(0)}`)), 'a removal and re-add in one round emit nothing');
      assert.ok(!actual.some((e) => e.startsWith('group.user_') && e.includes(` ${mid} `)), 'a nested group leaving is no user event');
      assert.ok(!actual.some((e) => e.startsWith('group.user_removed') && e.includes(everyone)), 'a soft-deleted group keeps its members');
      assert.ok(actual.indexOf(`group.deleted ${newsletter}`) > actual.findLastIndex((e) => e.startsWith(`group.user_removed ${newsletter}`)), 'members go before their group');

      const events = await envelopes(mark);
      const of = (type: string, id: string) => events.find((e) => e.type === type && (e.data as { id: string }).id === id)!;
      assert.deepEqual(of('group.updated', mid).previous_attributes, { display_name: 'Mid', description: null });
      assert.equal((of('group.updated', mid).data as { display_name: string }).display_name, 'Middle');
      assert.equal((of('group.soft_deleted', everyone).data as { state: string }).state, 'soft_deleted');
      assert.equal((of('group.restored', team).data as { state: string }).state, 'active');
      assert.equal((of('group.deleted', newsletter).data as { display_name: string }).display_name, 'Newsletter', 'a deleted group is shown as it was');
      assert.equal(of('group.created', group('New')).previous_attributes, undefined);
    });

    it('rule 23: a member removed on one page of a round and added again on a later page gives group.user_removed then group.user_added; the later page replayed gives nothing', async () => {
      await sync.run(tenant.id);
      const [low, member] = [group('Low'), user(0)];
      const entry = { '@odata.type': '#microsoft.graph.user', id: member };
      const removed: DeltaItem[] = [{ id: low, 'members@delta': [{ ...entry, '@removed': { reason: 'deleted' } }] }];
      const added: DeltaItem[] = [{ id: low, 'members@delta': [entry] }];
      /** One page through the groups kind as the sink writes it: its events, in its transaction. */
      const writePage = (items: DeltaItem[]) =>
        transaction(db.store, async (repos) => {
          const rows = GROUPS.rows(repos);
          const stored = await rows.stored(tenant.id, items);
          const changes = GROUPS.fold(items, stored, { runId: 'round', kind: 'delta', now: Date.now() });
          return [...GROUPS.events(tenant.id, changes, stored), ...(await rows.apply(tenant.id, changes))].map((e) => `${e.type} ${JSON.stringify(e.data)}`);
        });
      const data = JSON.stringify({ group_id: low, user_id: member });
      assert.deepEqual(await writePage(removed), [`group.user_removed ${data}`]);
      assert.deepEqual(await writePage(added), [`group.user_added ${data}`]);
      assert.deepEqual(await writePage(added), [], 'the membership is there: nothing inserted, nothing emitted');
      assert.equal((await db.store.db.selectFrom('group_members').select('member_id').where('tenant_id', '=', tenant.id).where('group_id', '=', low).where('member_id', '=', member).execute()).length, 1);
    });

    it('rule 22: a full round begun with no membership stored looks up only removals, yet a page replayed in it emits nothing and a removal still counts', async () => {
      const [low, member] = [group('Low'), user(0)];
      const entry = { '@odata.type': '#microsoft.graph.user', id: member };
      const listed: DeltaItem[] = [{ id: low, displayName: 'Low', securityEnabled: true, mailEnabled: false, groupTypes: [], 'members@delta': [entry] }];
      const removed: DeltaItem[] = [{ id: low, 'members@delta': [{ ...entry, '@removed': { reason: 'deleted' } }] }];
      const writePage = (items: DeltaItem[]) =>
        transaction(db.store, async (repos) => {
          const rows = GROUPS.rows(repos);
          const stored = await rows.stored(tenant.id, items, true);
          const changes = GROUPS.fold(items, stored, { runId: 'round', kind: 'full', now: Date.now() });
          return (await rows.apply(tenant.id, changes)).map((e) => `${e.type} ${JSON.stringify(e.data)}`);
        });
      assert.equal(await transaction(db.store, (repos) => GROUPS.rows(repos).holdsNothing!(tenant.id)), true);
      const data = JSON.stringify({ group_id: low, user_id: member });
      assert.deepEqual(await writePage(listed), [`group.user_added ${data}`]);
      assert.equal(await transaction(db.store, (repos) => GROUPS.rows(repos).holdsNothing!(tenant.id)), false);
      assert.deepEqual(await writePage(listed), [], 'the membership an earlier page wrote is found by its insert: no second event');
      assert.deepEqual(await writePage(removed), [`group.user_removed ${data}`]);
      assert.deepEqual(await writePage(listed), [`group.user_added ${data}`]);
      assert.equal((await db.store.db.selectFrom('group_members').select('seen_run_id').where('tenant_id', '=', tenant.id).where('group_id', '=', low).execute()).map((r) => r.seen_run_id).join(), 'round');
      // Plain inserts meet the pair already there: the page's inserts are made again, skipping it, and the new pair keeps its one event.
      const second = user(1);
      const mixed: DeltaItem[] = [{ id: low, 'members@delta': [{ '@odata.type': '#microsoft.graph.user', id: second }, entry] }];
      assert.deepEqual(await writePage(mixed), [`group.user_added ${JSON.stringify({ group_id: low, user_id: second })}`]);
      assert.deepEqual((await db.store.db.selectFrom('group_members').select('member_id').where('tenant_id', '=', tenant.id).where('group_id', '=', low).execute()).map((r) => r.member_id).sort(), [member, second].sort());
    });

    it('rule 22: a replayed delta round (the cursor put back, as if its commit had been lost) emits nothing', async () => {
      const d = emulator.ctx.directory;
      await sync.run(tenant.id);
      const cursor = await db.store.db.selectFrom('group_sync_state').select('delta_link').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      const before = snapshotGroups(tenant);
      d.addGroup(tenant, { displayName: 'Late', securityEnabled: true, members: [user(5)] });
      d.removeGroupMember(tenant, group('Everyone'), user(10));
      d.addGroupMember(tenant, group('Newsletter'), user(11));
      d.editGroup(tenant, group('Low'), { description: 'Juniors' });
      d.purgeGroup(tenant, group('Mid'));
      const { actual } = await syncAndCompare(before);
      assert.ok(actual.length >= 5);
      await db.store.db.updateTable('group_sync_state').set({ delta_link: cursor.delta_link }).where('tenant_id', '=', tenant.id).execute();
      const mark = await lastEventSequence(db.store);
      assert.equal((await sync.run(tenant.id)).groups?.status, 'succeeded');
      assert.deepEqual(await groupEventKeys(db.store, tenant.id, mark), []);
    });

    it('rules 23 and 26: a full resync emits group.user_removed for memberships it did not see, once, and nothing for a soft-deleted group it keeps', async () => {
      const d = emulator.ctx.directory;
      await sync.run(tenant.id);
      d.deleteGroup(tenant, group('Team'));
      await sync.run(tenant.id);
      const before = snapshotGroups(tenant);
      d.removeGroupMember(tenant, group('Low'), user(5));
      d.removeGroupMember(tenant, group('Everyone'), user(6));
      const { actual } = await syncAndCompare(before, { full: true });
      assert.deepEqual([...actual].sort(), [`group.user_removed ${group('Everyone')} ${user(6)}`, `group.user_removed ${group('Low')} ${user(5)}`].sort());
      const mark = await lastEventSequence(db.store);
      assert.equal((await sync.run(tenant.id, { full: true })).groups?.status, 'succeeded');
      assert.deepEqual(await groupEventKeys(db.store, tenant.id, mark), []);
    });

    it('a held deletion of groups emits sync.held only; confirming it emits group.user_removed for each member, then group.deleted, and sync.recovered for the groups', async () => {
      const d = emulator.ctx.directory;
      await sync.run(tenant.id);
      const before = snapshotGroups(tenant);
      const everyone = group('Everyone');
      d.purgeGroup(tenant, everyone);
      const mark = await lastEventSequence(db.store);
      assert.equal((await sync.run(tenant.id, { full: true })).groups?.status, 'held');
      const held = await envelopes(mark);
      assert.deepEqual(held.map((e) => e.type), ['sync.held']);
      assert.equal((held[0]!.data as { objects: string }).objects, 'groups');
      const decided = await lastEventSequence(db.store);
      assert.equal(await sync.confirmHeldDeletion(tenant.id), 251);
      const actual = await groupEventKeys(db.store, tenant.id, decided);
      assert.deepEqual([...actual].sort(), expectedGroupEvents(before, snapshotGroups(tenant)));
      assert.equal(actual.length, 251);
      assert.equal(actual.at(-1), `group.deleted ${everyone}`);
      assert.equal((await envelopes(decided)).at(-1)?.type, 'sync.recovered');
    });
  });
}
