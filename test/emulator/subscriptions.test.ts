import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { executeVerb } from '../../src/emulator/cli/verbs.ts';
import { UsageError } from '../../src/emulator/cli/flags.ts';
import { SUBSCRIPTION_QUOTAS } from '../../src/emulator/subscriptions.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, consent, type Org } from '../helpers/fixtures.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { appToken, userToken } from '../helpers/tokens.ts';

describe('emulator: Graph change-notification subscriptions', () => {
  let emulator: TestEmulator;
  let receiver: Receiver;
  let org: Org;
  let token: string;

  before(async () => {
    emulator = await startTestEmulator();
    receiver = await startReceiver();
    org = addOrg(emulator.ctx, 'Subscribers', 'subscribers.com');
    consent(emulator.ctx, org);
    token = await appToken(emulator.ctx, org.tenant.id);
  });
  after(async () => {
    await emulator.close();
    await receiver.close();
  });

  const graph = async (method: string, path: string, body?: unknown, bearer = token) => {
    const res = await emulator.fetch(`${emulator.urls.graph}/v1.0${path}`, {
      method,
      headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Graph's JSON, read field by field in the assertions
    return { status: res.status, body: (text ? JSON.parse(text) : null) as Record<string, any> };
  };
  const inMinutes = (minutes: number) => new Date(emulator.ctx.clock.nowMs() + minutes * 60_000).toISOString();
  const subscription = (overrides: Record<string, unknown> = {}) => ({
    changeType: 'updated,deleted',
    notificationUrl: `${receiver.url}/notify`,
    lifecycleNotificationUrl: `${receiver.url}/lifecycle`,
    resource: 'users',
    expirationDateTime: inMinutes(60),
    clientState: 'a-secret',
    ...overrides,
  });
  const objectId = (item: Record<string, unknown>) => (item.resourceData as { id: string }).id;
  const cleanUp = () => {
    for (const s of emulator.ctx.subscriptions.all()) emulator.ctx.subscriptions.remove({ tenant: emulator.ctx.directory.requireTenant(s.tenantId), appId: s.appId }, s.id);
    receiver.received.length = 0;
    Object.assign(receiver.behaviour, { validation: 'echo', status: 202, delayMs: 0 });
    emulator.ctx.faults.clear();
  };

  test('create validates both URLs, then list, read, renew, reauthorize and delete', async () => {
    cleanUp();
    const created = await graph('POST', '/subscriptions', subscription());
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.resource, 'users');
    assert.equal(created.body.clientState, 'a-secret');
    const id = created.body.id as string;
    assert.deepEqual((await graph('GET', '/subscriptions')).body.value.map((s: { id: string }) => s.id), [id]);
    assert.equal((await graph('GET', `/subscriptions/${id}`)).status, 200);
    const renewed = await graph('PATCH', `/subscriptions/${id}`, { expirationDateTime: inMinutes(41_000) });
    assert.equal(renewed.status, 200);
    assert.ok(Date.parse(renewed.body.expirationDateTime) > Date.parse(created.body.expirationDateTime), 'renewal moved the expiry');
    assert.equal((await graph('POST', `/subscriptions/${id}/reauthorize`)).status, 204);
    assert.equal((await graph('DELETE', `/subscriptions/${id}`)).status, 204);
    assert.equal((await graph('GET', `/subscriptions/${id}`)).status, 404);
  });

  test('a failed handshake (wrong body, HTML, or an unreachable lifecycle URL) refuses the subscription with 400', async () => {
    cleanUp();
    for (const validation of ['wrong', 'html'] as const) {
      receiver.behaviour.validation = validation;
      const refused = await graph('POST', '/subscriptions', subscription());
      assert.equal(refused.status, 400, validation);
      assert.equal(refused.body.error.code, 'ValidationError');
    }
    receiver.behaviour.validation = 'echo';
    const unreachable = await graph('POST', '/subscriptions', subscription({ lifecycleNotificationUrl: 'http://localhost:9/lifecycle' }));
    assert.equal(unreachable.status, 400);
    assert.equal(emulator.ctx.subscriptions.all().length, 0);
  });

  test('lifetime, clientState, change type, URL scheme, token kind and quotas are enforced', async () => {
    cleanUp();
    assert.equal((await graph('POST', '/subscriptions', subscription({ expirationDateTime: inMinutes(41_761) }))).status, 400);
    assert.equal((await graph('POST', '/subscriptions', subscription({ expirationDateTime: inMinutes(-1) }))).status, 400);
    assert.equal((await graph('POST', '/subscriptions', subscription({ clientState: 'x'.repeat(129) }))).status, 400);
    assert.equal((await graph('POST', '/subscriptions', subscription({ clientState: 'x'.repeat(128) }))).status, 201);
    assert.equal((await graph('POST', '/subscriptions', subscription({ changeType: 'created' }))).status, 400);
    assert.equal((await graph('POST', '/subscriptions', subscription({ notificationUrl: 'http://example.com/notify' }))).status, 400);
    assert.equal((await graph('POST', '/subscriptions', subscription({ resource: 'messages' }))).status, 400);
    const noRole = await appToken(emulator.ctx, org.tenant.id, { roles: [] });
    assert.equal((await graph('POST', '/subscriptions', subscription(), noRole)).status, 403);
    const delegated = await userToken(emulator.ctx, org.tenant.id, org.admin.props.id, 'User.Read.All');
    assert.equal((await graph('POST', '/subscriptions', subscription(), delegated)).status, 403);
    assert.equal((await graph('PATCH', `/subscriptions/${emulator.ctx.subscriptions.all()[0]!.id}`, { expirationDateTime: inMinutes(41_761) })).status, 400);

    for (let i = emulator.ctx.subscriptions.all().length; i < SUBSCRIPTION_QUOTAS.perAppPerTenant; i++) {
      assert.equal((await graph('POST', '/subscriptions', subscription({ lifecycleNotificationUrl: null }))).status, 201);
    }
    const over = await graph('POST', '/subscriptions', subscription());
    assert.equal(over.status, 403);
    assert.match(over.body.error.message, /quota/);
  });

  test('user changes are delivered as basic notifications: updated for create, edit and soft delete, deleted when permanent', async () => {
    cleanUp();
    const created = await graph('POST', '/subscriptions', subscription());
    const d = emulator.ctx.directory;
    const user = d.addUser(org.tenant, { userPrincipalName: 'new@subscribers.com' });
    d.editUser(org.tenant, user.props.id, { jobTitle: 'Lead' });
    d.softDeleteUser(org.tenant, user.props.id);
    d.purgeUser(org.tenant, user.props.id);
    await receiver.waitFor(() => receiver.items().length >= 4);
    assert.equal(receiver.received.length, 1, 'a burst travels in one batch');
    assert.deepEqual(receiver.items().map((i) => i.changeType), ['updated', 'updated', 'updated', 'deleted']);
    const item = receiver.items()[0]!;
    assert.equal(receiver.received[0]!.path, '/notify');
    assert.deepEqual(item, {
      subscriptionId: created.body.id,
      subscriptionExpirationDateTime: created.body.expirationDateTime,
      changeType: 'updated',
      resource: `Users/${user.props.id}`,
      resourceData: { '@odata.type': '#Microsoft.Graph.User', '@odata.id': `Users/${user.props.id}`, id: user.props.id, organizationId: org.tenant.id },
      clientState: 'a-secret',
      tenantId: org.tenant.id,
    });
  });

  test('groups: a group-reading permission is needed (403 without it), and a user subscription sees no group changes', async () => {
    cleanUp();
    const usersOnly = await appToken(emulator.ctx, org.tenant.id, { roles: ['User.Read.All'] });
    const refused = await graph('POST', '/subscriptions', subscription({ resource: 'groups' }), usersOnly);
    assert.equal(refused.status, 403);
    assert.match(refused.body.error.message, /permission to read groups/);
    const groupReader = await appToken(emulator.ctx, org.tenant.id, { roles: ['GroupMember.Read.All'] });
    assert.equal((await graph('POST', '/subscriptions', subscription({ resource: 'groups', changeType: 'created' }), groupReader)).status, 400);
    assert.equal((await graph('POST', '/subscriptions', subscription({ resource: 'users' }), groupReader)).status, 403, 'a group permission does not read users');
    const created = await graph('POST', '/subscriptions', subscription({ resource: '/groups' }), groupReader);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.resource, 'groups');
    const usersSub = await graph('POST', '/subscriptions', subscription({ clientState: 'users-secret' }));
    assert.equal(usersSub.status, 201);
    const group = emulator.ctx.directory.addGroup(org.tenant, { displayName: 'Quiet' });
    await receiver.waitFor(() => receiver.items().length >= 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(receiver.items().map((i) => [i.subscriptionId, i.resource]), [[created.body.id, `Groups('${group.props.id}')`]], 'only the groups subscriber hears of a group');
    // A token whose group permission is gone cannot answer a reauthorization request.
    assert.equal((await graph('POST', `/subscriptions/${created.body.id}/reauthorize`, undefined, usersOnly)).status, 403);
  });

  test('groups: every change notifies, membership add and remove included: updated, and deleted for a purge', async () => {
    cleanUp();
    const groupReader = await appToken(emulator.ctx, org.tenant.id, { roles: ['GroupMember.Read.All'] });
    const created = await graph('POST', '/subscriptions', subscription({ resource: 'groups' }), groupReader);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const d = emulator.ctx.directory;
    const team = d.addGroup(org.tenant, { displayName: 'Team', groupTypes: ['Unified'] });
    const security = d.addGroup(org.tenant, { displayName: 'Security', members: [org.admin.props.id] });
    d.editGroup(org.tenant, team.props.id, { description: 'The team' });
    d.addGroupMember(org.tenant, team.props.id, org.member.props.id);
    d.removeGroupMember(org.tenant, team.props.id, org.member.props.id);
    d.deleteGroup(org.tenant, team.props.id);
    d.restoreGroup(org.tenant, team.props.id);
    d.deleteGroup(org.tenant, security.props.id);
    await receiver.waitFor(() => receiver.items().length >= 8);
    const seen = receiver.items().map((i) => [i.changeType, objectId(i)]);
    const [t, s] = [team.props.id, security.props.id];
    assert.deepEqual(seen, [['updated', t], ['updated', s], ['updated', t], ['updated', t], ['updated', t], ['updated', t], ['updated', t], ['deleted', s]]);
    assert.deepEqual(receiver.items()[3], {
      subscriptionId: created.body.id,
      subscriptionExpirationDateTime: created.body.expirationDateTime,
      changeType: 'updated',
      resource: `Groups('${t}')`,
      resourceData: { '@odata.type': '#Microsoft.Graph.Group', '@odata.id': `Groups('${t}')`, id: t, organizationId: org.tenant.id },
      clientState: 'a-secret',
      tenantId: org.tenant.id,
    });
    // A user purged for good leaves every group that held them: each such group changed.
    receiver.received.length = 0;
    const leaver = d.addUser(org.tenant, { userPrincipalName: 'leaver@subscribers.com' });
    d.addGroupMember(org.tenant, team.props.id, leaver.props.id);
    await receiver.waitFor(() => receiver.items().length >= 1);
    receiver.received.length = 0;
    d.purgeUser(org.tenant, leaver.props.id);
    await receiver.waitFor(() => receiver.items().length >= 1);
    assert.deepEqual(receiver.items().map((i) => [i.changeType, objectId(i)]), [['updated', t]]);
  });

  test('groups: notifications go through the same faults and retries as users', async () => {
    cleanUp();
    const groupReader = await appToken(emulator.ctx, org.tenant.id, { roles: ['Group.Read.All'] });
    assert.equal((await graph('POST', '/subscriptions', subscription({ resource: 'groups' }), groupReader)).status, 201);
    const sub = emulator.ctx.subscriptions.all()[0]!;
    const group = emulator.ctx.directory.addGroup(org.tenant, { displayName: 'Faulty' });
    await receiver.waitFor(() => sub.stats.delivered === 1);
    await emulator.control('POST', '/faults', { target: 'notification', kind: 'drop', count: 1, tenant: org.tenant.id });
    emulator.ctx.directory.addGroupMember(org.tenant, group.props.id, org.member.props.id);
    await receiver.waitFor(() => sub.stats.dropped === 1);
    receiver.behaviour.status = 500;
    emulator.ctx.directory.removeGroupMember(org.tenant, group.props.id, org.member.props.id);
    await receiver.waitFor(() => sub.stats.failedAttempts >= 2);
    assert.equal(sub.stats.delivered, 1, 'nothing delivered while the receiver fails');
    receiver.behaviour.status = 202;
    await receiver.waitFor(() => sub.stats.delivered === 2);
    assert.deepEqual(receiver.items().map(objectId), [group.props.id, group.props.id], 'the dropped one is gone, the retried one arrived');
  });

  test('a failed or slow (over 3 s) answer is retried with backoff until it succeeds', async () => {
    cleanUp();
    await graph('POST', '/subscriptions', subscription());
    receiver.behaviour.status = 500;
    emulator.ctx.directory.editUser(org.tenant, org.member.props.id, { jobTitle: 'Retry 1' });
    const sub = emulator.ctx.subscriptions.all()[0]!;
    await receiver.waitFor(() => sub.stats.failedAttempts >= 2);
    assert.equal(sub.stats.delivered, 0, 'nothing delivered while the receiver fails');
    receiver.behaviour.status = 202;
    await receiver.waitFor(() => receiver.items().length === 1);

    receiver.received.length = 0;
    receiver.behaviour.delayMs = 3_300;
    const failedBefore = sub.stats.failedAttempts;
    emulator.ctx.directory.editUser(org.tenant, org.member.props.id, { jobTitle: 'Slow' });
    // Graph gives up on the slow answer after 3 s: a failed attempt, then a retry, which is answered at once.
    await receiver.waitFor(() => sub.stats.failedAttempts > failedBefore, 15_000);
    receiver.behaviour.delayMs = 0;
    // The slow answer still arrives (and is recorded) after Graph gave up on it; the retry arrives again.
    await receiver.waitFor(() => sub.stats.delivered >= 2, 15_000);
    assert.ok(sub.stats.failedAttempts > failedBefore, 'the slow answer counted as a failure');
  });

  test('retries stop after four hours on the emulator clock', async () => {
    cleanUp();
    await graph('POST', '/subscriptions', subscription({ expirationDateTime: inMinutes(41_000) }));
    receiver.behaviour.status = 503;
    emulator.ctx.directory.editUser(org.tenant, org.member.props.id, { jobTitle: 'Never' });
    const sub = emulator.ctx.subscriptions.all()[0]!;
    // The four hours count from the first attempt: let it fail before the clock moves on.
    await receiver.waitFor(() => sub.stats.failedAttempts >= 1);
    emulator.ctx.clock.advance(4 * 3600 + 1);
    await receiver.waitFor(() => sub.stats.dropped === 1);
    assert.equal(sub.stats.delivered, 0);
    emulator.ctx.clock.advance(-(4 * 3600 + 1));
  });

  test('injected faults drop or delay deliveries; an expired subscription delivers nothing', async () => {
    cleanUp();
    const made = await graph('POST', '/subscriptions', subscription({ expirationDateTime: inMinutes(30) }));
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const sub = emulator.ctx.subscriptions.all()[0]!;
    await emulator.control('POST', '/faults', { target: 'notification', kind: 'drop', count: 1, tenant: org.tenant.id });
    emulator.ctx.directory.editUser(org.tenant, org.member.props.id, { jobTitle: 'Dropped' });
    await receiver.waitFor(() => sub.stats.dropped === 1);
    // The delayed delivery is overtaken by one sent after it: the order shows the delay, not a clock.
    const { id: delayId } = await emulator.control<{ id: string }>('POST', '/faults', { target: 'notification', kind: 'delay', delayMs: 5000, count: 1 });
    emulator.ctx.directory.editUser(org.tenant, org.member.props.id, { jobTitle: 'Delayed' });
    await receiver.waitFor(() => emulator.ctx.faults.list().find((f) => f.id === delayId)?.hits === 1);
    emulator.ctx.directory.editUser(org.tenant, org.admin.props.id, { jobTitle: 'Overtaking' });
    await receiver.waitFor(() => receiver.items().length === 2);
    assert.deepEqual(receiver.items().map((item) => item.resource), [`Users/${org.admin.props.id}`, `Users/${org.member.props.id}`]);

    emulator.ctx.clock.advance(31 * 60);
    emulator.ctx.directory.editUser(org.tenant, org.member.props.id, { jobTitle: 'Too late' });
    // A live subscription made after it gets the next change: once that has arrived, the expired one has had its turn.
    const control = await graph('POST', '/subscriptions', subscription({ expirationDateTime: inMinutes(30) }));
    assert.equal(control.status, 201, JSON.stringify(control.body));
    emulator.ctx.directory.editUser(org.tenant, org.member.props.id, { jobTitle: 'Control' });
    await receiver.waitFor(() => receiver.items().some((item) => item.subscriptionId === control.body.id));
    assert.equal(receiver.items().filter((item) => item.subscriptionId === sub.id).length, 2, 'nothing after expiry');
    assert.equal((await graph('GET', `/subscriptions/${sub.id}`)).status, 404);
    emulator.ctx.clock.advance(-31 * 60);
  });

  test('reauthorizationRequired on command reaches the lifecycle URL and pauses deliveries until reauthorized', async () => {
    cleanUp();
    const created = await graph('POST', '/subscriptions', subscription());
    const sent = await emulator.control<{ delivered: boolean }>('POST', `/subscriptions/${created.body.id}/lifecycle`, { event: 'reauthorizationRequired' });
    assert.equal(sent.delivered, true);
    const event = receiver.received.find((r) => r.path === '/lifecycle')!.body.value[0]!;
    assert.equal(event.lifecycleEvent, 'reauthorizationRequired');
    assert.equal(event.subscriptionId, created.body.id);
    assert.equal(event.clientState, 'a-secret');
    receiver.received.length = 0;
    emulator.ctx.directory.editUser(org.tenant, org.member.props.id, { jobTitle: 'Paused' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(receiver.items().length, 0);
    assert.equal((await graph('POST', `/subscriptions/${created.body.id}/reauthorize`)).status, 204);
    emulator.ctx.directory.editUser(org.tenant, org.member.props.id, { jobTitle: 'Flowing' });
    await receiver.waitFor(() => receiver.items().length === 1);
  });

  test("another tenant's token sees none of the subscriptions", async () => {
    cleanUp();
    const created = await graph('POST', '/subscriptions', subscription());
    const other = addOrg(emulator.ctx, 'Others', 'others.com');
    consent(emulator.ctx, other);
    const foreign = await appToken(emulator.ctx, other.tenant.id);
    assert.deepEqual((await graph('GET', '/subscriptions', undefined, foreign)).body.value, []);
    assert.equal((await graph('DELETE', `/subscriptions/${created.body.id}`, undefined, foreign)).status, 404);
    assert.equal((await graph('PATCH', `/subscriptions/${created.body.id}`, { expirationDateTime: inMinutes(90) }, foreign)).status, 404);
  });

  test('CLI verbs: subscription list, subscription lifecycle and notification faults', async () => {
    cleanUp();
    const created = await graph('POST', '/subscriptions', subscription());
    const connection = ['--control-url', emulator.urls.control, '--control-token', emulator.ctx.controlToken];
    const listed = (await executeVerb(['subscription', 'list', '--tenant', 'subscribers.com', ...connection])) as { subscriptions: { id: string; tenantId: string }[] };
    assert.deepEqual(listed.subscriptions.map((s) => [s.id, s.tenantId]), [[created.body.id, org.tenant.id]]);
    const sent = (await executeVerb(['subscription', 'lifecycle', created.body.id, ...connection])) as { delivered: boolean };
    assert.equal(sent.delivered, true);
    await assert.rejects(executeVerb(['subscription', 'lifecycle', created.body.id, '--event', 'missed', ...connection]), UsageError);
    const fault = (await executeVerb(['fault', 'add', '--target', 'notification', '--kind', 'drop', '--count', '1', ...connection])) as { target: string };
    assert.equal(fault.target, 'notification');
    await assert.rejects(emulator.control('POST', '/faults', { target: 'notification', kind: 'throttle' }), /delay or drop/);
  });
});
