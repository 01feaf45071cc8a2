import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { queueIdTokenTamper } from '../../src/emulator/tamper.ts';
import { PERSONAL_ACCOUNT_TENANT_ID } from '../../src/identity/id-token.ts';
import { hashToken } from '../../src/store/tokens.ts';
import { TenantLifecycle } from '../../src/tenants/lifecycle.ts';
import { safeReturnTo } from '../../src/web/return-to.ts';
import { addOrg, consent, demoApp, type Org } from '../helpers/fixtures.ts';
import { Browser, type Hop } from '../helpers/browser.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';
import { consentRequestOf, passIdentityProvider, signIn, signUp, startSignUp } from './flows.ts';

const SESSION = 'roster_session';
const BINDING = 'roster_binding';

/** A browser that holds only another browser's Roster binding cookie: same flow, no identity provider session. */
function sameBindingElsewhere(browser: Browser): Browser {
  const other = new Browser();
  other.cookies.set(BINDING, browser.cookies.get(BINDING)!);
  return other;
}

for (const engine of ENGINES) {
  describe(`security rules on the web app (${engine})`, () => {
    let roster: TestRoster;
    let contoso: Org;
    let fabrikam: Org;

    before(async () => {
      roster = await startTestRoster({ engine });
      contoso = addOrg(roster.emulator.ctx, 'Contoso', 'contoso.com');
      fabrikam = addOrg(roster.emulator.ctx, 'Fabrikam', 'fabrikam.com');
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

    it('rule 1 (hardening 12): sign-in and the sign-up\'s sign-in ask only openid profile email, never offline_access', async () => {
      const signin = new URL((await new Browser().get(`${roster.url}/signin`)).location!);
      const signup = new URL((await new Browser().post(`${roster.url}/signup`, { plan: 'team' })).location!);
      for (const url of [signin, signup]) {
        assert.equal(url.pathname, '/organizations/oauth2/v2.0/authorize');
        assert.deepEqual(url.searchParams.get('scope')!.split(' ').sort(), ['email', 'openid', 'profile']);
        assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
        assert.ok(url.searchParams.get('nonce'));
      }
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
      assert.doesNotMatch(final.html, /claim-admin/, 'no claim while the organisation has a Roster admin');
    });

    it('rule 7 (hardening 5): the signer\'s admin role is granted once at sign-up, never again at sign-in', async () => {
      const first = await signIn(new Browser(), roster, 'admin@contoso.com');
      assert.match(first.final.html, /Your role in Roster<\/dt><dd>Administrator/);
      const second = roster.emulator.ctx.directory.addUser(contoso.tenant, { userPrincipalName: 'second@contoso.com', displayName: 'Second Admin', password: 'pw' });
      await signIn(new Browser(), roster, 'second@contoso.com');
      await roster.db.store.db.updateTable('users').set({ roster_role: 'admin' }).where('id', '=', second.props.id).execute();
      await roster.db.store.db.updateTable('users').set({ roster_role: 'member' }).where('id', '=', contoso.admin.props.id).execute();
      const demoted = await signIn(new Browser(), roster, 'admin@contoso.com');
      assert.match(demoted.final.html, /Your role in Roster<\/dt><dd>Member/, 'a demoted signer stays demoted');
      await roster.db.store.db.updateTable('users').set({ roster_role: 'admin' }).where('id', '=', contoso.admin.props.id).execute();
      await roster.db.store.db.updateTable('users').set({ roster_role: 'member' }).where('id', '=', second.props.id).execute();
    });

    it('rule 8: the redirect URI comes from configuration, not from Host or X-Forwarded-* headers', async () => {
      const start = await new Browser().get(`${roster.url}/signin`, { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' });
      assert.equal(new URL(start.location!).searchParams.get('redirect_uri'), `${roster.url}/auth/callback`);
      const signup = await new Browser().post(`${roster.url}/signup`, { plan: 'team' }, { 'x-forwarded-host': 'evil.example' });
      assert.equal(new URL(signup.location!).searchParams.get('redirect_uri'), `${roster.url}/auth/callback`);
      const { url } = consentRequestOf(await startSignUp(new Browser(), roster, contoso.admin.props.userPrincipalName));
      assert.equal(url.searchParams.get('redirect_uri'), `${roster.url}/signup/callback`);
    });

    it('rule 9: callbacks redirect so the code leaves the URL, with Referrer-Policy: no-referrer', async () => {
      const { callback } = await signIn(new Browser(), roster, 'user@contoso.com');
      assert.equal(callback.status, 303);
      assert.equal(callback.headers.get('referrer-policy'), 'no-referrer');
    });

    it('rule 15: every sign-in gets a new random session id; the old one stops working', async () => {
      const browser = new Browser();
      await signIn(browser, roster, 'user@contoso.com');
      const first = browser.cookie(SESSION)!;
      await signIn(browser, roster, 'user@contoso.com');
      const second = browser.cookie(SESSION)!;
      assert.notEqual(first, second);
      assert.ok(second.length >= 43);
      // Stored hashed, checked while the session is live.
      const live = await roster.db.store.db.selectFrom('sessions').select('id_hash').where('id_hash', 'in', [second, hashToken(second)]).execute();
      assert.deepEqual(live.map((row) => row.id_hash), [hashToken(second)]);
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
      const serverSession = () => roster.db.store.db.selectFrom('sessions').select('id_hash').where('id_hash', '=', hashToken(cookie)).execute();
      assert.equal((await serverSession()).length, 1, 'the session is stored under the hash of its id');
      const app = await browser.get(`${roster.url}/app`);
      const csrf = /name="_csrf" value="([^"]+)"/.exec(app.html)![1]!;
      const out = await browser.post(`${roster.url}/signout`, { _csrf: csrf });
      assert.equal(out.status, 303);
      // Checked before any replay: resuming an expired session deletes it too, which would hide a sign-out that only expired it.
      assert.deepEqual(await serverSession(), [], 'sign-out deleted the server-side row');
      const logout = new URL(out.location!);
      assert.equal(logout.pathname, '/organizations/oauth2/v2.0/logout');
      assert.equal(logout.searchParams.get('post_logout_redirect_uri'), `${roster.url}/`);
      assert.ok(logout.searchParams.get('logout_hint'));
      const replay = new Browser();
      replay.cookies.set(SESSION, { value: cookie, raw: '' });
      assert.equal((await replay.get(`${roster.url}/app`)).status, 303);
    });

    it('rule 19: a disconnected tenant, or a user deleted or disabled, loses its sessions', async () => {
      const member = new Browser();
      await signIn(member, roster, 'user@contoso.com');
      await roster.db.store.db.updateTable('users').set({ account_enabled: 0 }).where('id', '=', contoso.member.props.id).execute();
      assert.equal((await member.get(`${roster.url}/app`)).status, 303);
      await roster.db.store.db.updateTable('users').set({ account_enabled: 1 }).where('id', '=', contoso.member.props.id).execute();

      const admin = new Browser();
      await signIn(admin, roster, 'admin@contoso.com');
      const adminCookie = admin.cookie(SESSION)!;
      await roster.db.store.db.updateTable('tenants').set({ state: 'disconnected' }).where('id', '=', contoso.tenant.id).execute();
      assert.equal((await admin.get(`${roster.url}/app`)).status, 303);
      const left = await roster.db.store.db.selectFrom('sessions').select('id_hash').where('id_hash', '=', hashToken(admin.cookie(SESSION) ?? adminCookie)).execute();
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
      // A token is bound to its session: another session's (an attacker's own, say) does not do.
      const other = new Browser();
      await signIn(other, roster, 'user@contoso.com');
      const othersToken = /name="_csrf" value="([^"]+)"/.exec((await other.get(`${roster.url}/app`)).html)![1]!;
      const wrongToken = await browser.post(`${roster.url}/signout`, { _csrf: othersToken });
      assert.equal(wrongToken.status, 403);
      assert.equal((await browser.get(`${roster.url}/app`)).status, 200, 'still signed in');
    });

    it('rule 21: returnTo is kept across sign-in only as a same-origin path', async () => {
      const landed = await signIn(new Browser(), roster, 'user@contoso.com', `/signin?returnTo=${encodeURIComponent('/app?tab=users')}`);
      assert.equal(landed.callback.location, '/app?tab=users');
      const evils = ['//evil.example', '/\\evil.example', 'https://evil.example', 'javascript:alert(1)', '/%2F%2Fevil.example', '%2F%2Fevil.example', '/%5Cevil.example', '/%252F%252Fevil.example', '\\\\evil.example'];
      // hardening 3: paths that only normalise to another origin (the three reported first), control characters browsers drop, backslashes
      const normalised = ['/.//evil.example/phish', '/%2e%2e//evil.example', '/app/../..//evil.example'];
      const more = ['/%2E%2E/%2e%2e//evil.example', '/\t/evil.example', '/\n/evil.example', '/%09/evil.example', '/%0a/evil.example', '/app\\..\\..\\evil.example', '/%5cevil.example', '/%5c%5cevil.example', '/app/%2e%2e/%2e%2e/%2F%2Fevil.example'];
      for (const evil of [...evils, ...normalised, ...more]) assert.equal(safeReturnTo(evil), null, evil);
      // Through a real sign-in (rate limits allow only so many per minute): the reported attacks and one of each older kind.
      for (const evil of [...normalised, '//evil.example', '/%5Cevil.example', '/%252F%252Fevil.example', '/\t/evil.example']) {
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

  // The sign-up's rules run against a Roster of their own: together with the sign-in rules they would pass the per-minute rate limits.
  describe(`security rules of sign-up (${engine})`, () => {
    let roster: TestRoster;
    let contoso: Org;
    let fabrikam: Org;
    let tailspin: Org;
    let woodgrove: Org;

    before(async () => {
      roster = await startTestRoster({ engine });
      contoso = addOrg(roster.emulator.ctx, 'Contoso', 'contoso.com');
      fabrikam = addOrg(roster.emulator.ctx, 'Fabrikam', 'fabrikam.com');
      tailspin = addOrg(roster.emulator.ctx, 'Tailspin', 'tailspin.com');
      woodgrove = addOrg(roster.emulator.ctx, 'Woodgrove', 'woodgrove.com');
      const done = await signUp(new Browser(), roster, contoso);
      assert.match(done.html, /Contoso is signed up/);
    });
    after(() => roster.close());

    it('rules 10 and 14: consent is asked for the signed-in admin\'s own tenant, exactly the configured scope, with a single-use, browser-bound state', async () => {
      const browser = new Browser();
      const { url, state } = consentRequestOf(await startSignUp(browser, roster, contoso.admin.props.userPrincipalName));
      assert.equal(url.pathname, `/${contoso.tenant.id}/v2.0/adminconsent`);
      assert.equal(url.searchParams.get('scope'), 'https://graph.microsoft.com/.default');
      assert.equal(url.searchParams.get('client_id'), roster.emulator.demoApp.clientId);
      assert.equal(url.searchParams.get('redirect_uri'), `${roster.url}/signup/callback`);
      assert.ok(state.length >= 43);
      const forged = `${roster.url}/signup/callback?admin_consent=True&tenant=${contoso.tenant.id}&state=${state}`;
      const otherBrowser = await new Browser().get(forged);
      assert.equal(otherBrowser.status, 400, 'bound to the browser that started it');
      assert.doesNotMatch(otherBrowser.html, /Contoso/, 'the tenant\'s name is shown only to the person whose flow it is');
      const own = await browser.get(forged);
      assert.equal(own.status, 200);
      assert.match(own.html, /Contoso is signed up/);
      const again = await browser.get(forged);
      assert.equal(again.status, 400, 'single use');
    });

    it('rule 11 (hardening 1): a member cannot sign the organisation up, nor finish a sign-up with a forged callback', async () => {
      const lifecycle = new TenantLifecycle(roster.db.store);
      // Fabrikam's admin consented in Microsoft but has not come back to Roster (or Fabrikam left Roster).
      consent(roster.emulator.ctx, fabrikam);
      for (const round of ['never signed up', 'after leaving'] as const) {
        if (round === 'after leaving') {
          assert.match((await signUp(new Browser(), roster, fabrikam)).html, /Fabrikam is signed up/);
          await roster.scheduler.syncNow(fabrikam.tenant.id); // the first sync, started by the sign-up, finishes before the organisation leaves
          await lifecycle.offboard(fabrikam.tenant.id, 'left', Date.now());
        }
        const member = new Browser();
        const refused = await startSignUp(member, roster, fabrikam.member.props.userPrincipalName);
        assert.equal(refused.status, 403, round);
        assert.match(refused.html, /An administrator must sign your organisation up/);
        assert.equal(refused.location, null, 'never sent on to consent');
        // Her own sign-in step's state, then no state at all, on the consent callback.
        const signInState = new URL((await member.post(`${roster.url}/signup`, { plan: 'team' })).location!).searchParams.get('state')!;
        for (const query of [`&state=${signInState}`, '']) {
          const forged = await member.get(`${roster.url}/signup/callback?admin_consent=True&tenant=${fabrikam.tenant.id}${query}`);
          assert.equal(forged.status, 400, round);
          assert.doesNotMatch(forged.html, /Fabrikam/);
        }
        assert.equal(member.cookie(SESSION), undefined);
        const users = await roster.db.store.db.selectFrom('users').select('id').where('tenant_id', '=', fabrikam.tenant.id).execute();
        assert.deepEqual(users, [], round);
        const row = await roster.db.store.db.selectFrom('tenants').select(['state', 'signed_up_by_oid']).where('id', '=', fabrikam.tenant.id).executeTakeFirst();
        assert.deepEqual(row && { ...row }, round === 'never signed up' ? undefined : { state: 'offboarded', signed_up_by_oid: null });
      }
      // The real admin then signs up and is the one recorded; the member stays a member.
      const admin = new Browser();
      assert.match((await signUp(admin, roster, fabrikam)).html, /first Roster administrator/);
      assert.match((await admin.get(`${roster.url}/app`)).html, /Your role in Roster<\/dt><dd>Administrator/);
      const member = await signIn(new Browser(), roster, fabrikam.member.props.userPrincipalName);
      assert.match(member.final.html, /Your role in Roster<\/dt><dd>Member/);
      const row = await roster.db.store.db.selectFrom('tenants').select('signed_up_by_oid').where('id', '=', fabrikam.tenant.id).executeTakeFirst();
      assert.equal(row?.signed_up_by_oid, fabrikam.admin.props.id);
    });

    it('rule 11 (hardening 1 and 2): forged consent callbacks change nothing about any tenant', async () => {
      const contextBefore = await roster.db.store.db.selectFrom('tenants').select(['signup_context', 'updated_at', 'state']).where('id', '=', contoso.tenant.id).executeTakeFirst();
      const callback = (tenant: string, state: string) => `${roster.url}/signup/callback?admin_consent=True&tenant=${tenant}&state=${state}`;
      const pages: Hop[] = [];

      const a = new Browser();
      const flowA = consentRequestOf(await startSignUp(a, roster, contoso.admin.props.userPrincipalName));
      const b = new Browser();
      const flowB = consentRequestOf(await startSignUp(b, roster, fabrikam.admin.props.userPrincipalName));
      // Another flow's state: B's state in A's browser, then A's state in B's browser.
      pages.push(await a.get(callback(contoso.tenant.id, flowB.state)));
      pages.push(await b.get(callback(contoso.tenant.id, flowA.state)));
      // The right state with another tenant: Fabrikam's admin naming Contoso.
      const otherTenant = await b.get(callback(contoso.tenant.id, flowB.state));
      assert.equal(otherTenant.status, 400);
      assert.match(otherTenant.html, /Consent was for another organisation/);
      // Replayed: that state was used.
      pages.push(await b.get(callback(fabrikam.tenant.id, flowB.state)));
      // No flow at all.
      pages.push(await new Browser().get(callback(contoso.tenant.id, 'x'.repeat(43))));
      // Started in one browser, finished in another that has no binding cookie.
      pages.push(await new Browser().get(callback(contoso.tenant.id, flowA.state)));
      // Fabrikam's admin finishing Contoso's flow: Microsoft refuses the other directory, and without A's binding Roster does too.
      const fabrikamBrowser = new Browser();
      const refusedByProvider = await passIdentityProvider(fabrikamBrowser, roster, await fabrikamBrowser.get(flowA.url.href), fabrikam.admin.props.userPrincipalName);
      assert.equal(new URL(refusedByProvider.location!).searchParams.get('tenant'), null);
      pages.push(await fabrikamBrowser.get(refusedByProvider.location!));
      pages.push(await fabrikamBrowser.get(callback(fabrikam.tenant.id, flowA.state)));
      for (const page of pages) {
        assert.equal(page.status, 400);
        assert.match(page.html, /This sign-up has expired/);
        assert.doesNotMatch(page.html, /Contoso|Fabrikam/);
      }
      const contextAfter = await roster.db.store.db.selectFrom('tenants').select(['signup_context', 'updated_at', 'state']).where('id', '=', contoso.tenant.id).executeTakeFirst();
      assert.deepEqual({ ...contextAfter }, { ...contextBefore }, 'Contoso\'s record is untouched');
      // A's flow is still good for A alone.
      assert.match((await a.get(callback(contoso.tenant.id, flowA.state))).html, /Contoso is signed up/);
    });

    it('rule 11 (hardening 1): a member answering the consent step of an admin\'s flow changes nothing', async () => {
      const admin = new Browser();
      const flow = consentRequestOf(await startSignUp(admin, roster, tailspin.admin.props.userPrincipalName));
      const member = sameBindingElsewhere(admin);
      const back = await passIdentityProvider(member, roster, await member.get(flow.url.href), tailspin.member.props.userPrincipalName, 'return');
      const page = await member.get(back.location!);
      assert.equal(page.status, 400);
      assert.match(page.html, /An administrator needs to approve Roster/);
      const row = await roster.db.store.db.selectFrom('tenants').select('state').where('id', '=', tailspin.tenant.id).executeTakeFirst();
      assert.equal(row, undefined);
      assert.equal(member.cookie(SESSION), undefined);
    });

    it('rule 11 (hardening 4): a forged callback for a tenant that never consented stores nothing', async () => {
      const browser = new Browser();
      const start = await browser.post(`${roster.url}/signup`, { plan: 'team' });
      const state = new URL(start.location!).searchParams.get('state')!;
      for (const query of [`state=${state}`, 'state=forged', '']) {
        const page = await browser.get(`${roster.url}/signup/callback?admin_consent=True&tenant=${tailspin.tenant.id}&${query}`);
        assert.equal(page.status, 400);
      }
      const row = await roster.db.store.db.selectFrom('tenants').select('state').where('id', '=', tailspin.tenant.id).executeTakeFirst();
      assert.equal(row, undefined);
    });

    it('rule 11: a tenant held pending while Microsoft already issues its tokens does not sign anyone in; a stale pending row is replaced by the next sign-up', async () => {
      const directory = roster.emulator.ctx.directory;
      directory.consentPropagationSeconds = 600;
      try {
        const admin = new Browser();
        const waiting = await signUp(admin, roster, woodgrove);
        assert.equal(waiting.status, 202, 'Roster cannot read the tenant yet');
        assert.equal((await roster.db.store.db.selectFrom('tenants').select('state').where('id', '=', woodgrove.tenant.id).executeTakeFirst())?.state, 'pending');
        assert.ok(directory.tenants.get(woodgrove.tenant.id)!.servicePrincipals.has(demoApp(roster.emulator.ctx).appId), 'consented in the emulator');

        const member = new Browser();
        const { callback } = await signIn(member, roster, woodgrove.member.props.userPrincipalName);
        assert.equal(callback.status, 403);
        assert.match(callback.html, /sign-up is not finished/);
        assert.equal(member.cookie(SESSION), undefined);
        const users = await roster.db.store.db.selectFrom('users').select('id').where('tenant_id', '=', woodgrove.tenant.id).execute();
        assert.deepEqual(users, []);

        roster.advance(25 * 3_600_000);
        const later = await signIn(new Browser(), roster, woodgrove.member.props.userPrincipalName);
        assert.equal(later.callback.status, 403);
        assert.match(later.callback.html, /has not signed up for Roster/, 'a day-old pending row counts for nothing');
        const done = await signUp(new Browser(), roster, woodgrove);
        assert.match(done.html, /Woodgrove is signed up/);
      } finally {
        directory.consentPropagationSeconds = 0;
      }
    });

    it('rule 5 (hardening 12): the personal-account tenant cannot be signed up, before consent or at the callback', async () => {
      queueIdTokenTamper(roster.emulator.ctx, 'personal-account');
      const personal = await startSignUp(new Browser(), roster, contoso.member.props.userPrincipalName);
      assert.equal(personal.status, 403);
      assert.equal(personal.location, null);
      assert.match(personal.html, /Personal Microsoft accounts cannot sign up/);

      const browser = new Browser();
      const { state } = consentRequestOf(await startSignUp(browser, roster, contoso.admin.props.userPrincipalName));
      const forged = await browser.get(`${roster.url}/signup/callback?admin_consent=True&tenant=${PERSONAL_ACCOUNT_TENANT_ID}&state=${state}`);
      assert.equal(forged.status, 403);
      assert.match(forged.html, /Personal Microsoft accounts cannot sign up/);
      const row = await roster.db.store.db.selectFrom('tenants').select('id').where('id', '=', PERSONAL_ACCOUNT_TENANT_ID).executeTakeFirst();
      assert.equal(row, undefined);
    });

    it('rule 12: an error callback registers nothing and explains declined, not an admin and wrong directory', async () => {
      const declined = await signUp(new Browser(), roster, tailspin, 'cancel');
      assert.equal(declined.status, 400);
      assert.match(declined.html, /Sign-up cancelled/);

      const notAdmin = await signUp(new Browser(), roster, tailspin, 'return', tailspin.member.props.userPrincipalName);
      assert.equal(notAdmin.status, 403);
      assert.match(notAdmin.html, /An administrator must sign your organisation up/);

      const browser = new Browser();
      const { url } = consentRequestOf(await startSignUp(browser, roster, contoso.admin.props.userPrincipalName));
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
      // Another directory administrator signing up again does not become a Roster admin beside the existing one.
      const other = roster.emulator.ctx.directory.addUser(contoso.tenant, { userPrincipalName: 'global@contoso.com', displayName: 'Global Admin', password: 'pw', admin: true });
      const browser = new Browser();
      const second = await signUp(browser, roster, contoso, 'accept', other.props.userPrincipalName);
      assert.match(second.html, /already has Roster administrators/);
      assert.match((await browser.get(`${roster.url}/app`)).html, /Your role in Roster<\/dt><dd>Member/);
      const signer = await roster.db.store.db.selectFrom('tenants').select('signed_up_by_oid').where('id', '=', contoso.tenant.id).executeTakeFirst();
      assert.equal(signer?.signed_up_by_oid, contoso.admin.props.id, 'the first signer stays recorded');
    });

    it('hardening 13: an organisation without a Roster admin says so; only a directory administrator may claim it, once', async () => {
      const admins = await roster.db.store.db.selectFrom('users').select('id').where('tenant_id', '=', contoso.tenant.id).where('roster_role', '=', 'admin').execute();
      await roster.db.store.db.updateTable('users').set({ roster_role: 'member' }).where('tenant_id', '=', contoso.tenant.id).execute();
      try {
        const member = new Browser();
        const memberPage = (await signIn(member, roster, 'user@contoso.com')).final;
        assert.match(memberPage.html, /has no Roster administrator/);
        assert.match(memberPage.html, /Ask a Global Administrator or Privileged Role Administrator/);
        assert.doesNotMatch(memberPage.html, /claim-admin/);
        const memberCsrf = /name="_csrf" value="([^"]+)"/.exec(memberPage.html)![1]!;
        assert.equal((await member.post(`${roster.url}/app/claim-admin`, { _csrf: memberCsrf })).status, 403, 'a member cannot claim');

        const admin = new Browser();
        const adminPage = (await signIn(admin, roster, 'admin@contoso.com')).final;
        assert.match(adminPage.html, /action="\/app\/claim-admin"/);
        assert.equal((await admin.post(`${roster.url}/app/claim-admin`, {})).status, 403, 'the form token is needed');
        const csrf = /action="\/app\/claim-admin">\s*<input type="hidden" name="_csrf" value="([^"]+)"/.exec(adminPage.html)![1]!;
        const claimed = await admin.post(`${roster.url}/app/claim-admin`, { _csrf: csrf });
        assert.equal(claimed.status, 303);
        assert.match((await admin.get(`${roster.url}/app`)).html, /Your role in Roster<\/dt><dd>Administrator/);

        const other = roster.emulator.ctx.directory.addUser(contoso.tenant, { userPrincipalName: 'late@contoso.com', displayName: 'Late Admin', password: 'pw', admin: true });
        const late = new Browser();
        const latePage = (await signIn(late, roster, other.props.userPrincipalName)).final;
        assert.doesNotMatch(latePage.html, /no Roster administrator/);
        const lateCsrf = /name="_csrf" value="([^"]+)"/.exec(latePage.html)![1]!;
        assert.equal((await late.post(`${roster.url}/app/claim-admin`, { _csrf: lateCsrf })).status, 403, 'claimed once');
        assert.match((await late.get(`${roster.url}/app`)).html, /Your role in Roster<\/dt><dd>Member/);
      } finally {
        await roster.db.store.db.updateTable('users').set({ roster_role: 'member' }).where('tenant_id', '=', contoso.tenant.id).execute();
        for (const { id } of admins) await roster.db.store.db.updateTable('users').set({ roster_role: 'admin' }).where('tenant_id', '=', contoso.tenant.id).where('id', '=', id).execute();
      }
    });
  });

  // More sign-ups than the per-minute limits leave room for beside the sign-up rules above: a Roster of their own.
  describe(`security rules of sign-up, further cases (${engine})`, () => {
    let roster: TestRoster;
    let contoso: Org;

    before(async () => {
      roster = await startTestRoster({ engine });
      contoso = addOrg(roster.emulator.ctx, 'Contoso', 'contoso.com');
      const done = await signUp(new Browser(), roster, contoso);
      assert.match(done.html, /Contoso is signed up/);
    });
    after(() => roster.close());

    it('rule 15: the sign-up that signs its admin in starts a new session id; the one the browser had stops working', async () => {
      const member = new Browser();
      await signIn(member, roster, contoso.member.props.userPrincipalName);
      const before = member.cookie(SESSION)!;
      // The same browser, signed in to Roster as the member, signs up with the admin's account at the identity provider.
      const browser = new Browser();
      browser.cookies.set(SESSION, member.cookies.get(SESSION)!);
      assert.match((await signUp(browser, roster, contoso)).html, /Contoso is signed up/);
      const after = browser.cookie(SESSION);
      assert.ok(after && after !== before, 'a new session id');
      assert.match((await browser.get(`${roster.url}/app`)).html, /Your account<\/dt><dd class="upn">admin@contoso\.com/);
      const stale = new Browser();
      stale.cookies.set(SESSION, { value: before, raw: '' });
      assert.equal((await stale.get(`${roster.url}/app`)).status, 303, 'the old session ended');
      const left = await roster.db.store.db.selectFrom('sessions').select('id_hash').where('id_hash', '=', hashToken(before)).execute();
      assert.deepEqual(left, []);
    });

    it('rule 11 (hardening 2): a suspended organisation stays suspended, whatever consent callback comes back, even one of a flow started before the suspension', async () => {
      const litware = addOrg(roster.emulator.ctx, 'Litware', 'litware.com');
      assert.match((await signUp(new Browser(), roster, litware)).html, /Litware is signed up/);
      await roster.scheduler.syncNow(litware.tenant.id);
      const admin = new Browser();
      const flow = consentRequestOf(await startSignUp(admin, roster, litware.admin.props.userPrincipalName));
      await new TenantLifecycle(roster.db.store).suspend(litware.tenant.id, 'operator', Date.now());
      const row = () => roster.db.store.db.selectFrom('tenants').select(['state', 'signup_context', 'signed_up_by_oid']).where('id', '=', litware.tenant.id).executeTakeFirst().then((r) => r && { ...r });
      const before = await row();
      const forged = await new Browser().get(`${roster.url}/signup/callback?admin_consent=True&tenant=${litware.tenant.id}&state=${flow.state}`);
      assert.equal(forged.status, 400);
      const own = await admin.get(`${roster.url}/signup/callback?admin_consent=True&tenant=${litware.tenant.id}&state=${flow.state}`);
      assert.equal(own.status, 403);
      assert.match(own.html, /access to Roster is suspended/);
      assert.equal(admin.cookie(SESSION), undefined, 'nobody signed in');
      const again = await startSignUp(new Browser(), roster, litware.admin.props.userPrincipalName);
      assert.equal(again.status, 403, 'a new sign-up is refused before consent');
      assert.deepEqual(await row(), before);
      assert.equal(before?.state, 'suspended');
    });

    it('hardening 13: an organisation whose only admin was deleted or disabled in the directory has no Roster admin, and a directory administrator may claim it', async () => {
      const db = roster.db.store.db;
      const claimant = roster.emulator.ctx.directory.addUser(contoso.tenant, { userPrincipalName: 'successor@contoso.com', displayName: 'Successor Admin', password: 'pw', admin: true });
      const onlyAdmin = db.updateTable('users').where('tenant_id', '=', contoso.tenant.id).where('id', '=', contoso.admin.props.id);
      for (const [gone, restore] of [
        [{ deleted_at: Date.now() }, { deleted_at: null }],
        [{ account_enabled: 0 }, { account_enabled: 1 }],
      ] as const) {
        const round = Object.keys(gone)[0];
        await onlyAdmin.set(gone).execute();
        try {
          const browser = new Browser();
          const page = (await signIn(browser, roster, claimant.props.userPrincipalName)).final;
          assert.match(page.html, /has no Roster administrator/, round);
          const csrf = /action="\/app\/claim-admin">\s*<input type="hidden" name="_csrf" value="([^"]+)"/.exec(page.html)?.[1];
          assert.ok(csrf, `${round}: the claim form is offered`);
          assert.equal((await browser.post(`${roster.url}/app/claim-admin`, { _csrf: csrf })).status, 303, round);
          assert.match((await browser.get(`${roster.url}/app`)).html, /Your role in Roster<\/dt><dd>Administrator/, round);
        } finally {
          await db.updateTable('users').set({ roster_role: 'member' }).where('tenant_id', '=', contoso.tenant.id).where('id', '=', claimant.props.id).execute();
          await onlyAdmin.set(restore).execute();
        }
      }
    });
  });
}
