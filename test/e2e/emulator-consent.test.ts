import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { launchChromium, SCREENSHOTS } from '../helpers/chromium.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, consent, demoApp, type Org } from '../helpers/fixtures.ts';


/** A real browser through the emulator's pages: admin consent, then sign-in, landing on a local "app". */
describe('emulator pages in Chromium', () => {
  let emulator: TestEmulator;
  let browser: Browser;
  let app: Server;
  let callback: string;
  let contoso: Org;
  let fabrikam: Org;

  before(async () => {
    emulator = await startTestEmulator();
    contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
    fabrikam = addOrg(emulator.ctx, 'Fabrikam', 'fabrikam.com');
    consent(emulator.ctx, fabrikam);
    // The "app": answers every callback with a small page, so the browser lands somewhere real.
    app = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>app</title><h1>Back in the app</h1>'));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    callback = `http://localhost:${(app.address() as AddressInfo).port}/callback`;
    demoApp(emulator.ctx).redirectUris.push(callback);
    browser = await launchChromium();
    await mkdir(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (app ? app.close(() => resolve()) : resolve()));
    await emulator?.close();
  });

  test('an admin signs the organisation up through admin consent and lands on the app with admin_consent=True', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const state = 'signup-7f3a';
      const url = `${emulator.urls.pages}/organizations/v2.0/adminconsent?${new URLSearchParams({
        client_id: emulator.demoApp.clientId,
        scope: 'https://graph.microsoft.com/.default',
        redirect_uri: callback,
        state,
      })}`;
      const response = await page.goto(url);
      assert.equal(response?.status(), 200);
      assert.ok(page.url().startsWith('http://localhost:'), 'plain http on localhost: no certificate interstitial');
      assert.equal(await page.title(), 'Sign in to your account');
      await page.fill('input[name=username]', 'admin@contoso.com');
      await page.fill('input[name=password]', 'pw');
      await page.screenshot({ path: new URL('emulator-signin.png', SCREENSHOTS).pathname });
      await page.click('button:has-text("Sign in")');
      await page.waitForSelector('text=Permissions requested');
      assert.ok(await page.isVisible("text=Read all users' full profiles"));
      await page.screenshot({ path: new URL('emulator-consent.png', SCREENSHOTS).pathname });
      await Promise.all([page.waitForURL(`${callback}?**`), page.click('button:has-text("Accept")')]);
      const landed = new URL(page.url());
      assert.equal(landed.searchParams.get('admin_consent'), 'True');
      assert.equal(landed.searchParams.get('tenant'), contoso.tenant.id);
      assert.equal(landed.searchParams.get('state'), state);
      assert.equal(await page.textContent('h1'), 'Back in the app');
      assert.deepEqual(contoso.tenant.servicePrincipals.get(emulator.demoApp.clientId)?.appRoles, ['User.Read.All', 'GroupMember.Read.All']);
    } finally {
      await context.close();
    }
  });

  test('a user signs in through the authorize page and lands on the app with a code', async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const url = `${emulator.urls.pages}/organizations/oauth2/v2.0/authorize?${new URLSearchParams({
        client_id: emulator.demoApp.clientId,
        response_type: 'code',
        redirect_uri: callback,
        scope: 'openid profile offline_access User.Read',
        state: 'login-91c2',
        nonce: 'n-1',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
        login_hint: 'user@fabrikam.com',
      })}`;
      await page.goto(url);
      assert.equal(await page.inputValue('input[name=username]'), 'user@fabrikam.com');
      await page.fill('input[name=password]', 'wrong');
      await page.click('button:has-text("Sign in")');
      await page.waitForSelector('text=Your account or password is incorrect');
      await page.fill('input[name=password]', 'pw');
      await Promise.all([page.waitForURL(`${callback}?**`), page.click('button:has-text("Sign in")')]);
      const landed = new URL(page.url());
      assert.ok(landed.searchParams.get('code'));
      assert.equal(landed.searchParams.get('state'), 'login-91c2');
      assert.equal(landed.searchParams.get('error'), null);
    } finally {
      await context.close();
    }
  });
});
