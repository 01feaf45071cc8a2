import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, SCREENSHOTS, signInAtEmulator } from '../helpers/chromium.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';

/** The whole story in a real browser, from an empty database. */
describe('Roster in Chromium', () => {
  let roster: TestRoster;
  let browser: Browser;
  let fabrikam: Org;
  let litware: Org;

  before(async () => {
    roster = await startTestRoster();
    fabrikam = addOrg(roster.emulator.ctx, 'Fabrikam', 'fabrikam.com');
    litware = addOrg(roster.emulator.ctx, 'Litware', 'litware.com');
    browser = await launchChromium();
    await mkdir(SCREENSHOTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await roster?.close();
  });

  async function shot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: new URL(`roster-${name}.png`, SCREENSHOTS).pathname, fullPage: true });
  }

  const signInThroughEmulator = (page: Page, username: string) => signInAtEmulator(page, roster.emulator.urls.pages, username);

  test('sign up an organisation, sign in, reach a protected page, sign out and be refused it', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(roster.url);
    await shot(page, 'home');
    await page.getByRole('button', { name: 'Sign up your organisation' }).click();

    await page.waitForURL((url) => url.href.startsWith(roster.emulator.urls.pages));
    await signInThroughEmulator(page, fabrikam.admin.props.userPrincipalName);
    await page.getByRole('button', { name: 'Accept' }).click();

    await page.waitForURL(`${roster.url}/signup/callback**`);
    await assert.doesNotReject(page.getByRole('heading', { name: 'Fabrikam is signed up' }).waitFor());
    await shot(page, 'signed-up');
    await page.getByRole('link', { name: 'Sign in' }).last().click();

    await page.waitForURL((url) => url.href.startsWith(roster.emulator.urls.pages));
    await page.getByRole('button', { name: /Fabrikam Admin/ }).click();
    await page.waitForURL(`${roster.url}/app`);
    await page.getByRole('heading', { name: 'Welcome, Fabrikam Admin' }).waitFor();
    assert.equal(new URL(page.url()).search, '', 'no code left in the address bar');
    await shot(page, 'app');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${roster.url}/`);
    await page.goto(`${roster.url}/app`);
    await page.waitForURL((url) => url.href.startsWith(roster.emulator.urls.pages));
    assert.match(page.url(), /oauth2\/v2\.0\/authorize/, 'the protected page sends a signed-out visitor to sign in');
    await context.close();
  });

  test('a user of an organisation that never signed up is refused with an explanation', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${roster.url}/signin`);
    await signInThroughEmulator(page, litware.member.props.userPrincipalName);
    // Litware never consented: the emulator itself asks for an admin first.
    await page.getByRole('button', { name: /Return to the application/ }).click();
    await page.waitForURL(`${roster.url}/auth/callback**`);
    await page.getByRole('heading', { name: 'Your organisation has not approved Roster' }).waitFor();
    await shot(page, 'refused-not-approved');

    roster.emulator.ctx.directory.grantAdminConsent(litware.tenant, roster.emulator.ctx.directory.requireApp(roster.emulator.ctx.demoAppId));
    await page.goto(`${roster.url}/signin`);
    await page.getByRole('button', { name: /Litware User/ }).click();
    await page.waitForURL(`${roster.url}/auth/callback**`);
    await page.getByRole('heading', { name: 'Your organisation has not signed up for Roster' }).waitFor();
    await shot(page, 'refused-not-signed-up');
    const cookies = await context.cookies(roster.url);
    assert.equal(cookies.find((c) => c.name === 'roster_session'), undefined);
    await context.close();
  });
});
