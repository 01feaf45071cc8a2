import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Tenant } from '../../src/emulator/model.ts';
import { GraphSubscriptions } from '../../src/directory/subscriptions.ts';
import { GraphSubscriptionRepository } from '../../src/store/graph-subscriptions.ts';
import { addSignedUpTenant } from '../helpers/mirror.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';

const DAY_MS = 86_400_000;

for (const engine of ENGINES) {
  describe(`Graph change notifications (${engine})`, () => {
    let t: TestRoster;
    let tenant: Tenant;
    let other: Tenant;
    let rows: GraphSubscriptionRepository;

    before(async () => {
      t = await startTestRoster({ engine, notifications: true });
      rows = new GraphSubscriptionRepository(t.db.store.db);
      const user = (i: number, domain: string) => ({ userPrincipalName: `person${i}@${domain}`, displayName: `Person ${i}` });
      tenant = await addSignedUpTenant(t.emulator, t.db.store, 5, user);
      other = await addSignedUpTenant(t.emulator, t.db.store, 2, user);
      await t.roster.notifications!.subscriptions.maintain();
      for (const id of [tenant.id, other.id]) await t.scheduler.syncNow(id);
      // Groups are subscribed once the first run has synced them.
      await t.roster.notifications!.subscriptions.maintain();
    });
    after(async () => t.close());

    const subscriptionOf = (of: Tenant, resource = 'users') => t.emulator.ctx.subscriptions.all().find((s) => s.tenantId === of.id && s.resource === resource)!;
    const runsOf = async (of: Tenant) => Number((await t.db.store.db.selectFrom('sync_runs').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', of.id).executeTakeFirstOrThrow()).n);
    const userRow = (of: Tenant, id: string) => t.db.store.db.selectFrom('users').selectAll().where('tenant_id', '=', of.id).where('id', '=', id).executeTakeFirst();
    const counters = () => t.roster.notifications!.receiver.counters;
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${t.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const notification = (of: Tenant, overrides: Record<string, unknown> = {}) => {
      const s = subscriptionOf(of);
      const userId = of.users[0]!.props.id;
      return {
        subscriptionId: s.id,
        subscriptionExpirationDateTime: new Date(s.expiresAtMs).toISOString(),
        changeType: 'updated',
        resource: `Users/${userId}`,
        resourceData: { '@odata.type': '#Microsoft.Graph.User', '@odata.id': `Users/${userId}`, id: userId },
        clientState: s.clientState,
        tenantId: of.id,
        ...overrides,
      };
    };
    const settled = async () => {
      await new Promise((resolve) => setTimeout(resolve, 700));
      await t.scheduler.settleRequested();
    };
    const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };

    test('rule 1: each active tenant has a users and (its groups synced) a groups subscription, created through the validation handshake at Roster\'s endpoints', async () => {
      for (const org of [tenant, other]) {
        for (const resource of ['users', 'groups']) {
          const row = await rows.get(org.id, resource);
          assert.equal(row?.state, 'active', resource);
          const remote = subscriptionOf(org, resource);
          assert.equal(row?.subscriptionId, remote.id);
          assert.equal(remote.notificationUrl, `${t.url}/graph/notifications`);
          assert.equal(remote.lifecycleNotificationUrl, `${t.url}/graph/lifecycle`);
          assert.deepEqual(remote.changeTypes, ['updated', 'deleted']);
          assert.ok(remote.clientState && remote.clientState.length >= 43, 'a random clientState of 256 bits');
          assert.notEqual(row?.clientStateHash, remote.clientState, 'the database keeps only a hash of the clientState');
        }
      }
      const secrets = [tenant, other].flatMap((org) => ['users', 'groups'].map((r) => subscriptionOf(org, r).clientState));
      assert.equal(new Set(secrets).size, 4, 'one secret per subscription');
      const again = await t.roster.notifications!.subscriptions.maintain();
      assert.deepEqual(again, { created: 0, renewed: 0, removed: 0, failed: 0 }, 'nothing to do for a healthy tenant');
    });

    test('rule 4 / security rule 34: a hostile validation token is echoed only as text/plain, and nothing else is reflected', async () => {
      const hostile = '<script>alert(document.domain)</script><img src=x onerror=alert(1)>';
      for (const path of ['/graph/notifications', '/graph/lifecycle']) {
        const res = await fetch(`${t.url}${path}?validationToken=${encodeURIComponent(hostile)}`, { method: 'POST', headers: { 'content-type': 'text/html' }, body: '<b>body</b>' });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
        assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
        assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
        assert.equal(await res.text(), hostile, 'exactly the token, URL-decoded');
      }
      const twice = await fetch(`${t.url}/graph/notifications?validationToken=a&validationToken=<b>`, { method: 'POST' });
      assert.equal(twice.status, 400);
      assert.doesNotMatch(await twice.text(), /<b>|validationToken/);
      const bad = await post('/graph/notifications', '{"value": [<script>alert(1)</script>');
      assert.equal(bad.status, 202);
      assert.equal(await bad.text(), '', 'a malformed body is dropped without a word');
    });

    test('rule 2 / security rule 34: forged, wrong-clientState, foreign-tenant and replayed notifications change nothing but a counter', async () => {
      const runsBefore = [await runsOf(tenant), await runsOf(other)];
      const before = { received: counters().received, dropped: Object.fromEntries(counters().dropped), accepted: counters().accepted };
      const stateBefore = await t.db.store.db.selectFrom('sync_state').select(['tenant_id', 'requested_at']).execute();
      const stale = new Date(Date.now() - 60_000).toISOString();
      const forged = [
        notification(tenant, { subscriptionId: '00000000-0000-4000-8000-000000000000' }),
        notification(tenant, { clientState: 'guessed' }),
        notification(tenant, { clientState: subscriptionOf(tenant).clientState + 'x' }),
        notification(tenant, { tenantId: other.id }),
        notification(tenant, { tenantId: other.id, clientState: subscriptionOf(other).clientState }),
        notification(tenant, { subscriptionExpirationDateTime: stale }),
        { subscriptionId: 42 },
        'not an object',
      ];
      for (const item of forged) {
        const res = await post('/graph/notifications', { value: [item] });
        assert.equal(res.status, 202, 'nothing tells a forger which check failed');
      }
      await settled();
      const dropped = Object.fromEntries([...counters().dropped].map(([reason, n]) => [reason, n - (before.dropped[reason] ?? 0)]));
      assert.deepEqual(dropped, { malformed: 2, unknown_subscription: 1, tenant_mismatch: 2, client_state_mismatch: 2, tenant_inactive: 0, expired: 1, unknown_event: 0 });
      assert.equal(counters().received - before.received, forged.length);
      assert.equal(counters().accepted, before.accepted);
      assert.deepEqual([await runsOf(tenant), await runsOf(other)], runsBefore, 'no delta round');
      assert.deepEqual(await t.db.store.db.selectFrom('sync_state').select(['tenant_id', 'requested_at']).execute(), stateBefore, 'no wish to sync recorded');
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      assert.match(metrics, /roster_graph_notifications_dropped_total\{reason="client_state_mismatch"\} [1-9]/);
      assert.match(metrics, /roster_graph_subscriptions\{state="active"\} 4/);
    });

    test('rule 3: a user disabled in the directory reaches Roster within seconds through a notification, with no scheduled round', async () => {
      const target = tenant.users[1]!;
      const started = Date.now();
      t.emulator.ctx.directory.editUser(tenant, target.props.id, { accountEnabled: false });
      // How soon is a figure of bench/freshness.ts; here, that a notification brought it.
      await waitFor('the change in Roster', async () => (await userRow(tenant, target.props.id))?.account_enabled === 0);
      assert.ok((await rows.get(tenant.id, 'users'))!.lastNotificationAt! >= started);
    });

    test('rule 3: a membership added in the directory reaches group_members within seconds through a groups notification, with no scheduled round', async () => {
      const d = t.emulator.ctx.directory;
      const memberRow = (groupId: string, memberId: string) =>
        t.db.store.db.selectFrom('group_members').select('member_id').where('tenant_id', '=', tenant.id).where('group_id', '=', groupId).where('member_id', '=', memberId).executeTakeFirst();
      const createdAt = Date.now();
      const group = d.addGroup(tenant, { displayName: 'Night shift', members: [tenant.users[0]!.props.id] });
      await waitFor('the new group in Roster', async () => (await memberRow(group.props.id, tenant.users[0]!.props.id)) !== undefined);
      await settled();
      const groupsRow = await rows.get(tenant.id, 'groups');
      const joiner = tenant.users[3]!.props.id;
      d.addGroupMember(tenant, group.props.id, joiner);
      await waitFor('the membership in Roster', async () => (await memberRow(group.props.id, joiner)) !== undefined);
      // The time of a notice is written at most once a second per subscription.
      assert.ok((await rows.get(tenant.id, 'groups'))!.lastNotificationAt! >= createdAt, 'the groups subscription brought it');
      assert.equal(subscriptionOf(tenant, 'groups').id, groupsRow!.subscriptionId);
      d.removeGroupMember(tenant, group.props.id, joiner);
      await waitFor('the removal in Roster', async () => (await memberRow(group.props.id, joiner)) === undefined);
    });

    test('rule 2: a groups notification with the users subscription\'s clientState is dropped', async () => {
      const before = counters().dropped.get('client_state_mismatch')!;
      const groups = subscriptionOf(tenant, 'groups');
      await post('/graph/notifications', { value: [notification(tenant, { subscriptionId: groups.id, clientState: subscriptionOf(tenant).clientState })] });
      assert.equal(counters().dropped.get('client_state_mismatch'), before + 1);
    });

    test('rule 3: a burst of 1,000 notifications for one tenant is answered 202 at once and causes at most two delta rounds', async () => {
      await settled();
      const before = await runsOf(tenant);
      const acceptedBefore = counters().accepted;
      const item = notification(tenant);
      // As Graph sends a burst: batches of notifications, several requests at once.
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          const res = await post('/graph/notifications', { value: Array.from({ length: 50 }, () => item) });
          assert.equal(res.status, 202);
        }),
      );
      assert.equal(counters().accepted - acceptedBefore, 1000);
      await settled();
      const rounds = (await runsOf(tenant)) - before;
      assert.ok(rounds >= 1 && rounds <= 2, `${rounds} delta rounds`);
    });

    test('rule 5: a dropped notification is caught by the next scheduled round; while the subscription is healthy rounds run less often', async () => {
      await settled();
      await t.emulator.control('POST', '/faults', { target: 'notification', kind: 'drop', count: 1, tenant: tenant.id });
      const target = tenant.users[2]!;
      t.emulator.ctx.directory.editUser(tenant, target.props.id, { jobTitle: 'Lost in transit' });
      await waitFor('the drop', async () => subscriptionOf(tenant).stats.dropped === 1);
      await settled();
      assert.equal((await userRow(tenant, target.props.id))?.job_title, null, 'not there without the notification');
      t.advance(20 * 60_000);
      assert.ok(!(await t.scheduler.tick()).includes(tenant.id), 'past the 15-minute interval but inside the healthy one: not due');
      t.advance(45 * 60_000);
      assert.ok((await t.scheduler.tick()).includes(tenant.id), 'due after the healthy interval');
      await t.scheduler.syncNow(tenant.id);
      assert.equal((await userRow(tenant, target.props.id))?.job_title, 'Lost in transit');
    });

    test('rule 1: renewed once less than half its lifetime remains, with both clocks moved on', async () => {
      const before = await rows.get(tenant.id, 'users');
      t.advance(13 * DAY_MS);
      assert.equal((await t.roster.notifications!.subscriptions.maintain()).renewed, 0, 'more than half left: not yet');
      t.advance(2 * DAY_MS);
      const report = await t.roster.notifications!.subscriptions.maintain();
      assert.ok(report.renewed >= 1);
      const after = await rows.get(tenant.id, 'users');
      assert.equal(after!.subscriptionId, before!.subscriptionId, 'the same subscription, renewed');
      assert.ok(after!.expiresAt! > before!.expiresAt! + 14 * DAY_MS);
      assert.equal(subscriptionOf(tenant).expiresAtMs, after!.expiresAt);
    });

    test('rule 1: reauthorizationRequired is answered by reauthorizing the subscription', async () => {
      const id = subscriptionOf(tenant).id;
      const sent = await t.emulator.control<{ delivered: boolean }>('POST', `/subscriptions/${id}/lifecycle`, { event: 'reauthorizationRequired' });
      assert.equal(sent.delivered, true);
      await waitFor('the reauthorization', async () => !subscriptionOf(tenant).reauthorizationRequired && (await rows.get(tenant.id, 'users'))?.state === 'active');
      assert.ok(t.emulator.ctx.requestLog.entries({ route: 'POST /v1.0/subscriptions/:id/reauthorize', tenant: tenant.id }).length >= 1);
    });

    test('rule 1: at start-up, a subscription Graph no longer has (an emulator restarted) is created again', async () => {
      const lost = subscriptionOf(tenant);
      t.emulator.ctx.subscriptions.remove({ tenant, appId: lost.appId }, lost.id);
      const { roster } = t;
      const restarted = new GraphSubscriptions({ store: roster.store, entra: roster.entra, http: roster.http, graphBaseUrl: new URL(t.emulator.urls.graph), notificationUrl: new URL(t.url), logger: roster.logger, now: roster.now });
      const report = await restarted.release();
      assert.equal(report.created, 1);
      const row = await rows.get(tenant.id, 'users');
      assert.equal(row?.state, 'active');
      assert.notEqual(row?.subscriptionId, lost.id);
      assert.equal(subscriptionOf(tenant).id, row?.subscriptionId);
    });

    test('rule 1: the subscription is deleted when the tenant is suspended, recreated on resume, and deleted when it leaves', async () => {
      const lifecycle = t.roster.lifecycle;
      const first = subscriptionOf(other).id;
      assert.ok(await lifecycle.suspend(other.id, 'test', Date.now()));
      const firstGroups = subscriptionOf(other, 'groups').id;
      await waitFor('the deletion', async () => (await rows.forTenant(other.id)).length === 0 && !t.emulator.ctx.subscriptions.find(first) && !t.emulator.ctx.subscriptions.find(firstGroups));
      const late = await post('/graph/notifications', { value: [{ ...notification(tenant), subscriptionId: first, tenantId: other.id }] });
      assert.equal(late.status, 202);
      assert.ok(await lifecycle.resume(other.id, Date.now()));
      await waitFor('new subscriptions', async () => (await rows.get(other.id, 'users'))?.state === 'active' && (await rows.get(other.id, 'groups'))?.state === 'active');
      assert.notEqual(subscriptionOf(other).id, first);
      assert.notEqual(subscriptionOf(other, 'groups').id, firstGroups);
      await lifecycle.offboard(other.id, 'left', Date.now());
      await waitFor('the deletion after leaving', async () => (await rows.forTenant(other.id)).length === 0 && !t.emulator.ctx.subscriptions.all().some((s) => s.tenantId === other.id));
    });

    test('rule 1: a disconnected tenant (consent revoked) loses its subscription row, and its notifications are dropped', async () => {
      const captured = notification(tenant);
      t.emulator.ctx.directory.revokeConsent(tenant, t.emulator.ctx.demoAppId);
      await t.roster.lifecycle.disconnect(tenant.id, 'app removed', Date.now());
      await waitFor('the rows to go', async () => (await rows.forTenant(tenant.id)).length === 0);
      const dropped = counters().dropped.get('unknown_subscription')!;
      await post('/graph/notifications', { value: [captured] });
      assert.equal(counters().dropped.get('unknown_subscription'), dropped + 1);
    });

    test('rule 1: a tenant without the group permission keeps its users subscription and has no groups one; consenting again adds it, losing the permission removes it', async () => {
      const subscriptions = t.roster.notifications!.subscriptions;
      const app = t.emulator.ctx.directory.requireApp(t.emulator.ctx.demoAppId);
      const third = await addSignedUpTenant(t.emulator, t.db.store, 3, (i, domain) => ({ userPrincipalName: `p${i}@${domain}`, displayName: `P ${i}` }));
      t.emulator.ctx.directory.setConsentedAppRoles(third, app, ['User.Read.All']);
      await subscriptions.maintain();
      await t.scheduler.syncNow(third.id);
      await subscriptions.maintain();
      const groupHealth = async () => (await t.db.store.db.selectFrom('group_sync_state').select('health').where('tenant_id', '=', third.id).executeTakeFirstOrThrow()).health;
      assert.equal(await groupHealth(), 'missing_permission');
      assert.equal((await rows.get(third.id, 'users'))?.state, 'active');
      assert.equal(await rows.get(third.id, 'groups'), undefined);
      assert.equal(subscriptionOf(third, 'groups'), undefined, 'Graph was not even asked');
      assert.equal(t.emulator.ctx.requestLog.entries({ route: 'POST /v1.0/subscriptions', tenant: third.id }).length, 1);

      // Consent again with the group permission (a new token carries it): the next round syncs groups, and the subscription follows.
      t.emulator.ctx.directory.grantAdminConsent(third, app);
      await t.roster.entra.appToken(third.id, { forceRefresh: true });
      t.roster.syncControl.requestSync(third.id);
      await waitFor('the groups subscription', async () => (await rows.get(third.id, 'groups'))?.state === 'active');
      assert.equal(await groupHealth(), 'ok');
      assert.equal(subscriptionOf(third, 'groups').id, (await rows.get(third.id, 'groups'))!.subscriptionId);

      // The group permission taken away: groups report it, and their subscription goes; users keep theirs.
      t.emulator.ctx.directory.setConsentedAppRoles(third, app, ['User.Read.All']);
      await t.roster.entra.appToken(third.id, { forceRefresh: true });
      await t.scheduler.syncNow(third.id);
      assert.equal(await groupHealth(), 'missing_permission');
      assert.ok((await subscriptions.maintain()).removed >= 1);
      assert.equal(await rows.get(third.id, 'groups'), undefined);
      assert.equal(subscriptionOf(third, 'groups'), undefined);
      assert.equal((await rows.get(third.id, 'users'))?.state, 'active');
    });

    // Last: it uses up this Roster's allowance for 127.0.0.1.
    test('security rule 34: a flood of posts from one address is cut off at 1,200 a minute, before any check', async () => {
      const statuses = new Map<number, number>();
      for (let i = 0; i < 1210; i += 110) {
        const answers = await Promise.all(Array.from({ length: Math.min(110, 1210 - i) }, () => post('/graph/notifications', 'flood').then((r) => r.status)));
        for (const status of answers) statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
      // Earlier posts of the suite (the validation handshakes, other tests) used part of the same minute.
      assert.ok(statuses.get(202)! <= 1200 && statuses.get(202)! >= 1000, `${statuses.get(202)} accepted`);
      assert.ok(statuses.get(429)! >= 10, `${statuses.get(429)} refused`);
      assert.equal((statuses.get(202) ?? 0) + (statuses.get(429) ?? 0), 1210);
    });
  });
}
