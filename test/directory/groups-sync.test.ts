import assert from 'node:assert/strict';
import { before, beforeEach, describe, it } from 'node:test';
import { GraphReader } from '../../src/directory/graph-reader.ts';
import { DirectorySync } from '../../src/directory/sync.ts';
import type { Tenant } from '../../src/emulator/model.ts';
import { GroupRepository } from '../../src/store/groups.ts';
import type { TestEmulator } from '../helpers/emulator.ts';
import type { EmulatorConnection } from '../helpers/entra.ts';
import { demoApp } from '../helpers/fixtures.ts';
import { assertGroupsMirror } from '../helpers/group-mirror.ts';
import { addSignedUpTenant, assertMirrors, useSyncTestbed } from '../helpers/mirror.ts';
import { ENGINES, type TestStore } from '../helpers/stores.ts';

const USERS = 600;

for (const engine of ENGINES) {
  describe(`groups sync rules 22-27 (${engine})`, () => {
    let emulator: TestEmulator;
    let connection: EmulatorConnection;
    let db: TestStore;
    let tenant: Tenant;
    let groups: GroupRepository;

    function makeSync(pageSize = 999): DirectorySync {
      return new DirectorySync({
        store: db.store,
        entra: connection.app(),
        reader: new GraphReader({ http: connection.http, maxAttempts: 4 }),
        graphBaseUrl: connection.graphBaseUrl,
        pageSize,
        consentGraceMs: 0,
      });
    }

    const bed = useSyncTestbed(engine);
    before(() => {
      ({ emulator, connection, db } = bed);
      groups = new GroupRepository(db.store.db, engine);
    });

    /** A tenant with nesting three deep, every kind of group, and a `<script>` name. */
    beforeEach(async () => {
      tenant = await addSignedUpTenant(emulator, db.store, USERS, (i, domain) => ({ userPrincipalName: `user${i}@${domain}`, displayName: `User ${i}` }));
      const d = emulator.ctx.directory;
      const ids = tenant.users.map((u) => u.props.id);
      const low = d.addGroup(tenant, { displayName: 'Low', securityEnabled: true, members: ids.slice(0, 50) });
      const mid = d.addGroup(tenant, { displayName: 'Mid', securityEnabled: true, members: [low.props.id, ...ids.slice(40, 120)] });
      d.addGroup(tenant, { displayName: 'Top', securityEnabled: true, members: [mid.props.id, ...ids.slice(500, 520)] });
      d.addGroup(tenant, { displayName: 'Everyone', groupTypes: ['Unified'], mailEnabled: true, securityEnabled: false, mailNickname: 'everyone', members: ids.slice(0, 450) });
      d.addGroup(tenant, { displayName: 'Newsletter', mailEnabled: true, securityEnabled: false, mailNickname: 'news', members: ids.slice(200, 230) });
      d.addGroup(tenant, { displayName: '<script>alert(1)</script>', description: '"><img src=x onerror=alert(2)>', securityEnabled: true, members: ids.slice(0, 3) });
    });

    const byName = (name: string) => tenant.groups.find((g) => g.props.displayName === name)!;

    it('rules 22 and 24: a full sync mirrors every group and direct membership; transitive answers equal the directory at three levels', async () => {
      const outcome = await makeSync(50).run(tenant.id);
      assert.equal(outcome.status, 'succeeded');
      assert.equal(outcome.groups?.status, 'succeeded', outcome.groups?.error ?? '');
      assert.equal(outcome.groups?.kind, 'full');
      assert.ok(outcome.groups!.pages >= 5, 'the 450-member group comes in slices over several pages');
      await assertGroupsMirror(db.store, tenant);
      for (const name of ['Top', 'Mid', 'Low', 'Everyone']) {
        const id = byName(name).props.id;
        const expected = emulator.ctx.directory.transitiveMemberIds(tenant, id).sort();
        const page = await groups.members(tenant.id, id, { transitive: true, type: 'user', limit: 10_000 });
        assert.deepEqual(page.items.map((m) => m.id).sort(), expected, `${name}: transitive users`);
      }
      const top = byName('Top').props.id;
      assert.equal(await groups.isMemberTransitively(tenant.id, top, tenant.users[0]!.props.id), true, 'user 0 is in Top through Mid and Low');
      assert.equal(await groups.isDirectMember(tenant.id, top, tenant.users[0]!.props.id), false);
      assert.equal(await groups.isMemberTransitively(tenant.id, top, tenant.users[300]!.props.id), false);
      const kinds = await db.store.db.selectFrom('groups').select(['display_name', 'kind']).where('tenant_id', '=', tenant.id).execute();
      assert.deepEqual(Object.fromEntries(kinds.map((k) => [k.display_name, k.kind]))['Everyone'], 'microsoft365');
      assert.deepEqual(Object.fromEntries(kinds.map((k) => [k.display_name, k.kind]))['Newsletter'], 'distribution');
      const state = await db.store.db.selectFrom('group_sync_state').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.equal(state.health, 'ok');
      assert.match(state.delta_link!, /groups\/delta\?\$deltatoken=/);
    });

    it('rule 23: membership removal and re-add in one round, a removal among many, and nesting changes stay exact after the delta round', async () => {
      const sync = makeSync(50);
      await sync.run(tenant.id);
      const d = emulator.ctx.directory;
      const [low, mid, top] = [byName('Low'), byName('Mid'), byName('Top')];
      const [u0, u1, u599] = [tenant.users[0]!.props.id, tenant.users[1]!.props.id, tenant.users[599]!.props.id];
      d.removeGroupMember(tenant, low.props.id, u0);
      d.addGroupMember(tenant, low.props.id, u0);
      d.removeGroupMember(tenant, low.props.id, u1);
      d.removeGroupMember(tenant, mid.props.id, low.props.id);
      d.addGroupMember(tenant, top.props.id, low.props.id);
      d.addGroupMember(tenant, low.props.id, u599);
      d.editGroup(tenant, top.props.id, { description: 'Leadership' });
      const outcome = await sync.run(tenant.id);
      assert.equal(outcome.groups?.kind, 'delta');
      assert.equal(outcome.groups?.status, 'succeeded', outcome.groups?.error ?? '');
      await assertGroupsMirror(db.store, tenant);
      assert.equal(await groups.isDirectMember(tenant.id, low.props.id, u0), true, 'removed and added again: still a member');
      assert.equal(await groups.isDirectMember(tenant.id, low.props.id, u1), false);
      assert.equal(await groups.isMemberTransitively(tenant.id, mid.props.id, u599), false, 'Low left Mid');
      assert.equal(await groups.isMemberTransitively(tenant.id, top.props.id, u599), true, 'Low is now directly in Top');
      for (const group of [low, mid, top]) {
        const page = await groups.members(tenant.id, group.props.id, { transitive: true, type: 'user', limit: 10_000 });
        assert.deepEqual(page.items.map((m) => m.id).sort(), d.transitiveMemberIds(tenant, group.props.id).sort(), group.props.displayName);
      }
      const top2 = await groups.get(tenant.id, top.props.id);
      assert.equal(top2?.description, 'Leadership');
      assert.equal(top2?.displayName, 'Top', 'return=minimal: the name was not sent and is not blanked');
    });

    it('rule 22: a replayed delta round changes nothing and duplicates nothing', async () => {
      const sync = makeSync(50);
      await sync.run(tenant.id);
      const before = await db.store.db.selectFrom('group_sync_state').select('delta_link').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      emulator.ctx.directory.removeGroupMember(tenant, byName('Everyone').props.id, tenant.users[10]!.props.id);
      emulator.ctx.directory.addGroup(tenant, { displayName: 'Late', securityEnabled: true, members: [tenant.users[5]!.props.id] });
      const first = await sync.run(tenant.id);
      assert.ok(first.groups!.created + first.groups!.updated >= 2);
      // The same round again, from the same delta link: as if the cursor had not been saved.
      await db.store.db.updateTable('group_sync_state').set({ delta_link: before.delta_link }).where('tenant_id', '=', tenant.id).execute();
      const replayed = await sync.run(tenant.id);
      assert.deepEqual([replayed.groups!.created, replayed.groups!.updated, replayed.groups!.deleted], [0, 0, 0]);
      await assertGroupsMirror(db.store, tenant);
    });

    it('rule 26: a soft-deleted Microsoft 365 group is kept restorable and comes back with its memberships; a purge removes it and what hangs on it', async () => {
      const sync = makeSync();
      await sync.run(tenant.id);
      const d = emulator.ctx.directory;
      const everyone = byName('Everyone').props.id;
      d.deleteGroup(tenant, everyone);
      await sync.run(tenant.id);
      await assertGroupsMirror(db.store, tenant);
      assert.notEqual((await groups.get(tenant.id, everyone))?.deletedAt, null);
      assert.equal((await groups.get(tenant.id, everyone))?.memberCount, 450, 'memberships kept while restorable');
      // A full resync (Graph omits deleted groups from a listing) keeps it as it is.
      await sync.run(tenant.id, { full: true });
      assert.notEqual((await groups.get(tenant.id, everyone))?.deletedAt, null);
      d.restoreGroup(tenant, everyone);
      await sync.run(tenant.id);
      await assertGroupsMirror(db.store, tenant);
      assert.equal((await groups.get(tenant.id, everyone))?.deletedAt, null);
      assert.equal(await groups.isDirectMember(tenant.id, everyone, tenant.users[0]!.props.id), true);
      d.purgeGroup(tenant, byName('Low').props.id);
      await sync.run(tenant.id);
      await assertGroupsMirror(db.store, tenant);
    });

    it('rule 22: an expired group delta link starts a full resync of groups; users keep their own cursor', async () => {
      const sync = makeSync();
      await sync.run(tenant.id);
      const users = await db.store.db.selectFrom('sync_state').select('delta_link').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      emulator.ctx.directory.purgeGroup(tenant, byName('Newsletter').props.id);
      tenant.deltaFloor = tenant.seq + 1;
      const outcome = await sync.run(tenant.id);
      assert.equal(outcome.groups?.kind, 'full');
      assert.equal(outcome.groups?.status, 'succeeded');
      await assertGroupsMirror(db.store, tenant);
      const runs = await db.store.db.selectFrom('group_sync_runs').select(['kind', 'status', 'error']).where('tenant_id', '=', tenant.id).orderBy('started_at').execute();
      assert.ok(runs.some((r) => r.kind === 'delta' && r.status === 'failed' && /expired/.test(r.error ?? '')));
      assert.ok(users.delta_link);
    });

    it('rules 9 and 23: a round that would remove most groups and memberships is held for a decision; users keep syncing; a confirmation applies it', async () => {
      const sync = makeSync();
      await sync.run(tenant.id);
      const d = emulator.ctx.directory;
      for (const name of ['Everyone', 'Top', 'Mid', 'Low']) d.purgeGroup(tenant, byName(name).props.id);
      const held = await sync.run(tenant.id);
      assert.equal(held.status, 'succeeded', 'the users part is not held');
      assert.equal(held.groups?.status, 'held');
      assert.match(held.groups?.error ?? '', /groups and memberships/);
      assert.equal((await db.store.db.selectFrom('group_sync_state').select('health').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).health, 'held');
      assert.ok(await groups.get(tenant.id, byName('Newsletter').props.id), 'nothing removed while held');
      assert.equal(await db.store.db.selectFrom('groups').select('id').where('tenant_id', '=', tenant.id).execute().then((r) => r.length), 6);
      // Users still sync while the groups wait.
      d.editUser(tenant, tenant.users[2]!.props.id, { jobTitle: 'Still syncing' });
      const next = await sync.run(tenant.id);
      assert.equal(next.status, 'succeeded');
      assert.equal(next.groups, undefined, 'held groups are not synced over');
      await assertMirrors(db.store, tenant);
      assert.ok((await sync.confirmHeldDeletion(tenant.id)) > 0);
      await assertGroupsMirror(db.store, tenant);
      const after = await sync.run(tenant.id);
      assert.equal(after.groups?.status, 'succeeded');
    });

    it('rule 25: without a group permission users keep syncing; groups show missing permission with the fix, and recover after consent', async () => {
      emulator.ctx.directory.setConsentedAppRoles(tenant, demoApp(emulator.ctx), ['User.Read.All']);
      const sync = makeSync();
      const outcome = await sync.run(tenant.id);
      assert.equal(outcome.status, 'succeeded', 'the users part succeeds');
      assert.equal(outcome.groups?.status, 'failed');
      await assertMirrors(db.store, tenant);
      const users = await db.store.db.selectFrom('sync_state').select(['health', 'last_error']).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.deepEqual({ ...users }, { health: 'ok', last_error: null });
      const state = await db.store.db.selectFrom('group_sync_state').select(['health', 'last_error']).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.equal(state.health, 'missing_permission');
      assert.match(state.last_error!, /GroupMember\.Read\.All/);
      assert.match(state.last_error!, /consent again/);
      // Users still sync the next time.
      emulator.ctx.directory.editUser(tenant, tenant.users[1]!.props.id, { jobTitle: 'Buyer' });
      const again = await sync.run(tenant.id);
      assert.equal(again.status, 'succeeded');
      await assertMirrors(db.store, tenant);
      // Consent again with the group permission: the same process, holding a cached token without it, asks for a new one.
      emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
      const fixed = await sync.run(tenant.id);
      assert.equal(fixed.groups?.status, 'succeeded', fixed.groups?.error ?? '');
      await assertGroupsMirror(db.store, tenant);
      assert.equal((await db.store.db.selectFrom('group_sync_state').select('health').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).health, 'ok');
    });
  });

  describe(`a 10,000-member group over many pages (${engine})`, () => {
    let emulator: TestEmulator;
    let connection: EmulatorConnection;
    let db: TestStore;
    const bed = useSyncTestbed(engine);
    before(() => ({ emulator, connection, db } = bed));

    it('rules 22 and 23: slices of one group across 100+ pages are merged; a full resync then removes only the memberships gone meanwhile', async () => {
      const tenant = await addSignedUpTenant(emulator, db.store, 10_000, (i, domain) => ({ userPrincipalName: `u${i}@${domain}`, displayName: `U ${i}` }));
      const d = emulator.ctx.directory;
      const big = d.addGroup(tenant, { displayName: 'All staff', securityEnabled: true, members: tenant.users.map((u) => u.props.id) });
      const sync = new DirectorySync({ store: db.store, entra: connection.app(), reader: new GraphReader({ http: connection.http }), graphBaseUrl: connection.graphBaseUrl, consentGraceMs: 0 });
      const outcome = await sync.run(tenant.id);
      assert.equal(outcome.groups?.status, 'succeeded', outcome.groups?.error ?? '');
      assert.ok(outcome.groups!.pages >= 100, `${outcome.groups!.pages} pages`);
      await assertGroupsMirror(db.store, tenant);
      const repo = new GroupRepository(db.store.db, engine);
      assert.equal(await repo.memberCount(tenant.id, big.props.id, { transitive: false }), 10_000);
      for (let i = 0; i < 25; i++) d.removeGroupMember(tenant, big.props.id, tenant.users[i * 400]!.props.id);
      const full = await sync.run(tenant.id, { full: true });
      assert.equal(full.groups?.status, 'succeeded', full.groups?.error ?? '');
      assert.equal(full.groups?.deleted, 25, 'only the 25 memberships no longer listed');
      await assertGroupsMirror(db.store, tenant);
    });
  });
}
