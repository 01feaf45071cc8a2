import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Tenant } from '../../src/emulator/model.ts';
import { AuditRepository } from '../../src/store/audit.ts';
import type { AuditActor } from '../../src/store/audit.ts';
import { ApiKeys } from '../../src/tenants/api-keys.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addSignedUpTenant } from '../helpers/mirror.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';

const CLI: AuditActor = { kind: 'cli', id: 'cli', name: 'test', source: 'cli' };
const FOREIGN_USER = '00000000-0000-4000-8000-000000000001';

interface Answer {
  status: number;
  type: string;
  headers: Headers;
  body: Record<string, unknown> & { data?: Record<string, unknown>[]; next_cursor?: string | null };
  text: string;
}

function client(roster: TestRoster) {
  return async (method: string, path: string, key?: string, body?: unknown): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (key !== undefined) headers.authorization = `Bearer ${key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${roster.url}/api/v1${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await response.text();
    return { status: response.status, type: response.headers.get('content-type') ?? '', headers: response.headers, body: text ? (JSON.parse(text) as Answer['body']) : {}, text };
  };
}

function assertProblem(answer: Answer, status: number, field?: string): void {
  assert.equal(answer.status, status, answer.text.slice(0, 300));
  assert.match(answer.type, /^application\/problem\+json/);
  assert.equal(answer.body.status, status);
  assert.equal(typeof answer.body.title, 'string');
  assert.equal(typeof answer.body.detail, 'string');
  assert.match(String(answer.body.type), /^urn:roster:problem:/);
  assert.equal(answer.body.data, undefined, 'a problem carries no data');
  if (field !== undefined) assert.equal(answer.body.field, field, `the problem names ${field}: ${answer.text}`);
}

/** A signed-up tenant of `count` users, synced into Roster. */
async function syncedTenant(roster: TestRoster, count: number): Promise<Tenant> {
  const tenant = await addSignedUpTenant(roster.emulator, roster.db.store, count, (i, domain) => ({
    userPrincipalName: `p${String(i).padStart(3, '0')}@${domain}`,
    displayName: `Person ${i}`,
    department: i % 2 === 0 ? 'Sales' : 'Legal',
    accountEnabled: i % 5 !== 4,
  }));
  assert.equal((await roster.scheduler.syncNow(tenant.id))?.status, 'succeeded');
  return tenant;
}

for (const engine of ENGINES) {
  describe(`/api/v1 (${engine})`, () => {
    let emulator: TestEmulator;
    let roster: TestRoster;
    let call: ReturnType<typeof client>;
    let keys: ApiKeys;
    let a: Tenant;
    let b: Tenant;
    const secrets: Record<string, string> = {};
    const ids: Record<string, string> = {};

    before(async () => {
      emulator = await startTestEmulator();
      roster = await startTestRoster({ engine, emulator });
      call = client(roster);
      keys = new ApiKeys(roster.db.store);
      a = await syncedTenant(roster, 25);
      b = await syncedTenant(roster, 5);
      const make = async (name: string, scopes: string[], tenantId: string | null = null) => {
        const { key, secret } = await keys.create({ name, scopes, tenantId }, CLI);
        secrets[name] = secret;
        ids[name] = key.id;
      };
      await make('reader', ['directory:read']);
      await make('reader of a', ['directory:read'], a.id);
      await make('manager of a', ['directory:read', 'tenants:manage'], a.id);
      await make('manager', ['directory:read', 'tenants:manage']);
      await make('events only', ['events:read']);
      await make('revoked', ['directory:read', 'tenants:manage']);
      assert.ok(await keys.revoke(ids.revoked!, CLI));
    });
    after(async () => {
      await roster?.close();
      await emulator?.close();
    });

    it('rule 30: keys carry a recognisable prefix and 256 random bits, and only their SHA-256 is stored', async () => {
      for (const secret of Object.values(secrets)) assert.match(secret, /^roster_sk_[A-Za-z0-9_-]{43}$/);
      assert.equal(new Set(Object.values(secrets)).size, Object.keys(secrets).length);
      const rows = await roster.db.store.db.selectFrom('api_keys').selectAll().execute();
      for (const [name, secret] of Object.entries(secrets)) {
        const row = rows.find((r) => r.id === ids[name])!;
        assert.equal(row.key_hash, createHash('sha256').update(secret).digest('base64url'));
        assert.ok(!JSON.stringify(row).includes(secret.slice(10)), 'the secret itself is stored nowhere');
        assert.equal(row.prefix, secret.slice(0, 16), 'only a short prefix is kept for lists');
      }
    });

    it('rule 30: a missing, unknown, truncated, malformed or revoked key gets 401 and sees nothing', async () => {
      const good = secrets.reader!;
      const forged = [
        undefined,
        `roster_sk_${'A'.repeat(43)}`,
        good.slice(0, -1),
        good.slice(0, 20),
        `${good}x`,
        good.toUpperCase(),
        good.replace('roster_sk_', 'roster_pk_'),
        secrets.revoked!,
        `${good} ${good}`,
      ];
      for (const key of forged) {
        for (const path of ['/tenants', `/tenants/${a.id}`, `/tenants/${a.id}/users`]) {
          const answer = await call('GET', path, key);
          assertProblem(answer, 401);
          assert.match(answer.headers.get('www-authenticate') ?? '', /^Bearer/);
          assert.ok(!answer.text.includes(a.id), 'nothing of the tenant shows');
        }
      }
      for (const header of ['Basic abc', `Token ${good}`, good, 'Bearer']) {
        const response = await fetch(`${roster.url}/api/v1/tenants`, { headers: { authorization: header } });
        assert.equal(response.status, 401, header.slice(0, 12));
      }
      // The revoked key is refused for changes too, and changes nothing.
      assertProblem(await call('POST', `/tenants/${a.id}/suspend`, secrets.revoked!), 401);
      assert.equal((await call('GET', `/tenants/${a.id}`, good)).body.state, 'active');
    });

    it('rule 30: a key without the scope gets 403 and sees nothing; revocation takes effect at once', async () => {
      for (const path of ['/tenants', `/tenants/${a.id}`, `/tenants/${a.id}/users`, `/tenants/${a.id}/users/${FOREIGN_USER}`]) {
        const answer = await call('GET', path, secrets['events only']!);
        assertProblem(answer, 403);
        assert.equal(answer.body.code, 'missing_scope');
      }
      for (const path of [`/tenants/${a.id}/suspend`, `/tenants/${a.id}/resume`, `/tenants/${a.id}/sync`, `/tenants/${a.id}/held-deletion/confirm`, `/tenants/${a.id}/held-deletion/discard`]) {
        assertProblem(await call('POST', path, secrets.reader!), 403);
      }
      assertProblem(await call('GET', '/held-deletions', secrets.reader!), 403);
      const { secret, key } = await keys.create({ name: 'short-lived', scopes: ['directory:read'] }, CLI);
      assert.equal((await call('GET', '/tenants', secret)).status, 200);
      await keys.revoke(key.id, CLI);
      assertProblem(await call('GET', '/tenants', secret), 401);
    });

    it('rule 30: no key ever reaches the logs, even on failures', async () => {
      await call('GET', '/tenants', secrets.reader!);
      await call('GET', '/tenants?limit=0', secrets.reader!);
      await call('GET', '/tenants', `${secrets.reader!}x`);
      await call('GET', '/tenants', secrets.revoked!);
      const logs = roster.logs.join('');
      assert.ok(logs.includes('/api/v1/tenants'), 'the API requests were logged');
      for (const secret of Object.values(secrets)) assert.ok(!logs.includes(secret.slice(10)), 'no key in the logs');
      assert.doesNotMatch(logs, /roster_sk_/);
      assert.doesNotMatch(logs, /"authorization"/i);
    });

    it('rule 31: a key limited to one tenant gets 404 for every route with another tenant, and lists only its own', async () => {
      const foreign = [
        ['GET', `/tenants/${b.id}`],
        ['GET', `/tenants/${b.id}/users`],
        ['GET', `/tenants/${b.id}/users/${b.users[0]!.props.id}`],
        ['POST', `/tenants/${b.id}/suspend`],
        ['POST', `/tenants/${b.id}/resume`],
        ['POST', `/tenants/${b.id}/sync`],
        ['POST', `/tenants/${b.id}/held-deletion/confirm`],
        ['POST', `/tenants/${b.id}/held-deletion/discard`],
      ] as const;
      for (const [method, path] of foreign) {
        const answer = await call(method, path, secrets['manager of a']!);
        assertProblem(answer, 404);
        assert.ok(!answer.text.includes(b.users[0]!.props.id), 'nothing of the other tenant shows');
        // The same answer as for a tenant that does not exist: nothing tells the two apart.
        const missing = await call(method, path.replace(b.id, FOREIGN_USER), secrets['manager of a']!);
        assert.equal(missing.status, 404);
        assert.equal(missing.body.detail, answer.body.detail);
      }
      assert.equal((await call('GET', `/tenants/${b.id}`, secrets.manager!)).body.state, 'active', 'the other tenant was not suspended');
      const listed = await call('GET', '/tenants', secrets['reader of a']!);
      assert.deepEqual(listed.body.data!.map((t) => t.id), [a.id]);
      const all = await call('GET', '/tenants', secrets.reader!);
      assert.deepEqual(new Set(all.body.data!.map((t) => t.id)), new Set([a.id, b.id]));
      // A user id of another tenant under the key's own tenant is not found either.
      assertProblem(await call('GET', `/tenants/${a.id}/users/${b.users[0]!.props.id}`, secrets['reader of a']!), 404);
    });

    it('lists: keyset pages of users in a stable order, every user once, with filters', async () => {
      const seen: string[] = [];
      let after: string | null | undefined;
      let pages = 0;
      do {
        const answer = await call('GET', `/tenants/${a.id}/users?limit=10${after ? `&after=${after}` : ''}`, secrets.reader!);
        assert.equal(answer.status, 200, answer.text);
        assert.ok(answer.body.data!.length <= 10);
        seen.push(...answer.body.data!.map((u) => String(u.id)));
        after = answer.body.next_cursor;
        pages++;
      } while (after);
      assert.equal(pages, 3);
      assert.equal(seen.length, 25);
      assert.deepEqual(seen, [...seen].sort(), 'in id order');
      assert.deepEqual(new Set(seen), new Set(a.users.map((u) => u.props.id)));

      const user = (await call('GET', `/tenants/${a.id}/users/${seen[0]}`, secrets.reader!)).body;
      assert.equal(user.id, seen[0]);
      assert.equal(user.tenant_id, a.id);
      assert.match(String(user.updated_at), /^\d{4}-\d{2}-\d{2}T/);

      const disabled = await call('GET', `/tenants/${a.id}/users?state=disabled&limit=1000`, secrets.reader!);
      assert.equal(disabled.body.data!.length, 5);
      assert.ok(disabled.body.data!.every((u) => u.state === 'disabled' && u.account_enabled === false));
      assert.equal(disabled.body.next_cursor, null);
      const legal = await call('GET', `/tenants/${a.id}/users?search=LEGAL`, secrets.reader!);
      assert.equal(legal.body.data!.length, 12);
      const future = await call('GET', `/tenants/${a.id}/users?updated_since=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`, secrets.reader!);
      assert.deepEqual(future.body.data, []);
      const past = await call('GET', `/tenants/${a.id}/users?updated_since=2000-01-01T00:00:00Z&limit=1000`, secrets.reader!);
      assert.equal(past.body.data!.length, 25);
      const exact = await call('GET', `/tenants/${a.id}/users?limit=25`, secrets.reader!);
      assert.equal(exact.body.next_cursor, null, 'a page that ends the list says so');
    });

    it('400 problems name the field: limit, after, state, updated_since, unknown parameters, ids', async () => {
      const bad: [string, string][] = [
        [`/tenants/${a.id}/users?limit=0`, 'limit'],
        [`/tenants/${a.id}/users?limit=1001`, 'limit'],
        [`/tenants/${a.id}/users?limit=ten`, 'limit'],
        [`/tenants/${a.id}/users?limit=1.5`, 'limit'],
        [`/tenants/${a.id}/users?after=not*a*cursor`, 'after'],
        [`/tenants/${a.id}/users?after=${Buffer.from('["users:x","y"]').toString('base64url')}`, 'after'],
        [`/tenants/${a.id}/users?state=gone`, 'state'],
        [`/tenants/${a.id}/users?updated_since=yesterday`, 'updated_since'],
        [`/tenants/${a.id}/users?updated_since=2026-02-30T00:00:00Z`, 'updated_since'],
        [`/tenants/${a.id}/users?sort=name`, 'sort'],
        ['/tenants/not-a-guid', 'tenant_id'],
        [`/tenants/${a.id}/users/42`, 'user_id'],
        ['/tenants?limit=-1', 'limit'],
      ];
      for (const [path, field] of bad) {
        const answer = await call('GET', path, secrets.reader!);
        assert.equal(answer.status, 400, path);
        assertProblem(answer, 400, field);
      }
      // A cursor of another list (here: the tenants list) is not accepted for users.
      const tenantsPage = await call('GET', '/tenants?limit=1', secrets.reader!);
      assert.ok(tenantsPage.body.next_cursor);
      assertProblem(await call('GET', `/tenants/${a.id}/users?after=${tenantsPage.body.next_cursor}`, secrets.reader!), 400, 'after');
      assertProblem(await call('POST', `/tenants/${a.id}/sync`, secrets.manager!, { full: 'yes' }), 400, 'full');
      assertProblem(await call('POST', `/tenants/${a.id}/sync`, secrets.manager!, { everything: true }), 400, 'everything');
      const unknownRoute = await call('GET', '/nothing-here', secrets.reader!);
      assertProblem(unknownRoute, 404);
    });

    it('rule 35: operator actions through the API have the console outcome and an audit entry with the key, the action and the address', async () => {
      const manage = secrets['manager of a']!;
      const suspended = await call('POST', `/tenants/${a.id}/suspend`, manage);
      assert.equal(suspended.status, 200, suspended.text);
      assert.equal(suspended.body.state, 'suspended');
      assert.match(String(suspended.body.state_reason), /suspended by an operator/);
      const again = await call('POST', `/tenants/${a.id}/suspend`, manage);
      assertProblem(again, 409);
      assertProblem(await call('POST', `/tenants/${a.id}/sync`, manage), 409);
      const resumed = await call('POST', `/tenants/${a.id}/resume`, manage);
      assert.equal(resumed.body.state, 'active');
      const requested = await call('POST', `/tenants/${a.id}/sync`, manage, { full: true });
      assert.equal(requested.status, 202);
      assertProblem(await call('POST', `/tenants/${a.id}/held-deletion/confirm`, manage), 409);
      const entries = await new AuditRepository(roster.db.store.db).page({ actorId: ids['manager of a']! }, { limit: 10 });
      assert.deepEqual(entries.map((e) => e.action).reverse(), ['tenant.suspend', 'tenant.resume', 'tenant.sync'], 'refused calls leave no entry');
      for (const entry of entries) {
        assert.equal(entry.tenantId, a.id);
        assert.deepEqual(entry.actor, { kind: 'api_key', id: ids['manager of a'], name: 'manager of a', source: '127.0.0.1' });
      }
      assert.deepEqual(entries[0]!.detail, { full: true });
      // Key creation and revocation are audited too (the CLI made them here).
      const keyEntries = await new AuditRepository(roster.db.store.db).page({ actorId: 'cli' }, { limit: 100 });
      assert.ok(keyEntries.some((e) => e.action === 'api_key.revoke' && e.target === ids.revoked));
      assert.ok(keyEntries.some((e) => e.action === 'api_key.create' && e.target === ids.reader));
    });

    it('held deletions: listed and decided through the API, limited to the key\'s tenant', async () => {
      const held = await syncedTenant(roster, 10);
      for (const user of held.users.slice(0, 6)) emulator.ctx.directory.purgeUser(held, user.props.id);
      assert.equal((await roster.scheduler.syncNow(held.id, { full: true }))?.status, 'held');
      const listed = await call('GET', '/held-deletions', secrets.manager!);
      assert.deepEqual(listed.body.data!.map((h) => h.tenant_id), [held.id]);
      assert.deepEqual((await call('GET', '/held-deletions', secrets['manager of a']!)).body.data, [], 'another tenant\'s hold is not listed');
      const confirmed = await call('POST', `/tenants/${held.id}/held-deletion/confirm`, secrets.manager!);
      assert.equal(confirmed.status, 200, confirmed.text);
      assert.deepEqual(confirmed.body, { decision: 'confirm', removed: 6 });
      assert.deepEqual((await call('GET', '/held-deletions', secrets.manager!)).body.data, []);
      const users = await call('GET', `/tenants/${held.id}/users`, secrets.reader!);
      assert.equal(users.body.data!.length, 4);
      const [entry] = await new AuditRepository(roster.db.store.db).page({ tenantId: held.id, action: 'held.confirm' }, { limit: 1 });
      assert.deepEqual(entry!.detail, { objects: 'users', removed: 6 });
    });

    it('groups: a tenant\'s groups, a group\'s members direct and transitive, a user\'s groups; rule 31 for each route', async () => {
      const org = await addSignedUpTenant(emulator, roster.db.store, 4, (i, domain) => ({ userPrincipalName: `g${i}@${domain}`, displayName: `G ${i}` }));
      const [u0, u1, u2, u3] = org.users.map((u) => u.props.id) as [string, string, string, string];
      const low = emulator.ctx.directory.addGroup(org, { displayName: 'Low', securityEnabled: true, members: [u0, u1] }).props.id;
      const top = emulator.ctx.directory.addGroup(org, { displayName: 'Top', securityEnabled: true, members: [low, u2] }).props.id;
      assert.equal((await roster.scheduler.syncNow(org.id))?.status, 'succeeded');
      const key = secrets.reader!;
      const groups = await call('GET', `/tenants/${org.id}/groups?limit=1`, key);
      assert.equal(groups.status, 200, groups.text.slice(0, 300));
      assert.equal(groups.body.data!.length, 1);
      const second = await call('GET', `/tenants/${org.id}/groups?limit=1&after=${groups.body.next_cursor}`, key);
      assert.deepEqual([...groups.body.data!, ...second.body.data!].map((g) => g.display_name), ['Low', 'Top']);
      assert.equal(second.body.next_cursor, null);
      assert.equal((await call('GET', `/tenants/${org.id}/groups/${top}`, key)).body.member_count, 2);
      const ids = (answer: Answer) => answer.body.data!.map((m) => m.id).sort();
      assert.deepEqual(ids(await call('GET', `/tenants/${org.id}/groups/${top}/members`, key)), [low, u2].sort());
      assert.deepEqual(ids(await call('GET', `/tenants/${org.id}/groups/${top}/members?transitive=true`, key)), [low, u0, u1, u2].sort());
      assert.deepEqual(ids(await call('GET', `/tenants/${org.id}/groups/${top}/members?transitive=true&type=user`, key)), [u0, u1, u2].sort());
      assert.deepEqual(ids(await call('GET', `/tenants/${org.id}/users/${u0}/groups`, key)), [low]);
      assert.deepEqual(ids(await call('GET', `/tenants/${org.id}/users/${u0}/groups?transitive=true`, key)), [low, top].sort());
      assert.deepEqual(ids(await call('GET', `/tenants/${org.id}/users/${u3}/groups?transitive=true`, key)), []);
      assertProblem(await call('GET', `/tenants/${org.id}/groups/${top}/members?transitive=maybe`, key), 400, 'transitive');
      assertProblem(await call('GET', `/tenants/${org.id}/groups?kind=secret`, key), 400, 'kind');
      assertProblem(await call('GET', `/tenants/${org.id}/groups/${FOREIGN_USER}`, key), 404);
      // Rule 31: a key limited to another tenant sees none of it, and a group of this tenant under the key's own tenant is not found either.
      for (const path of [`/tenants/${org.id}/groups`, `/tenants/${org.id}/groups/${top}`, `/tenants/${org.id}/groups/${top}/members?transitive=true`, `/tenants/${org.id}/users/${u0}/groups`]) {
        const answer = await call('GET', path, secrets['reader of a']!);
        assertProblem(answer, 404);
        assert.ok(!answer.text.includes(u0));
      }
      assertProblem(await call('GET', `/tenants/${a.id}/groups/${top}/members`, secrets['reader of a']!), 404);
      assertProblem(await call('GET', `/tenants/${a.id}/users/${u0}/groups`, secrets['reader of a']!), 404);
      assertProblem(await call('GET', `/tenants/${org.id}/groups`, secrets['events only']!), 403);
    });

    it('rule 35: the audit log cannot be edited: no repository method changes it and the database refuses it', async () => {
      const methods = Object.getOwnPropertyNames(AuditRepository.prototype).filter((m) => m !== 'constructor');
      assert.deepEqual(methods.sort(), ['page', 'record']);
      const db = roster.db.store.db;
      await assert.rejects(db.updateTable('audit_log').set({ action: 'nothing happened' }).execute(), /append-only/);
      await assert.rejects(db.deleteFrom('audit_log').execute(), /append-only/);
      assert.ok((await new AuditRepository(db).page({}, { limit: 1 })).length === 1, 'the entries are still there');
    });

    it('keys record their last use at most once a minute', async () => {
      const { secret, key } = await keys.create({ name: 'usage', scopes: ['directory:read'] }, CLI);
      assert.equal((await keys.get(key.id))!.lastUsedAt, null);
      await call('GET', '/tenants', secret);
      const first = (await keys.get(key.id))!.lastUsedAt;
      assert.ok(first !== null);
      await new Promise((resolve) => setTimeout(resolve, 5));
      await call('GET', '/tenants', secret);
      assert.equal((await keys.get(key.id))!.lastUsedAt, first);
    });

    it('rate limit: past the per-key limit a key gets 429 with Retry-After; other keys are not affected', async () => {
      const limited = await startTestRoster({ engine, emulator, env: { API_RATE_LIMIT_PER_MINUTE: '3' } });
      try {
        const limitedKeys = new ApiKeys(limited.db.store);
        const one = (await limitedKeys.create({ name: 'one', scopes: ['directory:read'] }, CLI)).secret;
        const two = (await limitedKeys.create({ name: 'two', scopes: ['directory:read'] }, CLI)).secret;
        const limitedCall = client(limited);
        for (let i = 0; i < 3; i++) assert.equal((await limitedCall('GET', '/tenants', one)).status, 200);
        const refused = await limitedCall('GET', '/tenants', one);
        assertProblem(refused, 429);
        const retryAfter = Number(refused.headers.get('retry-after'));
        assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
        assert.equal((await limitedCall('GET', '/tenants', two)).status, 200, 'the limit is per key');
      } finally {
        await limited.close();
      }
    });
  });
}
