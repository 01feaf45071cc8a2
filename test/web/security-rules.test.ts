import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { queueIdTokenTamper } from '../../src/emulator/tamper.ts';
import { safeReturnTo } from '../../src/web/return-to.ts';
import { addOrg, consent, type Org } from '../helpers/fixtures.ts';
import { Browser } from '../helpers/browser.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';
import { passIdentityProvider, signIn, signUp } from './flows.ts';

const SESSION = 'roster_session';

for (const engine of ENGINES) {
  describe(`security rules on the web app (${engine})`, () => {
    let roster: TestRoster;
    let contoso: Org;
    let fabrikam: Org;
    let tailspin: Org;

    before(async () => {
      roster = await startTestRoster({ engine });
      contoso = addOrg(roster.emulator.ctx, 'Contoso', 'contoso.com');
      fabrikam = addOrg(roster.emulator.ctx, 'Fabrikam', 'fabrikam.com');
      tailspin = addOrg(roster.emulator.ctx, 'Tailspin', 'tailspin.com');
      const done = await signUp(new Browser(), roster, contoso);
      assert.match(done.html, /Contoso is signed up/);
    });
    after(() => roster.close());

    it('rule 1: code flow with PKCE S256, a fresh verifier per sign-in, no tokens in the front channel', async () => {
      const challenges = new Set<string>();
      for (let i = 0; i < 2; i++) {
        const start = await new Browser().get(`${roster.url}/signin`);
        const url = new URL(start.location!);
        assert.equal(url.searchParams.get('response_type'), 'code');
        assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
        assert.match(url.searchParams.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/);
        challenges.add(url.searchParams.get('code_challenge')!);
      }
      assert.equal(challenges.size, 2);
      const browser = new Browser();
      const back = await passIdentityProvider(browser, roster, await browser.get(`${roster.url}/signin`), 'user@contoso.com');
      const params = [...new URL(back.location!).searchParams.keys()].sort();
      assert.deepEqual(params.filter((p) => /token/.test(p)), []);
      assert.ok(params.includes('code'));
    });

    it('rule 2: a callback with a missing, unknown, replayed, foreign or expired state changes nothing', async () => {
      const browser = new Browser();
      const back = await passIdentityProvider(browser, roster, await browser.get(`${roster.url}/signin`), 'user@contoso.com');
      const callbackUrl = new URL(back.location!);
      const code = callbackUrl.searchParams.get('code')!;
      const state = callbackUrl.searchParams.get('state')!;
      assert.ok(state.length >= 43, 'state carries at least 256 bits');

      const missing = await browser.get(`${roster.url}/auth/callback?code=${code}`);
      const unknown = await browser.get(`${roster.url}/auth/callback?code=${code}&state=forged`);
      const foreign = await new Browser().get(callbackUrl.href);
      for (const hop of [missing, unknown, foreign]) {
        assert.equal(hop.status, 400);
        assert.match(hop.html, /This sign-in has expired/);
      }
      assert.equal(browser.cookie(SESSION), undefined);
      const own = await browser.get(callbackUrl.href);
      assert.equal(own.status, 303, 'a foreign attempt cannot spoil the sign-in for its own browser');
      const replayed = await browser.get(callbackUrl.href);
      assert.equal(replayed.status, 400, 'used once');

      const fresh = new Browser();
      const back2 = await passIdentityProvider(fresh, roster, await fresh.get(`${roster.url}/signin`), 'user@contoso.com');
      const first = await fresh.get(back2.location!);
      assert.equal(first.status, 303);
      const replay = await new Browser().get(back2.location!);
      assert.equal(replay.status, 400, 'replayed');

      const slow = new Browser();
      const back3 = await passIdentityProvider(slow, roster, await slow.get(`${roster.url}/signin`), 'user@contoso.com');
      roster.advance(11 * 60_000);
      const late = await slow.get(back3.location!);
      assert.equal(late.status, 400, 'expired');
      assert.equal(slow.cookie(SESSION), undefined);
    });

    it('rules 3 and 4: a token with the wrong nonce, or any other spoiled token, signs nobody in', async () => {
      for (const tamper of ['wrong-nonce', 'bad-signature', 'iss-other-tenant', 'expired'] as const) {
        const browser = new Browser();
        queueIdTokenTamper(roster.emulator.ctx, tamper);
        const { callback } = await signIn(browser, roster, 'user@contoso.com');
        assert.equal(callback.status, 400, tamper);
        assert.match(callback.html, /could not verify your sign-in/);
        assert.equal(browser.cookie(SESSION), undefined, tamper);
      }
    });

    it('rule 5: a valid token from a tenant that never signed up gets an explanation and no session; personal accounts too', async () => {
      consent(roster.emulator.ctx, fabrikam);
      const browser = new Browser();
      const { callback } = await signIn(browser, roster, 'user@fabrikam.com');
      assert.equal(callback.status, 403);
      assert.match(callback.html, /has not signed up for Roster/);
      assert.match(callback.html, /Sign up your organisation/);
      assert.equal(browser.cookie(SESSION), undefined);

      const personal = new Browser();
      queueIdTokenTamper(roster.emulator.ctx, 'personal-account');
      const refused = await signIn(personal, roster, 'user@contoso.com');
      assert.equal(refused.callback.status, 403);
      assert.match(refused.callback.html, /Personal Microsoft accounts cannot sign in/);
      assert.equal(personal.cookie(SESSION), undefined);
    });

    it('rule 6: identity is (tid, oid): a changed email and name keep the account', async () => {
      const browser = new Browser();
      await signIn(browser, roster, 'user@contoso.com');
      roster.emulator.ctx.directory.editUser(contoso.tenant, contoso.member.props.id, { mail: 'renamed@contoso.com', displayName: 'Una Renamed' });
      const again = await signIn(new Browser(), roster, 'user@contoso.com');
      assert.match(again.final.html, /Welcome, Una Renamed/);
      const rows = await roster.db.store.db.selectFrom('users').selectAll().where('tenant_id', '=', contoso.tenant.id).where('id', '=', contoso.member.props.id).execute();
      assert.equal(rows.length, 1);
    });

    it('rule 7: being an admin in the customer directory grants nothing in Roster by itself', async () => {
      const entraAdmin = roster.emulator.ctx.directory.addUser(contoso.tenant, { userPrincipalName: 'it@contoso.com', displayName: 'IT Admin', password: 'pw', admin: true });
      const { final } = await signIn(new Browser(), roster, entraAdmin.props.userPrincipalName);
      assert.match(final.html, /Your role in Roster<\/dt><dd>Member/);
    });

    it('rule 8: the redirect URI comes from configuration, not from Host or X-Forwarded-* headers', async () => {
      const start = await new Browser().get(`${roster.url}/signin`, { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' });
      assert.equal(new URL(start.location!).searchParams.get('redirect_uri'), `${roster.url}/auth/callback`);
      const signup = await new Browser().post(`${roster.url}/signup`, { plan: 'team' }, { 'x-forwarded-host': 'evil.example' });
      assert.equal(new URL(signup.location!).searchParams.get('redirect_uri'), `${roster.url}/signup/callback`);
    });

    it('rule 9: callbacks redirect so the code leaves the URL, with Referrer-Policy: no-referrer', async () => {
      const { callback } = await signIn(new Browser(), roster, 'user@contoso.com');
      assert.equal(callback.status, 303);
      assert.equal(callback.headers.get('referrer-policy'), 'no-referrer');
    });

    it('rules 10 and 14: the consent URL asks for exactly the configured scope with a single-use, browser-bound state', async () => {
      const browser = new Browser();
      const start = await browser.post(`${roster.url}/signup`, { plan: 'business' });
      const url = new URL(start.location!);
      assert.equal(url.pathname, '/organizations/v2.0/adminconsent');
      assert.equal(url.searchParams.get('scope'), 'https://graph.microsoft.com/.default');
      assert.equal(url.searchParams.get('client_id'), roster.emulator.demoApp.clientId);
      assert.equal(url.searchParams.get('redirect_uri'), `${roster.url}/signup/callback`);
      const state = url.searchParams.get('state')!;
      assert.ok(state.length >= 43);
      const forged = `${roster.url}/signup/callback?admin_consent=True&tenant=${contoso.tenant.id}&state=${state}`;
      const otherBrowser = await new Browser().get(forged);
      assert.equal(otherBrowser.status, 400, 'bound to the browser that started it');
      const own = await browser.get(forged);
      assert.equal(own.status, 200);
      const again = await browser.get(forged);
      assert.equal(again.status, 400, 'single use');
    });

    it('rule 11: a forged callback naming a tenant that did not consent registers nothing', async () => {
      const browser = new Browser();
      const start = await browser.post(`${roster.url}/signup`, { plan: 'team' });
      const state = new URL(start.location!).searchParams.get('state')!;
      const page = await browser.get(`${roster.url}/signup/callback?admin_consent=True&tenant=${tailspin.tenant.id}&state=${state}`);
      assert.equal(page.status, 202, 'waits for consent that never comes');
      const row = await roster.db.store.db.selectFrom('tenants').select('state').where('id', '=', tailspin.tenant.id).executeTakeFirst();
      assert.notEqual(row?.state, 'active');
      const signInAttempt = await signIn(new Browser(), roster, 'user@tailspin.com').catch(() => undefined);
      assert.notEqual(signInAttempt?.callback.status, 303);
    });

    it('rule 12: an error callback registers nothing and explains declined, not an admin and wrong directory', async () => {
      const declined = await signUp(new Browser(), roster, tailspin, 'cancel');
      assert.equal(declined.status, 400);
      assert.match(declined.html, /Sign-up cancelled/);

      const notAdmin = await signUp(new Browser(), roster, tailspin, 'return', tailspin.member.props.userPrincipalName);
      assert.equal(notAdmin.status, 400);
      assert.match(notAdmin.html, /An administrator needs to approve Roster/);

      const browser = new Browser();
      const start = await browser.post(`${roster.url}/signup`, { plan: 'team' });
      const url = new URL(start.location!);
      url.pathname = `/${tailspin.tenant.id}/v2.0/adminconsent`;
      const back = await passIdentityProvider(browser, roster, await browser.get(url.href), contoso.admin.props.userPrincipalName);
      const wrongDirectory = await browser.get(back.location!);
      assert.equal(wrongDirectory.status, 400);
      assert.match(wrongDirectory.html, /another directory/);

      const row = await roster.db.store.db.selectFrom('tenants').select('state').where('id', '=', tailspin.tenant.id).executeTakeFirst();
      assert.notEqual(row?.state, 'active');
      assert.doesNotMatch(declined.html + notAdmin.html + wrongDirectory.html, /AADSTS\d+:|\{"error/);
    });

    it('rule 13: signing the same organisation up twice keeps one record', async () => {
      const again = await signUp(new Browser(), roster, contoso);
      assert.match(again.html, /Contoso is signed up/);
      const rows = await roster.db.store.db.selectFrom('tenants').select('id').where('id', '=', contoso.tenant.id).execute();
      assert.equal(rows.length, 1);
    });

    it('rule 15: every sign-in gets a new random session id; the old one stops working', async () => {
      const browser = new Browser();
      await signIn(browser, roster, 'user@contoso.com');
      const first = browser.cookie(SESSION)!;
      await signIn(browser, roster, 'user@contoso.com');
      const second = browser.cookie(SESSION)!;
      assert.notEqual(first, second);
      assert.ok(second.length >= 43);
      const stale = new Browser();
      stale.cookies.set(SESSION, { value: first, raw: '' });
      const page = await stale.get(`${roster.url}/app`);
      assert.equal(page.status, 303);
      assert.match(page.location!, /^\/signin/);
    });

    it('rule 16: session cookie is HttpOnly, SameSite=Lax, Path=/ (Secure and __Host- on https: see the cookie test)', async () => {
      const browser = new Browser();
      await signIn(browser, roster, 'user@contoso.com');
      const raw = browser.cookies.get(SESSION)!.raw;
      assert.match(raw, /HttpOnly/i);
      assert.match(raw, /SameSite=Lax/i);
      assert.match(raw, /Path=\//);
    });

    it('rule 17: idle sessions end on the server', async () => {
      const browser = new Browser();
      await signIn(browser, roster, 'user@contoso.com');
      assert.equal((await browser.get(`${roster.url}/app`)).status, 200);
      roster.advance(61 * 60_000);
      assert.equal((await browser.get(`${roster.url}/app`)).status, 303);
    });

    it('rule 18: sign-out destroys the server session and signs out of Entra with logout_hint', async () => {
      const browser = new Browser();
      await signIn(browser, roster, 'user@contoso.com');
      const cookie = browser.cookie(SESSION)!;
      const app = await browser.get(`${roster.url}/app`);
      const csrf = /name="_csrf" value="([^"]+)"/.exec(app.html)![1]!;
      const out = await browser.post(`${roster.url}/signout`, { _csrf: csrf });
      assert.equal(out.status, 303);
      const logout = new URL(out.location!);
      assert.equal(logout.pathname, '/organizations/oauth2/v2.0/logout');
      assert.equal(logout.searchParams.get('post_logout_redirect_uri'), `${roster.url}/`);
      assert.ok(logout.searchParams.get('logout_hint'));
      const replay = new Browser();
      replay.cookies.set(SESSION, { value: cookie, raw: '' });
      assert.equal((await replay.get(`${roster.url}/app`)).status, 303);
      const count = await roster.db.store.db.selectFrom('sessions').select('id_hash').execute();
      assert.ok(count.every((row) => row.id_hash !== cookie));
    });

    it('rule 19: a disconnected tenant, or a user deleted or disabled, loses its sessions', async () => {
      const member = new Browser();
      await signIn(member, roster, 'user@contoso.com');
      await roster.db.store.db.updateTable('users').set({ account_enabled: 0 }).where('id', '=', contoso.member.props.id).execute();
      assert.equal((await member.get(`${roster.url}/app`)).status, 303);
      await roster.db.store.db.updateTable('users').set({ account_enabled: 1 }).where('id', '=', contoso.member.props.id).execute();

      const admin = new Browser();
      await signIn(admin, roster, 'admin@contoso.com');
      await roster.db.store.db.updateTable('tenants').set({ state: 'disconnected' }).where('id', '=', contoso.tenant.id).execute();
      assert.equal((await admin.get(`${roster.url}/app`)).status, 303);
      const left = await roster.db.store.db.selectFrom('sessions').select('id_hash').where('tenant_id', '=', contoso.tenant.id).where('user_id', '=', contoso.admin.props.id).execute();
      assert.equal(left.length, 0);
      await roster.db.store.db.updateTable('tenants').set({ state: 'active' }).where('id', '=', contoso.tenant.id).execute();
    });

    it('rule 20: a cross-site POST is refused, and sign-out needs the form token', async () => {
      const crossSite = await new Browser().post(`${roster.url}/signup`, { plan: 'team' }, { origin: 'https://evil.example' });
      assert.equal(crossSite.status, 403);
      const fetchMetadata = await new Browser().post(`${roster.url}/signup`, { plan: 'team' }, { 'sec-fetch-site': 'cross-site' });
      assert.equal(fetchMetadata.status, 403);
      const browser = new Browser();
      await signIn(browser, roster, 'user@contoso.com');
      const noToken = await browser.post(`${roster.url}/signout`, {});
      assert.equal(noToken.status, 403);
      assert.equal((await browser.get(`${roster.url}/app`)).status, 200, 'still signed in');
    });

    it('rule 21: returnTo is kept across sign-in only as a same-origin path', async () => {
      const landed = await signIn(new Browser(), roster, 'user@contoso.com', `/signin?returnTo=${encodeURIComponent('/app?tab=users')}`);
      assert.equal(landed.callback.location, '/app?tab=users');
      for (const evil of ['//evil.example', '/\\evil.example', 'https://evil.example', 'javascript:alert(1)', '/%2F%2Fevil.example', '%2F%2Fevil.example', '/%5Cevil.example', '/%252F%252Fevil.example', '\\\\evil.example']) {
        assert.equal(safeReturnTo(evil), null, evil);
        const { callback } = await signIn(new Browser(), roster, 'user@contoso.com', `/signin?returnTo=${encodeURIComponent(evil)}`);
        assert.equal(callback.location, '/app', evil);
      }
    });

    it('rule 26: the tenant comes from the session, never from the URL', async () => {
      const browser = new Browser();
      await signIn(browser, roster, 'user@contoso.com');
      const page = await browser.get(`${roster.url}/app?tenant=${fabrikam.tenant.id}&tid=${fabrikam.tenant.id}`);
      assert.match(page.html, /Contoso/);
      assert.doesNotMatch(page.html, /Fabrikam/);
    });

    it('rule 28: secrets, codes, tokens and session ids never reach the logs', async () => {
      const browser = new Browser();
      const { callback } = await signIn(browser, roster, 'user@contoso.com');
      const session = browser.cookie(SESSION)!;
      const logs = roster.logs.join('\n');
      assert.ok(logs.length > 0);
      const code = callback.url.match(/code=([^&]+)/)![1]!;
      for (const secret of [roster.emulator.demoApp.clientSecret, session, decodeURIComponent(code)]) {
        assert.ok(!logs.includes(secret), `log contains ${secret.slice(0, 6)}…`);
      }
      assert.doesNotMatch(logs, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, 'no JWT in the logs');
    });
  });
}
