import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { teamDirectory } from '../../examples/team-directory/plugin.ts';
import { RosterError } from '../../src/errors.ts';
import { AppNotInTenantError } from '../../src/identity/errors.ts';
import { SyncUnavailableError } from '../../src/web/errors.ts';
import { Type } from 'typebox';
import type { ExtensionOptions, PagePlugin } from '../../src/web/plugins.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { Browser, decodeHtml, type Hop } from '../helpers/browser.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';
import { signIn, signUp } from './flows.ts';

function csrfOf(page: Hop): string {
  const token = /name="_csrf" value="([^"]+)"/.exec(page.html)?.[1];
  assert.ok(token, `no CSRF token on ${page.url}`);
  return decodeHtml(token);
}

for (const engine of ENGINES) {
  describe(`an extra page plugin: the team directory example (${engine})`, () => {
    let roster: TestRoster;
    let contoso: Org;
    let fabrikam: Org;

    before(async () => {
      roster = await startTestRoster({ engine, web: { plugins: [teamDirectory] } });
      const d = roster.emulator.ctx.directory;
      contoso = addOrg(roster.emulator.ctx, 'Contoso', 'contoso.com');
      fabrikam = addOrg(roster.emulator.ctx, 'Fabrikam', 'fabrikam.com');
      d.addUser(contoso.tenant, { userPrincipalName: 'ada@contoso.com', displayName: 'Ada Lovelace', department: 'Engineering', jobTitle: '<b>Analyst</b>' });
      d.addUser(contoso.tenant, { userPrincipalName: 'bo@contoso.com', displayName: 'Bo Builder', department: 'Sales' });
      d.addUser(fabrikam.tenant, { userPrincipalName: 'eve@fabrikam.com', displayName: 'Eve Elsewhere', department: 'Engineering' });
      for (const org of [contoso, fabrikam]) {
        // The sign-up signs its directory administrator in and records them as the first Roster admin.
        const done = await signUp(new Browser(), roster, org);
        assert.match(done.html, / is signed up/);
        await roster.scheduler.syncNow(org.tenant.id);
      }
    });
    after(() => roster.close());

    it("a member sees their own organisation's people by department, and nobody else's", async () => {
      const member = new Browser();
      await signIn(member, roster, 'user@contoso.com');
      const page = await member.get(`${roster.url}/app/team`);
      assert.equal(page.status, 200, page.html);
      assert.match(page.html, /<h2>Engineering/);
      assert.match(page.html, /Ada Lovelace/);
      assert.match(page.html, /Bo Builder/);
      assert.match(page.html, /&lt;b&gt;Analyst&lt;\/b&gt;/, 'directory data is escaped');
      assert.doesNotMatch(page.html, /Eve Elsewhere/);
      assert.match(page.html, /Contoso User · Contoso/, "inside Roster's layout");
      assert.doesNotMatch(page.html, /action="\/app\/team\/highlight"/, 'no admin form for a member');
      assert.equal(page.headers.get('cache-control'), 'no-store');
    });

    it("a member's POST is refused, an admin's without the CSRF token too; with it the admin's choice shows", async () => {
      const member = new Browser();
      await signIn(member, roster, 'user@contoso.com');
      const memberPage = await member.get(`${roster.url}/app/team`);
      const refused = await member.post(`${roster.url}/app/team/highlight`, { _csrf: csrfOf(memberPage), department: 'Sales' });
      assert.equal(refused.status, 403);
      assert.match(refused.html, /Administrators only/);

      const admin = new Browser();
      await signIn(admin, roster, 'admin@contoso.com');
      const page = await admin.get(`${roster.url}/app/team`);
      const noToken = await admin.post(`${roster.url}/app/team/highlight`, { department: 'Sales' });
      assert.equal(noToken.status, 403);
      assert.match(noToken.html, /stale or did not come from Roster/);
      const wrongToken = await admin.post(`${roster.url}/app/team/highlight`, { _csrf: csrfOf(memberPage), department: 'Sales' });
      assert.equal(wrongToken.status, 403);
      const crossSite = await admin.post(`${roster.url}/app/team/highlight`, { _csrf: csrfOf(page), department: 'Sales' }, { origin: 'https://evil.example' });
      assert.equal(crossSite.status, 403);
      assert.doesNotMatch((await admin.get(`${roster.url}/app/team`)).html, /highlighted/);

      const saved = await admin.post(`${roster.url}/app/team/highlight`, { _csrf: csrfOf(page), department: 'Sales' });
      assert.equal(saved.status, 303);
      const after = await admin.get(`${roster.url}/app/team`);
      assert.ok(after.html.indexOf('<h2>Sales') < after.html.indexOf('<h2>Engineering'), 'the highlighted department comes first');
      assert.match(after.html, /Sales <span class="badge">highlighted/);
      // Another organisation's page is untouched by Contoso's choice.
      const other = new Browser();
      await signIn(other, roster, 'admin@fabrikam.com');
      assert.doesNotMatch((await other.get(`${roster.url}/app/team`)).html, /highlighted/);
    });

    it('an anonymous request is sent to sign in, and a POST changes nothing', async () => {
      const anonymous = await new Browser().get(`${roster.url}/app/team`);
      assert.equal(anonymous.status, 303);
      assert.equal(anonymous.location, `/signin?returnTo=${encodeURIComponent('/app/team')}`);
      const post = await new Browser().post(`${roster.url}/app/team/highlight`, { department: 'Sales' });
      assert.equal(post.status, 401);
    });

    it('bad input to the plugin gets the 400 page with a clear message', async () => {
      const admin = new Browser();
      await signIn(admin, roster, 'admin@contoso.com');
      const page = await admin.get(`${roster.url}/app/team`);
      const bad = await admin.post(`${roster.url}/app/team/highlight`, { _csrf: csrfOf(page), department: 'x'.repeat(200) });
      assert.equal(bad.status, 400);
      assert.match(bad.html, /&quot;department&quot; is longer than 128 characters/);
    });
  });
}

