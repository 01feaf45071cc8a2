import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, consent, demoApp, paramsOf, type Org } from '../helpers/fixtures.ts';
import { authorizeUrl, PagesClient, signInForCode } from '../helpers/pages.ts';

const REDIRECT_URI = 'http://localhost:3000/auth/callback';
const SIGNUP_URI = 'http://localhost:3000/signup/callback';

describe('sign-in pages, consent and logout', () => {
  let emulator: TestEmulator;
  let contoso: Org;
  let fabrikam: Org;
  before(async () => {
    emulator = await startTestEmulator();
    contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
    fabrikam = addOrg(emulator.ctx, 'Fabrikam', 'fabrikam.com');
    consent(emulator.ctx, contoso);
  });
  after(async () => {
    await emulator.close();
  });

  const adminConsentUrl = (tenant: string, extra: Record<string, string> = {}) =>
    `${emulator.urls.pages}/${tenant}/v2.0/adminconsent?${new URLSearchParams({
      client_id: emulator.demoApp.clientId,
      scope: 'https://graph.microsoft.com/.default',
      redirect_uri: SIGNUP_URI,
      state: 'signup-state',
      ...extra,
    })}`;

  const assertRedirectError = (location: string | null, error: string, code: number, state = 'st-1') => {
    assert.ok(location, 'expected a redirect to the app');
    const params = paramsOf(location);
    assert.equal(params.error, error, JSON.stringify(params));
    assert.match(params.error_description ?? '', new RegExp(`^AADSTS${code}: `));
    assert.equal(params.state, state);
    assert.equal(params.error_uri, `https://login.microsoftonline.com/error?code=${code}`);
    return params;
  };

  test('bad client_id is shown on the emulator page (AADSTS700016), not redirected', async () => {
    const url = authorizeUrl(emulator, { extra: { client_id: randomUUID() } });
    const page = await new PagesClient(emulator).get(url);
    assert.equal(page.status, 400);
    assert.equal(page.location, null);
    assert.match(page.html, /AADSTS700016/);
  });

  test('bad redirect_uri is shown on the emulator page (AADSTS50011), not redirected', async () => {
    const page = await new PagesClient(emulator).get(authorizeUrl(emulator, { redirectUri: 'https://evil.example/cb' }));
    assert.equal(page.status, 400);
    assert.equal(page.location, null);
    assert.match(page.html, /AADSTS50011/);
    assert.match(page.html, /https:\/\/evil\.example\/cb/);
  });

  test('unknown tenant in the path is shown on the emulator page (AADSTS90002)', async () => {
    const page = await new PagesClient(emulator).get(authorizeUrl(emulator, { tenant: 'nowhere.example' }));
    assert.equal(page.status, 400);
    assert.equal(page.location, null);
    assert.match(page.html, /AADSTS90002/);
  });

  test('unsupported response_type, bad code_challenge_method and a disabled app redirect with AADSTS errors', async () => {
    const browser = new PagesClient(emulator);
    assertRedirectError((await browser.get(authorizeUrl(emulator, { extra: { response_type: 'token' } }))).location, 'unsupported_response_type', 700051);
    assertRedirectError((await browser.get(authorizeUrl(emulator, { extra: { response_type: 'banana' } }))).location, 'unsupported_response_type', 70005);
    assertRedirectError(
      (await browser.get(authorizeUrl(emulator, { extra: { code_challenge: 'a'.repeat(43), code_challenge_method: 'S512' } }))).location,
      'invalid_request',
      50149,
    );
    demoApp(emulator.ctx).disabled = true;
    try {
      assertRedirectError((await browser.get(authorizeUrl(emulator, {}))).location, 'unauthorized_client', 7000112);
    } finally {
      demoApp(emulator.ctx).disabled = false;
    }
  });

  test('the sign-in page: a real form, the app name, login_hint prefilled, escaped', async () => {
    const page = await new PagesClient(emulator).get(authorizeUrl(emulator, { extra: { login_hint: 'user@contoso.com"><script>alert(1)</script>' } }));
    assert.equal(page.status, 200);
    assert.match(page.html, /<form method="post"/);
    assert.match(page.html, /name="username"/);
    assert.match(page.html, /name="password" type="password"/);
    assert.match(page.html, />Sign in<\/button>/);
    assert.match(page.html, /Roster \(demo\)/);
    assert.ok(page.txn && page.txn.length >= 20);
    assert.ok(!page.html.includes('<script>alert(1)</script>'));
    assert.match(page.html, /value="user@contoso\.com&quot;&gt;&lt;script&gt;/);
  });

  test('wrong password, unknown user and unknown domain re-show the page with a message, no redirect', async () => {
    const browser = new PagesClient(emulator);
    const page = await browser.get(authorizeUrl(emulator, {}));
    for (const [username, password, message] of [
      ['user@contoso.com', 'wrong', /Your account or password is incorrect/],
      ['ghost@contoso.com', 'pw', /Your account or password is incorrect/],
      ['someone@unknown.example', 'pw', /couldn&#39;t find an account/],
    ] as const) {
      const again = await browser.submit(page, { username, password });
      assert.equal(again.status, 200);
      assert.equal(again.location, null);
      assert.match(again.html, message);
      assert.match(again.html, new RegExp(`value="${username.replace(/\./g, '\\.')}"`));
    }
    assert.equal(browser.cookieCount, 0, 'no session after failed sign-ins');
  });

  test('login_required (AADSTS50058) for prompt=none without a session', async () => {
    const page = await new PagesClient(emulator).get(authorizeUrl(emulator, { extra: { prompt: 'none' } }));
    assertRedirectError(page.location, 'login_required', 50058);
  });

  test('SSO session: prompt=none signs in silently, no prompt shows "continue as", prompt=login asks for the password', async () => {
    const { browser } = await signInForCode(emulator, { username: 'user@contoso.com' });
    const silent = await browser.get(authorizeUrl(emulator, { extra: { prompt: 'none' } }));
    assert.equal(silent.status, 302);
    assert.ok(paramsOf(silent.location).code);

    const picker = await browser.get(authorizeUrl(emulator, {}));
    assert.equal(picker.status, 200);
    assert.match(picker.html, /Pick an account/);
    assert.match(picker.html, /user@contoso\.com/);
    assert.match(picker.html, /Use another account/);
    const picked = await browser.submit(picker, { account: `${contoso.tenant.id}:${contoso.member.props.id}` });
    assert.ok(paramsOf(picked.location).code);
    const other = await browser.submit(await browser.get(authorizeUrl(emulator, {})), { account: 'other' });
    assert.match(other.html, /name="password"/);

    const hinted = await browser.get(authorizeUrl(emulator, { extra: { login_hint: 'user@contoso.com' } }));
    assert.ok(paramsOf(hinted.location).code, 'a login_hint naming the session account skips the picker');

    const login = await browser.get(authorizeUrl(emulator, { extra: { prompt: 'login' } }));
    assert.equal(login.status, 200);
    assert.match(login.html, /name="password"/);
  });

  test('AADSTS50020: a user from another directory on a tenant-specific authorize', async () => {
    const browser = new PagesClient(emulator);
    const page = await browser.get(authorizeUrl(emulator, { tenant: contoso.tenant.id }));
    const landed = await browser.submit(page, { username: 'admin@fabrikam.com', password: 'pw' });
    const params = assertRedirectError(landed.location, 'access_denied', 50020);
    assert.match(params.error_description!, /does not exist in tenant 'Contoso'/);
  });

  test('a guest: the home account signs into the resource tenant as its guest object, with idp', async () => {
    const guest = emulator.ctx.directory.addUser(contoso.tenant, {
      userPrincipalName: 'guest_fabrikam.com#EXT#@contoso.onmicrosoft.com',
      mail: 'guest@fabrikam.com',
      displayName: 'Gus Guest',
      userType: 'Guest',
    });
    emulator.ctx.directory.addUser(fabrikam.tenant, { userPrincipalName: 'guest@fabrikam.com', password: 'pw' });
    const { code, verifier } = await signInForCode(emulator, { tenant: contoso.tenant.id, username: 'guest@fabrikam.com' });
    const res = await emulator.fetch(`${emulator.urls.authority}/${contoso.tenant.id}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', client_id: emulator.demoApp.clientId, client_secret: emulator.demoApp.clientSecret, code, code_verifier: verifier, redirect_uri: REDIRECT_URI }).toString(),
    });
    const body = (await res.json()) as { id_token: string };
    assert.equal(res.status, 200, JSON.stringify(body));
    const claims = JSON.parse(Buffer.from(body.id_token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    assert.equal(claims.tid, contoso.tenant.id);
    assert.equal(claims.oid, guest.props.id);
    assert.equal(claims.idp, `https://sts.windows.net/${fabrikam.tenant.id}/`);
  });

  test('AADSTS90094: a non-admin of a tenant without consent sees "Need admin approval" and can only go back', async () => {
    const browser = new PagesClient(emulator);
    const page = await browser.get(authorizeUrl(emulator, {}));
    const approval = await browser.submit(page, { username: 'user@fabrikam.com', password: 'pw' });
    assert.equal(approval.status, 200);
    assert.match(approval.html, /Need admin approval/);
    assert.match(approval.html, /Return to the application/);
    const back = await browser.submit(approval, { decision: 'return' });
    assertRedirectError(back.location, 'access_denied', 90094);
    assert.equal(fabrikam.tenant.servicePrincipals.size, 0);
  });

  test('AADSTS65004: an admin cancels the consent screen (error_subcode=cancel); accepting creates a delegated-only service principal', async () => {
    const org = addOrg(emulator.ctx, 'Tailspin', 'tailspin.example');
    const browser = new PagesClient(emulator);
    const consentScreen = await browser.submit(await browser.get(authorizeUrl(emulator, { scope: 'openid profile User.Read' })), { username: 'admin@tailspin.example', password: 'pw' });
    assert.equal(consentScreen.status, 200);
    assert.match(consentScreen.html, /Permissions requested/);
    assert.match(consentScreen.html, /Sign you in and read your profile/);
    assert.match(consentScreen.html, />Accept</);
    assert.match(consentScreen.html, />Cancel</);
    const cancelled = await browser.submit(consentScreen, { decision: 'cancel' });
    const params = assertRedirectError(cancelled.location, 'access_denied', 65004);
    assert.equal(params.error_subcode, 'cancel');
    assert.equal(org.tenant.servicePrincipals.size, 0);

    const again = await browser.submit(await browser.get(authorizeUrl(emulator, {})), { account: `${org.tenant.id}:${org.admin.props.id}` });
    assert.match(again.html, /Permissions requested/);
    const accepted = await browser.submit(again, { decision: 'accept' });
    assert.ok(paramsOf(accepted.location).code);
    assert.deepEqual(org.tenant.servicePrincipals.get(emulator.demoApp.clientId)?.appRoles, []);
  });

  test('prompt=consent shows the consent screen again to an admin of a consented tenant', async () => {
    const browser = new PagesClient(emulator);
    const page = await browser.submit(await browser.get(authorizeUrl(emulator, { extra: { prompt: 'consent' } })), { username: 'admin@contoso.com', password: 'pw' });
    assert.match(page.html, /Permissions requested/);
  });

  test('form_post answers with a form that posts code and state to the redirect URI', async () => {
    const browser = new PagesClient(emulator);
    const page = await browser.get(authorizeUrl(emulator, { extra: { response_mode: 'form_post' } }));
    const answer = await browser.submit(page, { username: 'user@contoso.com', password: 'pw' });
    assert.equal(answer.status, 200);
    assert.match(answer.html, new RegExp(`<form method="post" action="${REDIRECT_URI.replace(/[/.]/g, '\\$&')}">`));
    assert.match(answer.html, /name="code" value="[^"]+"/);
    assert.match(answer.html, /name="state" value="st-1"/);
  });

  test('form_post carries errors too: a 200 page whose form posts the error and state', async () => {
    const answer = await new PagesClient(emulator).get(authorizeUrl(emulator, { extra: { response_mode: 'form_post', response_type: 'token' } }));
    assert.equal(answer.status, 200);
    assert.match(answer.html, /name="error" value="unsupported_response_type"/);
    assert.match(answer.html, /name="error_description" value="AADSTS700051: /);
    assert.match(answer.html, /name="state" value="st-1"/);
  });

  describe('admin consent', () => {
    test('common is refused (AADSTS9001023) and a bad redirect_uri stays on the emulator page', async () => {
      const browser = new PagesClient(emulator);
      const common = await browser.get(adminConsentUrl('common'));
      const params = assertRedirectError(common.location, 'invalid_request', 9001023, 'signup-state');
      assert.equal(params.tenant, undefined);
      const bad = await browser.get(adminConsentUrl('organizations', { redirect_uri: 'https://evil.example/' }));
      assert.equal(bad.status, 400);
      assert.equal(bad.location, null);
      assert.match(bad.html, /AADSTS50011/);
    });

    test('AADSTS90094: a non-admin cannot grant; going back redirects with access_denied and no tenant', async () => {
      const browser = new PagesClient(emulator);
      const approval = await browser.submit(await browser.get(adminConsentUrl('organizations')), { username: 'user@fabrikam.com', password: 'pw' });
      assert.match(approval.html, /Need admin approval/);
      const back = await browser.submit(approval, { decision: 'return' });
      const params = assertRedirectError(back.location, 'access_denied', 90094, 'signup-state');
      assert.equal(params.tenant, undefined);
      assert.equal(params.admin_consent, undefined);
      assert.equal(fabrikam.tenant.servicePrincipals.size, 0);
    });

    test('AADSTS50020: an admin of another directory on a tenant-specific admin consent', async () => {
      const browser = new PagesClient(emulator);
      const landed = await browser.submit(await browser.get(adminConsentUrl(fabrikam.tenant.id)), { username: 'admin@contoso.com', password: 'pw' });
      const params = assertRedirectError(landed.location, 'access_denied', 50020, 'signup-state');
      assert.equal(params.tenant, undefined);
    });

    test('AADSTS65004: the admin cancels; accepting grants User.Read.All and GroupMember.Read.All and redirects with admin_consent=True and the tenant GUID', async () => {
      const browser = new PagesClient(emulator);
      const screen = await browser.submit(await browser.get(adminConsentUrl('organizations')), { username: 'admin@fabrikam.com', password: 'pw' });
      assert.match(screen.html, /Permissions requested/);
      assert.match(screen.html, /Review for your organization/);
      assert.match(screen.html, /Read all users&#39; full profiles/);
      assert.match(screen.html, /User\.Read\.All/);
      const cancelled = await browser.submit(screen, { decision: 'cancel' });
      const params = assertRedirectError(cancelled.location, 'access_denied', 65004, 'signup-state');
      assert.equal(params.error_subcode, 'cancel');
      assert.equal(params.tenant, undefined);
      assert.equal(fabrikam.tenant.servicePrincipals.size, 0);

      const again = await browser.get(adminConsentUrl('fabrikam.com'));
      const screen2 = await browser.submit(again, { account: `${fabrikam.tenant.id}:${fabrikam.admin.props.id}` });
      const granted = await browser.submit(screen2, { decision: 'accept' });
      assert.ok(granted.location?.startsWith(`${SIGNUP_URI}?`));
      const ok = paramsOf(granted.location);
      assert.equal(ok.admin_consent, 'True');
      assert.equal(ok.tenant, fabrikam.tenant.id);
      assert.equal(ok.state, 'signup-state');
      assert.match(ok.scope ?? '', /User\.Read\.All/);
      assert.deepEqual(fabrikam.tenant.servicePrincipals.get(emulator.demoApp.clientId)?.appRoles, ['User.Read.All', 'GroupMember.Read.All']);
    });

    test('AADSTS7000112: admin consent for a disabled app', async () => {
      demoApp(emulator.ctx).disabled = true;
      try {
        const page = await new PagesClient(emulator).get(adminConsentUrl('organizations'));
        assertRedirectError(page.location, 'unauthorized_client', 7000112, 'signup-state');
      } finally {
        demoApp(emulator.ctx).disabled = false;
      }
    });
  });

  describe('logout', () => {
    const logoutUrl = (params: Record<string, string>) => `${emulator.urls.pages}/organizations/oauth2/v2.0/logout?${new URLSearchParams(params)}`;

    test('logout_hint ends that session and redirects to a registered post-logout URI with state', async () => {
      const { browser } = await signInForCode(emulator, { username: 'user@contoso.com' });
      const hint = Buffer.from(JSON.stringify({ tid: contoso.tenant.id, oid: contoso.member.props.id, upn: 'user@contoso.com' })).toString('base64url');
      const out = await browser.get(logoutUrl({ post_logout_redirect_uri: 'http://localhost:3000/', logout_hint: hint, state: 'bye' }));
      assert.equal(out.status, 302);
      assert.equal(out.location, 'http://localhost:3000/?state=bye');
      assert.equal(browser.cookieCount, 0, 'the SSO cookie is cleared');
      const silent = await browser.get(authorizeUrl(emulator, { extra: { prompt: 'none' } }));
      assertRedirectError(silent.location, 'login_required', 50058);
    });

    test('an unregistered post-logout URI is never redirected to', async () => {
      const out = await new PagesClient(emulator).get(logoutUrl({ post_logout_redirect_uri: 'https://evil.example/' }));
      assert.equal(out.status, 200);
      assert.equal(out.location, null);
      assert.match(out.html, /You signed out/);
    });

    test('without logout_hint a signed-in browser gets an account picker, then is signed out', async () => {
      const { browser } = await signInForCode(emulator, { username: 'user@contoso.com' });
      const picker = await browser.get(logoutUrl({ post_logout_redirect_uri: 'http://localhost:3000/' }));
      assert.equal(picker.status, 200);
      assert.match(picker.html, /Which account do you want to sign out of/);
      assert.match(picker.html, /user@contoso\.com/);
      const out = await browser.post(picker.action!, { account: `${contoso.tenant.id}:${contoso.member.props.id}`, post_logout_redirect_uri: 'http://localhost:3000/' });
      assert.equal(out.location, 'http://localhost:3000/');
      assert.equal(browser.cookieCount, 0);
    });
  });
});
