import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AuditRepository } from '../../src/store/audit.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { Browser, decodeHtml, type Hop } from '../helpers/browser.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';
import { signIn, signUp } from './flows.ts';

function csrfOf(page: Hop): string {
  const token = /name="_csrf" value="([^"]+)"/.exec(page.html)?.[1];
  assert.ok(token, `no CSRF token on ${page.url}`);
  return decodeHtml(token);
}

for (const engine of ENGINES) {
  describe(`operator console: API keys and the audit log (${engine})`, () => {
    let emulator: TestEmulator;
    let roster: TestRoster;
    let ops: Org;
    let contoso: Org;
    let operator: Browser;
    let admin: Browser;

    before(async () => {
      emulator = await startTestEmulator();
      ops = addOrg(emulator.ctx, 'Operators', 'ops.example');
      contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
      roster = await startTestRoster({ engine, emulator, operators: [{ tenantId: ops.tenant.id, objectId: ops.admin.props.id }] });
      operator = new Browser();
      assert.match((await signUp(operator, roster, ops)).html, / is signed up/);
      admin = new Browser();
      assert.match((await signUp(admin, roster, contoso)).html, / is signed up/);
      for (const id of [ops.tenant.id, contoso.tenant.id]) if (roster.scheduler.isRunning(id)) await roster.scheduler.syncNow(id);
    });
    after(async () => {
      await roster?.close();
      await emulator?.close();
    });

    it('rule 30: an operator creates a key shown once, usable at once, listed by prefix only, and revoked at once', async () => {
      const page = await operator.get(`${roster.url}/operator/api-keys`);
      assert.equal(page.status, 200);
      assert.match(page.html, /No API keys yet/);
      const created = await operator.post(`${roster.url}/operator/api-keys`, { _csrf: csrfOf(page), name: 'Billing <prod>', scopes: 'directory:read', tenant: contoso.tenant.id });
      assert.equal(created.status, 201, created.html.slice(0, 500));
      const secret = decodeHtml(/id="secret"[^>]*value="([^"]+)"/.exec(created.html)![1]!);
      assert.match(secret, /^roster_sk_[A-Za-z0-9_-]{43}$/);
      assert.match(created.html, /Billing &lt;prod&gt;/, 'the name is escaped');
      assert.match(created.html, /will not show it again/);

      const api = await fetch(`${roster.url}/api/v1/tenants/${contoso.tenant.id}`, { headers: { authorization: `Bearer ${secret}` } });
      assert.equal(api.status, 200);
      assert.equal(((await api.json()) as { display_name: string }).display_name, 'Contoso');
      assert.equal((await fetch(`${roster.url}/api/v1/tenants/${ops.tenant.id}`, { headers: { authorization: `Bearer ${secret}` } })).status, 404, 'limited to Contoso');

      const listed = await operator.get(`${roster.url}/operator/api-keys`);
      assert.ok(!listed.html.includes(secret.slice(16)), 'the key is never shown again');
      assert.ok(listed.html.includes(`${secret.slice(0, 16)}…`), 'its prefix tells it apart');
      assert.match(listed.html, /<td data-label="Tenant">Contoso<\/td>/);
      const id = /\/operator\/api-keys\/(key_[0-9a-f]{16})\/revoke/.exec(listed.html)![1]!;
      const revoked = await operator.post(`${roster.url}/operator/api-keys/${id}/revoke`, { _csrf: csrfOf(listed) });
      assert.equal(revoked.status, 303);
      assert.equal((await fetch(`${roster.url}/api/v1/tenants`, { headers: { authorization: `Bearer ${secret}` } })).status, 401);
      assert.match((await operator.get(`${roster.url}/operator/api-keys`)).html, /badge state-offboarded">revoked/);
    });

    it('key creation refuses bad input with the field named, and nobody but an operator gets in', async () => {
      const page = await operator.get(`${roster.url}/operator/api-keys`);
      const before = await roster.db.store.db.selectFrom('api_keys').select('id').execute();
      const noScope = await operator.post(`${roster.url}/operator/api-keys`, { _csrf: csrfOf(page), name: 'x' });
      assert.equal(noScope.status, 400);
      assert.match(noScope.html, /role="alert"[\s\S]*must list at least one of/);
      const badScope = await operator.post(`${roster.url}/operator/api-keys`, { _csrf: csrfOf(page), name: 'x', scopes: 'root' });
      assert.equal(badScope.status, 400);
      const badTenant = await operator.post(`${roster.url}/operator/api-keys`, { _csrf: csrfOf(page), name: 'x', scopes: 'events:read', tenant: 'someone-else' });
      assert.equal(badTenant.status, 400);
      const noToken = await operator.post(`${roster.url}/operator/api-keys`, { name: 'x', scopes: 'events:read' });
      assert.equal(noToken.status, 403);
      const adminToken = csrfOf(await admin.get(`${roster.url}/app`));
      for (const hop of [
        await admin.get(`${roster.url}/operator/api-keys`),
        await admin.get(`${roster.url}/operator/audit`),
        await admin.post(`${roster.url}/operator/api-keys`, { _csrf: adminToken, name: 'x', scopes: 'tenants:manage' }),
      ]) assert.equal(hop.status, 403);
      assert.equal((await new Browser().get(`${roster.url}/operator/audit`)).status, 303, 'signed out: to the sign-in');
      assert.deepEqual(await roster.db.store.db.selectFrom('api_keys').select('id').execute(), before, 'nothing was created');
    });

    it('rule 35: console actions are in the audit log with the operator, the action, the tenant and the address; filters and pages work', async () => {
      const detail = await operator.get(`${roster.url}/operator/tenants/${contoso.tenant.id}`);
      assert.equal((await operator.post(`${roster.url}/operator/tenants/${contoso.tenant.id}/suspend`, { _csrf: csrfOf(detail) })).status, 303);
      assert.equal((await operator.post(`${roster.url}/operator/tenants/${contoso.tenant.id}/resume`, { _csrf: csrfOf(detail) })).status, 303);
      const conflict = await operator.post(`${roster.url}/operator/tenants/${contoso.tenant.id}/resume`, { _csrf: csrfOf(detail) });
      assert.equal(conflict.status, 409);
      const who = `${ops.tenant.id}:${ops.admin.props.id}`;
      const entries = await new AuditRepository(roster.db.store.db).page({ actorId: who }, { limit: 10 });
      assert.deepEqual(entries.map((e) => e.action).reverse(), ['api_key.create', 'api_key.revoke', 'tenant.suspend', 'tenant.resume']);
      assert.equal(entries[0]!.actor.source, '127.0.0.1');
      assert.equal(entries[0]!.actor.name, 'Operators Admin');

      const log = await operator.get(`${roster.url}/operator/audit`);
      assert.equal(log.status, 200);
      assert.match(log.html, /<code class="nowrap">tenant\.suspend<\/code>/);
      assert.match(log.html, /<code class="nowrap">api_key\.create<\/code>/);
      const suspends = await operator.get(`${roster.url}/operator/audit?action=tenant.suspend`);
      assert.doesNotMatch(suspends.html, /<code class="nowrap">api_key\.create<\/code>/);
      assert.match(suspends.html, /<code class="nowrap">tenant\.suspend<\/code>/);
      const byTenant = await operator.get(`${roster.url}/operator/audit?tenant=${ops.tenant.id}`);
      assert.doesNotMatch(byTenant.html, /<code class="nowrap">tenant\.suspend<\/code>/, 'Contoso\'s entries are not Operators\'');
      assert.equal((await operator.get(`${roster.url}/operator/audit?tenant=contoso`)).status, 400);
      assert.equal((await operator.get(`${roster.url}/operator/audit?before=-1`)).status, 400);

      // Sixty more entries: the log pages by id, newest first, with a link to the older ones.
      const audit = new AuditRepository(roster.db.store.db);
      for (let i = 0; i < 60; i++) await audit.record({ actor: { kind: 'cli', id: 'cli', name: 'paging', source: 'cli' }, action: 'tenant.sync', tenantId: contoso.tenant.id, detail: { n: i } }, Date.now());
      const first = await operator.get(`${roster.url}/operator/audit?actor=cli`);
      assert.equal([...first.html.matchAll(/<tr>\s*<td data-label="When">/g)].length, 50);
      assert.match(first.html, /n: 59/);
      const older = decodeHtml(/href="(\/operator\/audit\?[^"]*before=\d+)">Older entries/.exec(first.html)![1]!);
      const second = await operator.get(`${roster.url}${older}`);
      assert.equal([...second.html.matchAll(/<tr>\s*<td data-label="When">/g)].length, 10);
      assert.match(second.html, /n: 0/);
      assert.doesNotMatch(second.html, /Older entries/);
      assert.match(second.html, /Newest entries/);
    });

    it('rule 35: an admin\'s organisation actions are audited too (leaving Roster)', async () => {
      // The operator's suspension ended Contoso's sessions: the admin signs in again.
      admin = new Browser();
      assert.equal((await signIn(admin, roster, contoso.admin.props.userPrincipalName)).final.status, 200);
      const orgPage = await admin.get(`${roster.url}/app/organisation`);
      const left = await admin.post(`${roster.url}/app/organisation/leave`, { _csrf: csrfOf(orgPage), confirmName: 'Contoso' });
      assert.equal(left.status, 200, left.html.slice(0, 300));
      const [entry] = await new AuditRepository(roster.db.store.db).page({ action: 'organisation.leave' }, { limit: 1 });
      assert.equal(entry!.tenantId, contoso.tenant.id);
      assert.equal(entry!.actor.id, `${contoso.tenant.id}:${contoso.admin.props.id}`);
    });
  });
}