/** Routes that throw each kind of error, to drive the one page error handler. */
const throwingRoutes: PagePlugin<ExtensionOptions> = async (app) => {
  app.get('/exposed', async () => {
    throw new RosterError('That tenant is already being synced.', { status: 409, code: 'sync_running', expose: true });
  });
  app.get('/hidden', async () => {
    throw new RosterError('internal detail 4f1c', { status: 403, code: 'forbidden_detail', expose: false });
  });
  app.get('/server', async () => {
    throw new RosterError('internal detail 9a2b', { status: 500, code: 'broken' });
  });
  app.get('/identity', async () => {
    throw new AppNotInTenantError('AADSTS700016 internal detail 7c3d', { code: 'app_not_in_tenant' });
  });
  app.get('/sync', async () => {
    throw new SyncUnavailableError();
  });
  app.get('/plain', async () => {
    throw new Error('internal detail 5e6f');
  });
  app.post('/echo', { schema: { body: Type.Object({ n: Type.String({ pattern: '^[0-9]+$' }) }) } }, async (request) => request.body.n);
};

describe('the page error handler', () => {
  let roster: TestRoster;

  before(async () => {
    roster = await startTestRoster({ web: { plugins: [{ plugin: throwingRoutes, prefix: '/test-errors' }] } });
  });
  after(() => roster.close());

  const get = (path: string) => roster.app.inject({ method: 'GET', url: `/test-errors${path}` });
  const logLinesWith = (text: string) => roster.logs.filter((line) => line.includes(text)).map((line) => JSON.parse(line) as Record<string, unknown>);

  it('a RosterError whose message is safe shows it with its status', async () => {
    const res = await get('/exposed');
    assert.equal(res.statusCode, 409);
    assert.match(res.headers['content-type'] as string, /text\/html/);
    assert.match(res.body, /Not possible now/);
    assert.match(res.body, /That tenant is already being synced\./);
    const sync = await get('/sync');
    assert.equal(sync.statusCode, 503);
    assert.match(sync.body, /Directory sync is not running in this Roster process/);
  });

  it('a RosterError whose message is not safe shows only its status page', async () => {
    for (const [path, status, title, secret] of [
      ['/hidden', 403, 'Request refused', '4f1c'],
      ['/server', 500, 'Something went wrong', '9a2b'],
      ['/identity', 502, 'A service Roster relies on failed', '7c3d'],
    ] as const) {
      const res = await get(path);
      assert.equal(res.statusCode, status, path);
      assert.match(res.body, new RegExp(title), path);
      assert.doesNotMatch(res.body, new RegExp(`${secret}|AADSTS`), path);
    }
    const logged = logLinesWith('9a2b');
    assert.equal(logged.length, 1, 'a server error is logged once');
    assert.equal(logged[0]!.code, 'broken');
  });

  it('any other error is a 500 page that shows nothing of it, logged once with its stack', async () => {
    const res = await get('/plain');
    assert.equal(res.statusCode, 500);
    assert.match(res.body, /Something went wrong/);
    assert.doesNotMatch(res.body, /5e6f|at .*\.ts:\d+/);
    const logged = logLinesWith('5e6f');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.msg, 'request failed');
    assert.match(String((logged[0]!.err as { stack?: string }).stack), /extending\.test\.ts/);
  });

  it("Fastify's own errors get their status pages: validation 400, unknown page 404, too large 413", async () => {
    const headers = { origin: roster.url, 'content-type': 'application/x-www-form-urlencoded' };
    const invalid = await roster.app.inject({ method: 'POST', url: '/test-errors/echo', headers, payload: 'n=abc' });
    assert.equal(invalid.statusCode, 400);
    assert.match(invalid.body, /&quot;n&quot; is not in the expected format/);
    const missing = await get('/nowhere');
    assert.equal(missing.statusCode, 404);
    assert.match(missing.body, /Page not found/);
    const large = await roster.app.inject({ method: 'POST', url: '/test-errors/echo', headers, payload: `n=${'1'.repeat(1_100_000)}` });
    assert.equal(large.statusCode, 413);
    assert.match(large.body, /That request was too large/);
    for (const res of [invalid, missing, large]) assert.match(res.headers['content-type'] as string, /text\/html/);
  });
});
