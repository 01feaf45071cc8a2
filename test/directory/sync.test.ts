import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { before, beforeEach, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { GraphReader, type AccessTokenSource } from '../../src/directory/graph-reader.ts';
import { DirectorySync, HeldDeletionError, TenantBusyError } from '../../src/directory/sync.ts';
import type { Tenant } from '../../src/emulator/model.ts';
import { SessionRepository } from '../../src/store/sessions.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import type { TestEmulator } from '../helpers/emulator.ts';
import type { EmulatorConnection } from '../helpers/entra.ts';
import { addSignedUpTenant, assertMirrors, useSyncTestbed } from '../helpers/mirror.ts';
import { ENGINES, type TestStore } from '../helpers/stores.ts';


for (const engine of ENGINES) {
  describe(`directory sync rules (${engine})`, () => {
    let emulator: TestEmulator;
    let connection: EmulatorConnection;
    let db: TestStore;
    let tenant: Tenant;
    let sync: DirectorySync;
    const waits: number[] = [];

    async function countUsers(): Promise<number> {
      return Number((await db.store.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).n);
    }

    function makeSync(options: { maxAttempts?: number; pageSize?: number; consentGraceMs?: number } = {}): DirectorySync {
      return new DirectorySync({
        store: db.store,
        entra: connection.app(),
        reader: new GraphReader({ http: connection.http, maxAttempts: options.maxAttempts ?? 4, onWait: (ms) => waits.push(ms) }),
        graphBaseUrl: connection.graphBaseUrl,
        pageSize: options.pageSize ?? 999,
        consentGraceMs: options.consentGraceMs ?? 0,
      });
    }


    const bed = useSyncTestbed(engine);
    before(() => ({ emulator, connection, db } = bed));

    beforeEach(async () => {
      tenant = await addSignedUpTenant(emulator, db.store, 2500, (i, domain) => ({
        userPrincipalName: `user${i}@${domain}`,
        displayName: `User ${i}`,
        givenName: 'User',
        surname: `N${i}`,
        jobTitle: i % 3 ? 'Engineer' : null,
        department: i % 2 ? 'R&D' : 'Sales',
        businessPhones: i % 4 ? [] : ['+1 555 0100'],
      }));
      sync = makeSync();
      waits.length = 0;
    });

    it('rule 1: a full sync reads every page and records the run', async () => {
      const outcome = await sync.run(tenant.id);
      assert.equal(outcome.status, 'succeeded');
      assert.equal(outcome.kind, 'full');
      assert.equal(outcome.pages, 3);
      assert.equal(outcome.created, 2500);
      await assertMirrors(db.store, tenant);
      const state = await db.store.db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.match(state.delta_link!, /\$deltatoken=/);
      assert.equal(state.next_link, null);
      assert.equal(state.health, 'ok');
      assert.ok(state.last_success_at);
    });

    it('rules 2, 3 and 4: delta rounds apply creates, partial updates, soft deletes, restores and permanent deletes', async () => {
      await sync.run(tenant.id);
      const d = emulator.ctx.directory;
      const [a, b, c, e] = [tenant.users[1]!, tenant.users[2]!, tenant.users[3]!, tenant.users[4]!];
      d.addUser(tenant, { userPrincipalName: `new@${tenant.defaultDomain}`, displayName: 'New Person' });
      d.editUser(tenant, a.props.id, { department: 'Legal' });
      d.softDeleteUser(tenant, b.props.id);
      d.softDeleteUser(tenant, c.props.id);
      d.restoreUser(tenant, c.props.id);
      d.purgeUser(tenant, e.props.id);
      // The users' requests: the groups' round follows in the same run.
      const userRequests = () => emulator.ctx.requestLog.entries({ tenant: tenant.id }).filter((e) => e.route.includes('/v1.0/users')).length;
      const before = userRequests();
      const outcome = await sync.run(tenant.id);
      assert.equal(outcome.kind, 'delta');
      assert.equal(outcome.status, 'succeeded');
      assert.equal(outcome.pages, 1, 'work follows the changes, not the tenant size');
      assert.equal(userRequests() - before, 1);
      assert.equal(outcome.created, 1);
      assert.equal(outcome.deleted, 2);
      await assertMirrors(db.store, tenant);
      const softDeleted = await db.store.db.selectFrom('users').select(['deleted_at', 'job_title']).where('tenant_id', '=', tenant.id).where('id', '=', b.props.id).executeTakeFirstOrThrow();
      assert.ok(softDeleted.deleted_at, 'soft delete is kept as deleted, restorable');
      const merged = await db.store.db.selectFrom('users').select(['department', 'display_name', 'job_title']).where('tenant_id', '=', tenant.id).where('id', '=', a.props.id).executeTakeFirstOrThrow();
      assert.deepEqual({ ...merged }, { department: 'Legal', display_name: a.props.displayName, job_title: a.props.jobTitle }, 'a minimal update merges, never blanks');
      d.restoreUser(tenant, b.props.id);
      await sync.run(tenant.id);
      await assertMirrors(db.store, tenant);
    });

    it('rule 3: a full resync keeps soft-deleted users as such (restorable), ends their sessions, and removes only purged ones', async () => {
      await sync.run(tenant.id);
      const d = emulator.ctx.directory;
      const softly = tenant.users.slice(0, 5).map((u) => u.props.id);
      const purged = tenant.users.slice(5, 8).map((u) => u.props.id);
      const sessions = new SessionRepository(db.store.db, { idleMs: 3_600_000, absoluteMs: 36_000_000 });
      const { id: session } = await sessions.create(tenant.id, softly[0]!, Date.now());
      for (const id of softly) d.softDeleteUser(tenant, id);
      for (const id of purged) d.purgeUser(tenant, id);
      const outcome = await sync.run(tenant.id, { full: true });
      assert.equal(outcome.status, 'succeeded', outcome.error ?? '');
      assert.equal(outcome.deleted, 3, 'only the purged users are removed');
      assert.equal(outcome.updated, 5, 'the soft-deleted users changed state');
      await assertMirrors(db.store, tenant, { deletedToo: true });
      assert.equal(await sessions.resume(session, Date.now()), undefined, 'a soft-deleted user is signed out');

      // A second full resync leaves the known soft-deleted users untouched; restoring one in Entra brings it back as active.
      const again = await sync.run(tenant.id, { full: true });
      assert.deepEqual([again.created, again.updated, again.deleted], [0, 0, 0]);
      d.restoreUser(tenant, softly[1]!);
      await sync.run(tenant.id, { full: true });
      await assertMirrors(db.store, tenant, { deletedToo: true });
    });

    it('rule 5: replaying a round changes nothing and duplicates nothing', async () => {
      await sync.run(tenant.id);
      const link = (await db.store.db.selectFrom('sync_state').select('delta_link').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).delta_link;
      emulator.ctx.directory.editUser(tenant, tenant.users[10]!.props.id, { jobTitle: 'Director' });
      await sync.run(tenant.id);
      await db.store.db.updateTable('sync_state').set({ delta_link: link }).where('tenant_id', '=', tenant.id).execute();
      const replay = await sync.run(tenant.id);
      assert.equal(replay.status, 'succeeded');
      assert.equal(replay.created, 0);
      await assertMirrors(db.store, tenant);
    });

    it('rule 6: an expired delta link starts a full resync by itself', async () => {
      await sync.run(tenant.id);
      emulator.ctx.directory.purgeUser(tenant, tenant.users[0]!.props.id);
      tenant.deltaFloor = tenant.seq + 1;
      const outcome = await sync.run(tenant.id);
      assert.equal(outcome.kind, 'full');
      assert.equal(outcome.status, 'succeeded');
      await assertMirrors(db.store, tenant);
      const runs = await db.store.db.selectFrom('sync_runs').select(['kind', 'status', 'error']).where('tenant_id', '=', tenant.id).orderBy('started_at').execute();
      assert.ok(runs.some((r) => r.kind === 'delta' && r.status === 'failed' && /expired/.test(r.error ?? '')));
    });

    it('rules 8 and 12: a full resync that fails midway removes nothing; network errors are retried', async () => {
      await sync.run(tenant.id);
      const gone = tenant.users.slice(0, 5).map((u) => u.props.id);
      for (const id of gone) emulator.ctx.directory.purgeUser(tenant, id);
      emulator.ctx.faults.add({ target: 'graph', kind: 'drop', tenant: tenant.id, count: 2 });
      let addedFault = false;
      const failing = await makeSync({ maxAttempts: 3 }).run(tenant.id, {
        full: true,
        onProgress: () => {
          if (addedFault) return;
          addedFault = true;
          emulator.ctx.faults.add({ target: 'graph', kind: 'unavailable', tenant: tenant.id, count: 3 });
        },
      });
      assert.equal(failing.status, 'failed');
      assert.ok(waits.length >= 2, 'dropped connections were retried');
      const still = await db.store.db.selectFrom('users').select('id').where('tenant_id', '=', tenant.id).where('id', 'in', gone).execute();
      assert.equal(still.length, 5, 'nothing removed before the listing was complete');
      const state = await db.store.db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.equal(state.health, 'failing');
      assert.match(state.last_error!, /503/);
      const done = await sync.run(tenant.id, { full: true });
      assert.equal(done.status, 'succeeded');
      assert.equal(done.deleted, 5);
      await assertMirrors(db.store, tenant);
    });

    it('rule 9: a full resync that would remove too many users is held, then confirmed', async () => {
      await sync.run(tenant.id);
      for (const user of tenant.users.slice(0, 1000)) emulator.ctx.directory.purgeUser(tenant, user.props.id);
      const held = await sync.run(tenant.id, { full: true });
      assert.equal(held.status, 'held');
      assert.match(held.error!, /would remove 1,000 of 2,500 users/);
      assert.equal(Number((await db.store.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).n), 2500);
      // No new run may replace the held one (and the decision with it).
      await assert.rejects(sync.run(tenant.id, { full: true }), HeldDeletionError);
      assert.equal((await db.store.db.selectFrom('sync_runs').select('status').where('id', '=', held.id).executeTakeFirstOrThrow()).status, 'held');
      assert.equal(await sync.confirmHeldDeletion(tenant.id), 1000);
      await assertMirrors(db.store, tenant);
    });

    it('rule 9: a delta round that would remove too many users is held; the rest of it applies; discarding keeps the users', async () => {
      await sync.run(tenant.id);
      const d = emulator.ctx.directory;
      const sessions = new SessionRepository(db.store.db, { idleMs: 3_600_000, absoluteMs: 36_000_000 });
      const gone = tenant.users.slice(0, 1000).map((u) => u.props.id);
      const { id: goneSession } = await sessions.create(tenant.id, gone[0]!, Date.now());
      const linkBefore = (await db.store.db.selectFrom('sync_state').select('delta_link').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).delta_link;
      for (const id of gone) d.purgeUser(tenant, id);
      const edited = tenant.users[0]!.props.id;
      d.editUser(tenant, edited, { department: 'Legal' });
      d.addUser(tenant, { userPrincipalName: `late@${tenant.defaultDomain}`, displayName: 'Late Joiner' });

      const held = await sync.run(tenant.id);
      assert.equal(held.kind, 'delta');
      assert.equal(held.status, 'held');
      assert.match(held.error!, /delta round would remove 1,000 of 2,501 users/);
      assert.equal(await countUsers(), 2501, 'nothing removed while held');
      assert.ok(await sessions.resume(goneSession, Date.now()), 'no session ended while held');
      const kept = await db.store.db.selectFrom('users').select('department').where('tenant_id', '=', tenant.id).where('id', '=', edited).executeTakeFirstOrThrow();
      assert.equal(kept.department, 'Legal', 'the round’s other changes are applied');
      const state = await db.store.db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.equal(state.health, 'held');
      assert.match(state.last_error!, /would remove 1,000 of 2,501 users/);
      assert.notEqual(state.delta_link, linkBefore, 'the round’s delta link is saved with the hold');

      await sync.discardHeldDeletion(tenant.id);
      await assert.rejects(sync.confirmHeldDeletion(tenant.id), /no held deletion/);
      assert.equal(await countUsers(), 2501);
      assert.ok(await sessions.resume(goneSession, Date.now()), 'discarding keeps the users and their sessions');
      const next = await sync.run(tenant.id);
      assert.deepEqual([next.kind, next.status, next.deleted], ['delta', 'succeeded', 0], 'a discarded removal is not applied by the next round');
      assert.equal(await countUsers(), 2501);
      // The next full resync notices the missing users again and asks again.
      const full = await sync.run(tenant.id, { full: true });
      assert.equal(full.status, 'held');
      assert.match(full.error!, /full listing would remove 1,000 of 2,501 users/);
      assert.equal(await sync.confirmHeldDeletion(tenant.id), 1000);
      await assertMirrors(db.store, tenant);
    });

    it('rule 9: a held delta round survives a takeover midway and, confirmed, removes the users and ends their sessions', async () => {
      await sync.run(tenant.id);
      const sessions = new SessionRepository(db.store.db, { idleMs: 3_600_000, absoluteMs: 36_000_000 });
      const gone = tenant.users.slice(0, 1000).map((u) => u.props.id);
      const stays = tenant.users[2000]!.props.id;
      const { id: goneSession } = await sessions.create(tenant.id, gone[500]!, Date.now());
      const { id: staySession } = await sessions.create(tenant.id, stays, Date.now());
      for (const id of gone) emulator.ctx.directory.purgeUser(tenant, id);

      // 1000 removals make two pages. Another process takes the tenant over once the first is committed, as after a crash.
      let firstCommitted!: () => void;
      const committed = new Promise<void>((resolve) => (firstCommitted = resolve));
      const reader = new GraphReader({ http: connection.http });
      const getPage = reader.getPage.bind(reader);
      let requests = 0;
      reader.getPage = async <T,>(url: string, token: AccessTokenSource, headers?: Record<string, string>) => {
        const page = await getPage<T>(url, token, headers);
        if (++requests === 2) {
          await committed;
          await db.store.db.updateTable('sync_state').set({ lock_owner: 'elsewhere:1:x', lock_expires_at: Date.now() - 1 }).where('tenant_id', '=', tenant.id).execute();
        }
        return page;
      };
      const interrupted = new DirectorySync({ store: db.store, entra: connection.app(), reader, graphBaseUrl: connection.graphBaseUrl, pageSize: 999 });
      await assert.rejects(interrupted.run(tenant.id, { onProgress: (p) => p.pages === 1 && firstCommitted() }), TenantBusyError);
      const midway = await db.store.db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.ok(midway.next_link, 'stopped between the two pages');
      assert.equal(await countUsers(), 2500);

      const held = await sync.run(tenant.id);
      assert.equal(held.id, midway.run_id, 'the same run resumed');
      assert.equal(held.status, 'held');
      assert.match(held.error!, /would remove 1,000 of 2,500 users/, 'the first page’s pending removals count after the takeover');
      assert.equal(await countUsers(), 2500);

      assert.equal(await sync.confirmHeldDeletion(tenant.id), 1000);
      assert.equal(await sessions.resume(goneSession, Date.now()), undefined, 'a removed user’s session ends');
      assert.ok(await sessions.resume(staySession, Date.now()), 'other sessions stay');
      const run = await db.store.db.selectFrom('sync_runs').selectAll().where('id', '=', held.id).executeTakeFirstOrThrow();
      assert.deepEqual([run.kind, run.status, run.deleted], ['delta', 'succeeded', 1000]);
      assert.equal((await db.store.db.selectFrom('sync_state').select('health').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).health, 'ok');
      await assertMirrors(db.store, tenant);
      assert.equal((await sync.run(tenant.id)).deleted, 0);
    });

    it('rule 10: pages are committed as they arrive, while the listing is still being read', async () => {
      emulator.ctx.directory.addUsersUnchecked(tenant, Array.from({ length: 2500 }, (_, i) => ({ userPrincipalName: `more${i}@${tenant.defaultDomain}`, displayName: `More ${i}` })));
      // Six pages of up to 999: Graph lets four page requests through, then stalls on the fifth.
      const through = emulator.ctx.faults.add({ target: 'graph', kind: 'delay', delayMs: 0, tenant: tenant.id, count: 4 });
      const stall = emulator.ctx.faults.add({ target: 'graph', kind: 'delay', delayMs: 2500, tenant: tenant.id, count: 1 });
      const reported: number[] = [];
      let finished = false;
      const running = sync.run(tenant.id, { onProgress: (p) => reported.push(p.pages) }).finally(() => (finished = true));
      try {
        let stored = 0;
        for (const deadline = Date.now() + 10_000; !finished && Date.now() < deadline; await delay(20)) {
          stored = await countUsers();
          if (stored >= 4 * 999 && stall.hits === 1) break;
        }
        assert.equal(finished, false, 'the run is still waiting for its fifth page');
        assert.equal(stored, 4 * 999, 'the four pages read so far are committed');
        const run = await db.store.db.selectFrom('sync_runs').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
        assert.deepEqual([run.status, run.pages, run.created], ['running', 4, 4 * 999]);
        const state = await db.store.db.selectFrom('sync_state').select('next_link').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
        assert.ok(state.next_link, 'with the cursor of the page being read');
        assert.deepEqual(reported, [1, 2, 3, 4]);
        // All of that was read before Graph answered the fifth page, so no run could have held the whole listing.
        const fifth = emulator.ctx.requestLog.entries({ tenant: tenant.id }).filter((e) => e.route.includes('/v1.0/users/delta'))[4];
        assert.ok(fifth, 'the fifth page was asked for');
        assert.equal(fifth.status, undefined, 'and is not answered yet');
      } finally {
        emulator.ctx.faults.remove(through.id);
        emulator.ctx.faults.remove(stall.id);
      }
      const outcome = await running;
      assert.deepEqual([outcome.status, outcome.pages, outcome.created], ['succeeded', 6, 5000]);
      await assertMirrors(db.store, tenant);
    });

    it('a 401 from Graph for a cached app token gets one fresh token, and the run goes on', async () => {
      await sync.run(tenant.id);
      // The emulator's clock passes the cached token's expiry while Roster's does not: Graph refuses a token Roster still trusts.
      emulator.ctx.clock.advance(2 * 3600);
      const tokenRequests = () => emulator.ctx.requestLog.entries({ tenant: tenant.id }).filter((e) => e.route.includes('/oauth2/v2.0/token')).length;
      const graphRequests = () => emulator.ctx.requestLog.entries({ tenant: tenant.id }).filter((e) => e.route.includes('/v1.0/users')).length;
      const [tokensBefore, graphBefore] = [tokenRequests(), graphRequests()];
      const outcome = await sync.run(tenant.id);
      assert.equal(outcome.status, 'succeeded', outcome.error ?? '');
      assert.equal(tokenRequests() - tokensBefore, 1, 'one fresh token');
      assert.equal(graphRequests() - graphBefore, 2, 'the refused request, then the same request with the fresh token');
      assert.equal((await db.store.db.selectFrom('sync_state').select('health').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).health, 'ok');
    });

    it('rule 11: 429 with Retry-After is honoured before the next request of that tenant', async () => {
      emulator.ctx.faults.add({ target: 'graph', kind: 'throttle', tenant: tenant.id, retryAfter: '0.35', count: 2 });
      const outcome = await sync.run(tenant.id);
      assert.equal(outcome.status, 'succeeded');
      const log = emulator.ctx.requestLog.entries({ tenant: tenant.id }).filter((e) => e.route.includes('/v1.0/'));
      for (let i = 1; i < log.length; i++) {
        if (log[i - 1]!.status === 429) assert.ok(log[i]!.atMs - log[i - 1]!.atMs >= 350, `request ${i} came ${log[i]!.atMs - log[i - 1]!.atMs} ms after a 429`);
      }
      assert.deepEqual(waits.slice(0, 2), [350, 350]);
      await assertMirrors(db.store, tenant);
    });

    it('rules 13 and 19: revoked consent marks the tenant disconnected, keeps its users and ends its sessions', async () => {
      await sync.run(tenant.id);
      const sessions = new SessionRepository(db.store.db, { idleMs: 3_600_000, absoluteMs: 36_000_000 });
      const { id } = await sessions.create(tenant.id, tenant.users[0]!.props.id, Date.now());
      emulator.ctx.directory.revokeConsent(tenant, emulator.ctx.demoAppId);
      const outcome = await makeSync().run(tenant.id, { full: true });
      assert.equal(outcome.status, 'failed');
      const stored = await new TenantRepository(db.store.db).get(tenant.id);
      assert.equal(stored?.state, 'disconnected');
      assert.equal(Number((await db.store.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).n), 2500, 'never read as an empty directory');
      assert.equal(await sessions.resume(id, Date.now()), undefined);
      const state = await db.store.db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.equal(state.health, 'disconnected');
    });

    it('rule 14: 403 from Graph marks the tenant missing permission with the fix spelled out', async () => {
      tenant.servicePrincipals.get(emulator.ctx.demoAppId)!.appRoles = [];
      const outcome = await sync.run(tenant.id);
      assert.equal(outcome.status, 'failed');
      const state = await db.store.db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.equal(state.health, 'missing_permission');
      assert.match(state.last_error!, /grant Roster the Microsoft Graph application permission User\.Read\.All/);
    });

    it('rule 15: just after sign-up, a token failure is retried later instead of disconnecting the tenant', async () => {
      emulator.ctx.directory.revokeConsent(tenant, emulator.ctx.demoAppId);
      await new TenantRepository(db.store.db).activate({ id: tenant.id, displayName: tenant.displayName, domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now());
      const outcome = await makeSync({ consentGraceMs: 300_000 }).run(tenant.id);
      assert.equal(outcome.status, 'failed');
      assert.equal((await new TenantRepository(db.store.db).get(tenant.id))?.state, 'active');
      const state = await db.store.db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.equal(state.health, 'failing');
    });

    it('rule 17: one sync per tenant at a time, across processes; a dead holder on this machine is taken over at once', async () => {
      const [first, second] = await Promise.allSettled([sync.run(tenant.id), makeSync().run(tenant.id)]);
      const outcomes = [first, second];
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
      const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
      assert.ok(refused.reason instanceof TenantBusyError);
      await db.store.db.updateTable('sync_state').set({ lock_owner: `${hostname()}:999999:dead`, lock_expires_at: Date.now() + 60_000 }).where('tenant_id', '=', tenant.id).execute();
      assert.equal((await sync.run(tenant.id)).status, 'succeeded', 'a crashed holder does not block the tenant until its lease lapses');
      await db.store.db.updateTable('sync_state').set({ lock_owner: 'another-machine:1:x', lock_expires_at: Date.now() + 60_000 }).where('tenant_id', '=', tenant.id).execute();
      await assert.rejects(sync.run(tenant.id), TenantBusyError);
      await db.store.db.updateTable('sync_state').set({ lock_expires_at: Date.now() - 1 }).where('tenant_id', '=', tenant.id).execute();
      assert.equal((await sync.run(tenant.id)).status, 'succeeded', 'a lapsed lease is taken over');
    });

    it('rule 20: every run is recorded with its kind, times, pages, counts, status and error', async () => {
      await sync.run(tenant.id);
      emulator.ctx.directory.editUser(tenant, tenant.users[3]!.props.id, { jobTitle: 'Auditor' });
      await sync.run(tenant.id);
      tenant.servicePrincipals.get(emulator.ctx.demoAppId)!.appRoles = [];
      // A new process: issued tokens keep their roles until they expire, as in Entra.
      await makeSync().run(tenant.id, { full: true });
      const runs = await db.store.db.selectFrom('sync_runs').selectAll().where('tenant_id', '=', tenant.id).orderBy('started_at').execute();
      assert.deepEqual(
        runs.map((r) => [r.kind, r.status, r.pages, r.created, r.updated, r.deleted]),
        [
          ['full', 'succeeded', 3, 2500, 0, 0],
          ['delta', 'succeeded', 1, 0, 1, 0],
          ['full', 'failed', 0, 0, 0, 0],
        ],
      );
      for (const run of runs) assert.ok(run.finished_at! >= run.started_at);
      assert.match(runs[2]!.error!, /User\.Read\.All/);
      const state = await db.store.db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.equal(state.last_success_at, runs[1]!.finished_at, 'the last success stays visible next to the current error');
      assert.match(state.last_error!, /User\.Read\.All/);
    });

    it('rule 19: a user disabled by a sync loses their sessions', async () => {
      await sync.run(tenant.id);
      const sessions = new SessionRepository(db.store.db, { idleMs: 3_600_000, absoluteMs: 36_000_000 });
      const victim = tenant.users[7]!;
      const { id } = await sessions.create(tenant.id, victim.props.id, Date.now());
      emulator.ctx.directory.editUser(tenant, victim.props.id, { accountEnabled: false });
      await sync.run(tenant.id);
      assert.equal(await sessions.resume(id, Date.now()), undefined);
      await assertMirrors(db.store, tenant);
    });

    it('rule 21: a replayed round counts no change twice and ends no session again', async () => {
      await sync.run(tenant.id);
      const resync = await sync.run(tenant.id, { full: true });
      assert.deepEqual([resync.created, resync.updated, resync.deleted], [0, 0, 0], 'a full resync of an unchanged tenant changes nothing');
      const replayFrom = (await db.store.db.selectFrom('sync_state').select('delta_link').where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).delta_link;
      const d = emulator.ctx.directory;
      const sessions = new SessionRepository(db.store.db, { idleMs: 3_600_000, absoluteMs: 36_000_000 });
      const [returning, edited, binned] = [20, 21, 22].map((i) => tenant.users[i]!.props.id) as [string, string, string];
      const first = await Promise.all([returning, edited, binned].map(async (user) => (await sessions.create(tenant.id, user, Date.now())).id));
      d.editUser(tenant, returning, { accountEnabled: false });
      d.editUser(tenant, edited, { jobTitle: 'Chief of Staff' });
      d.softDeleteUser(tenant, binned);
      const applied = await sync.run(tenant.id);
      assert.deepEqual([applied.created, applied.updated, applied.deleted], [0, 2, 1]);
      assert.deepEqual(await Promise.all(first.map(async (id) => (await sessions.resume(id, Date.now())) !== undefined)), [false, true, false]);

      // Re-enabled, the user signs in again.
      d.editUser(tenant, returning, { accountEnabled: true });
      const reenabled = await sync.run(tenant.id);
      assert.deepEqual([reenabled.created, reenabled.updated, reenabled.deleted], [0, 1, 0]);
      const { id: again } = await sessions.create(tenant.id, returning, Date.now());

      // The same changes again, from the earlier delta link (rule 5): none of them is new to Roster.
      await db.store.db.updateTable('sync_state').set({ delta_link: replayFrom }).where('tenant_id', '=', tenant.id).execute();
      const replay = await sync.run(tenant.id);
      assert.equal(replay.status, 'succeeded');
      assert.equal(replay.pages, 1);
      assert.deepEqual([replay.created, replay.updated, replay.deleted], [0, 0, 0]);
      assert.ok(await sessions.resume(again, Date.now()), 'the new session survives the replay');
      assert.ok(await sessions.resume(first[1]!, Date.now()));
      await assertMirrors(db.store, tenant, { deletedToo: true });
    });
  });
}
