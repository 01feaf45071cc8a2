import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import type { Tenant } from '../../src/emulator/model.ts';
import { DeliveryWorker } from '../../src/events/delivery.ts';
import type { AuditActor } from '../../src/store/audit.ts';
import { ApiKeys } from '../../src/tenants/api-keys.ts';
import { TenantLifecycle } from '../../src/tenants/lifecycle.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addSignedUpTenant } from '../helpers/mirror.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { startAnsweringReceiver } from '../helpers/webhook-receiver.ts';
import { ENGINES } from '../helpers/stores.ts';

const CLI: AuditActor = { kind: 'cli', id: 'cli', name: 'test', source: 'cli' };
type Body = Record<string, unknown> & { data?: Record<string, unknown>[]; next_cursor?: string | null };

for (const engine of ENGINES) {
  describe(`/api/v1 events and webhooks (${engine})`, () => {
    let emulator: TestEmulator;
    let roster: TestRoster;
    let a: Tenant;
    let b: Tenant;
    let receiver: Awaited<ReturnType<typeof startAnsweringReceiver>>;
    let receiverUrl: string;
    const secrets: Record<string, string> = {};

    async function call(method: string, path: string, key: string | undefined, body?: unknown): Promise<{ status: number; type: string; body: Body; text: string }> {
      const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      const response = await fetch(`${roster.url}/api/v1${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      const text = await response.text();
      return { status: response.status, type: response.headers.get('content-type') ?? '', body: text ? (JSON.parse(text) as Body) : {}, text };
    }
    async function problem(answer: Promise<{ status: number; type: string; body: Body; text: string }>, status: number, field?: string) {
      const got = await answer;
      assert.equal(got.status, status, got.text.slice(0, 300));
      assert.match(got.type, /^application\/problem\+json/);
      if (field) assert.equal(got.body.field, field, got.text);
      return got;
    }

    before(async () => {
      emulator = await startTestEmulator();
      roster = await startTestRoster({ engine, emulator });
      const keys = new ApiKeys(roster.db.store);
      for (const [name, scopes, tenantId] of [
        ['events', ['events:read'], null],
        ['events of a', ['events:read', 'webhooks:manage'], 'a'],
        ['hooks', ['webhooks:manage'], null],
        ['directory', ['directory:read'], null],
      ] as const) {
        a ??= await addSignedUpTenant(emulator, roster.db.store, 30, (i, domain) => ({ userPrincipalName: `a${i}@${domain}`, displayName: `A ${i}` }));
        b ??= await addSignedUpTenant(emulator, roster.db.store, 12, (i, domain) => ({ userPrincipalName: `b${i}@${domain}`, displayName: `B ${i}` }));
        secrets[name] = (await keys.create({ name, scopes: [...scopes], tenantId: tenantId === 'a' ? a.id : null }, CLI)).secret;
      }
      assert.equal((await roster.scheduler.syncNow(a.id))?.status, 'succeeded');
      assert.equal((await roster.scheduler.syncNow(b.id))?.status, 'succeeded');
      await new TenantLifecycle(roster.db.store).suspend(b.id, 'unpaid', Date.now());
      receiver = await startAnsweringReceiver(500, 'not today');
      receiverUrl = receiver.url;
    });
    after(async () => {
      await receiver?.close();
      await roster?.close();
      await emulator?.close();
    });

    it('the feed: every event once, in order, page by page from a cursor; polling at the end returns nothing new with the same cursor; filters', async () => {
      const seen: Record<string, unknown>[] = [];
      let cursor: string | null | undefined;
      for (let i = 0; i < 20; i++) {
        const page = await call('GET', `/events?limit=7${cursor ? `&after=${cursor}` : ''}`, secrets.events);
        assert.equal(page.status, 200, page.text);
        seen.push(...page.body.data!);
        if (page.body.data!.length === 0) {
          assert.equal(page.body.next_cursor, cursor, 'an empty page keeps the cursor to poll with');
          break;
        }
        cursor = page.body.next_cursor;
      }
      assert.equal(seen.length, 30 + 12 + 1);
      assert.equal(new Set(seen.map((e) => e.id)).size, seen.length);
      assert.deepEqual(seen.at(-1)!.type, 'tenant.suspended');
      assert.match(String(seen[0]!.created_at), /^\d{4}-\d\d-\d\dT/);
      await new TenantLifecycle(roster.db.store).resume(b.id, Date.now());
      const next = await call('GET', `/events?after=${cursor}`, secrets.events);
      assert.deepEqual(next.body.data!.map((e) => e.type), ['tenant.resumed'], 'a new event shows up after the cursor');

      const suspended = await call('GET', '/events?types=tenant.suspended,tenant.resumed', secrets.events);
      assert.deepEqual(suspended.body.data!.map((e) => e.type), ['tenant.suspended', 'tenant.resumed']);
      const ofB = await call('GET', `/events?tenant_id=${b.id}&limit=1000`, secrets.events);
      assert.equal(ofB.body.data!.length, 14);
      assert.ok(ofB.body.data!.every((e) => e.tenant_id === b.id));
    });

    it('400 problems name the field; 401 without a key; 403 without events:read', async () => {
      await problem(call('GET', '/events?types=user.created,user.exploded', secrets.events), 400, 'types');
      await problem(call('GET', '/events?after=not-a-cursor', secrets.events), 400, 'after');
      await problem(call('GET', `/events?after=${Buffer.from(JSON.stringify(['users:x', '5'])).toString('base64url')}`, secrets.events), 400, 'after');
      await problem(call('GET', `/events?after=${Buffer.from(JSON.stringify(['events', 'abc'])).toString('base64url')}`, secrets.events), 400, 'after');
      await problem(call('GET', '/events?limit=0', secrets.events), 400, 'limit');
      await problem(call('GET', '/events?limit=1001', secrets.events), 400, 'limit');
      await problem(call('GET', '/events?tenant_id=nope', secrets.events), 400, 'tenant_id');
      await problem(call('GET', '/events?colour=blue', secrets.events), 400);
      await problem(call('GET', '/events', undefined), 401);
      await problem(call('GET', '/events', secrets.directory), 403);
      await problem(call('GET', '/webhook-endpoints', secrets.events), 403);
    });

    it('rules 32 and 35: endpoints through the API: the secret in the create and rotate answers only, field-named refusals, deliveries with their attempts, replay, every change audited with the key', async () => {
      await problem(call('POST', '/webhook-endpoints', secrets.hooks, { url: 'http://example.com/hooks' }), 400, 'url');
      await problem(call('POST', '/webhook-endpoints', secrets.hooks, { url: 'https://169.254.169.254/latest/meta-data/' }), 400, 'url');
      await problem(call('POST', '/webhook-endpoints', secrets.hooks, { url: receiverUrl, event_types: ['user.exploded'] }), 400, 'event_types.0');
      await problem(call('POST', '/webhook-endpoints', secrets.hooks, { url: receiverUrl, colour: 'blue' }), 400, 'colour');
      const created = await call('POST', '/webhook-endpoints', secrets.hooks, { url: receiverUrl, event_types: ['tenant.suspended'], tenant_id: b.id });
      assert.equal(created.status, 201, created.text);
      const secret = String(created.body.secret);
      assert.match(secret, /^whsec_/);
      const id = String(created.body.id);
      const shown = await call('GET', `/webhook-endpoints/${id}`, secrets.hooks);
      assert.equal(shown.body.url, receiverUrl);
      assert.ok(!shown.text.includes(secret.slice(6)));
      assert.ok(!(await call('GET', '/webhook-endpoints', secrets.hooks)).text.includes(secret.slice(6)));

      await new TenantLifecycle(roster.db.store).suspend(b.id, 'again', Date.now());
      const sender = new DeliveryWorker({ store: roster.db.store, schedule: [0], timeoutMs: 2000 });
      await sender.drain();
      const deliveries = await call('GET', `/webhook-endpoints/${id}/deliveries`, secrets.hooks);
      assert.equal(deliveries.status, 200, deliveries.text);
      const [delivery] = deliveries.body.data!;
      assert.equal(delivery!.status, 'failed');
      assert.equal(delivery!.event_type, 'tenant.suspended');
      assert.deepEqual((delivery!.attempt_log as { status_code: number; response_excerpt: string }[]).map((x) => [x.status_code, x.response_excerpt]), [[500, 'not today']]);
      const replay = await call('POST', `/webhook-endpoints/${id}/deliveries/${String(delivery!.id)}/replay`, secrets.hooks);
      assert.equal(replay.status, 202, replay.text);
      await problem(call('POST', `/webhook-endpoints/${id}/deliveries/${String(delivery!.id)}/replay`, secrets.hooks), 400, 'delivery');
      await sender.stop();

      const rotated = await call('POST', `/webhook-endpoints/${id}/rotate-secret`, secrets.hooks);
      assert.equal(rotated.status, 200, rotated.text);
      assert.notEqual(rotated.body.secret, secret);
      assert.ok(rotated.body.previous_secret_expires_at);
      assert.equal((await call('POST', `/webhook-endpoints/${id}/disable`, secrets.hooks)).body.enabled, false);
      assert.equal((await call('POST', `/webhook-endpoints/${id}/enable`, secrets.hooks)).body.enabled, true);
      assert.equal((await call('DELETE', `/webhook-endpoints/${id}`, secrets.hooks)).status, 204);
      await problem(call('GET', `/webhook-endpoints/${id}`, secrets.hooks), 404);

      const audit = await roster.db.store.db.selectFrom('audit_log').select(['action', 'actor_kind', 'target']).where('target', '=', id).orderBy('id').execute();
      assert.deepEqual(audit.map((e) => e.action), ['webhook.create', 'webhook.replay', 'webhook.rotate_secret', 'webhook.disable', 'webhook.enable', 'webhook.delete']);
      assert.ok(audit.every((e) => e.actor_kind === 'api_key'));
      // The library verifies what Roster signs with the secret the API returned.
      const signer = new Webhook(secret);
      assert.ok(signer.sign('evt_x', new Date(), '{}').startsWith('v1,'));
    });

    it("rule 31: a key limited to one tenant sees only that tenant's events and endpoints; every route with another tenant's is 404", async () => {
      const limited = secrets['events of a']!;
      const feed = await call('GET', '/events?limit=1000', limited);
      assert.ok(feed.body.data!.length >= 30);
      assert.ok(feed.body.data!.every((e) => e.tenant_id === a.id));
      await problem(call('GET', `/events?tenant_id=${b.id}`, limited), 404);
      await problem(call('POST', '/webhook-endpoints', limited, { url: receiverUrl, tenant_id: b.id }), 404);
      const own = await call('POST', '/webhook-endpoints', limited, { url: receiverUrl });
      assert.equal(own.status, 201);
      assert.equal(own.body.tenant_id, a.id, "a limited key's endpoint is limited to its tenant");
      const foreign = await call('POST', '/webhook-endpoints', secrets.hooks, { url: receiverUrl, tenant_id: b.id });
      const foreignId = String(foreign.body.id);
      const unlimited = await call('POST', '/webhook-endpoints', secrets.hooks, { url: receiverUrl });
      for (const id of [foreignId, String(unlimited.body.id)]) {
        for (const [method, path] of [
          ['GET', ''],
          ['POST', '/enable'],
          ['POST', '/disable'],
          ['POST', '/rotate-secret'],
          ['GET', '/deliveries'],
          ['POST', '/deliveries/msg_AAAAAAAAAAAAAAAAAAAAAA/replay'],
          ['DELETE', ''],
        ] as const) {
          const answer = await problem(call(method, `/webhook-endpoints/${id}${path}`, limited), 404);
          assert.ok(!answer.text.includes(receiverUrl));
        }
      }
      const listed = await call('GET', '/webhook-endpoints', limited);
      assert.deepEqual(listed.body.data!.map((e) => e.id), [own.body.id]);
      assert.equal((await call('GET', `/webhook-endpoints/${foreignId}`, secrets.hooks)).body.enabled, true, 'untouched');
    });
  });
}
