import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { answerEmulatorUntil, launchChromium, SCREENSHOTS, signInAtEmulator } from '../helpers/chromium.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';

/** The whole story in a real browser, from an empty database. */
describe('Roster in Chromium', () => {
  let roster: TestRoster;
  let browser: Browser;
  let fabrikam: Org;
  let litware: Org;
  let northwind: Org;

  before(async () => {
    roster = await startTestRoster();
    fabrikam = addOrg(roster.emulator.ctx, 'Fabrikam', 'fabrikam.com');
    litware = addOrg(roster.emulator.ctx, 'Litware', 'litware.com');
    northwind = addOrg(roster.emulator.ctx, 'Northwind', 'northwind.com');
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

  test('a member who tries to sign the organisation up is told an administrator must; nothing changes', async () => {
    roster.emulator.ctx.directory.grantAdminConsent(litware.tenant, roster.emulator.ctx.directory.requireApp(roster.emulator.ctx.demoAppId));
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(roster.url);
    await page.getByRole('button', { name: 'Sign up your organisation' }).click();
    await signInThroughEmulator(page, litware.member.props.userPrincipalName);
    await page.waitForURL(`${roster.url}/auth/callback**`);
    await page.getByRole('heading', { name: 'An administrator must sign your organisation up' }).waitFor();
    await shot(page, 'signup-not-admin');
    const row = await roster.db.store.db.selectFrom('tenants').select('state').where('id', '=', litware.tenant.id).executeTakeFirst();
    assert.equal(row, undefined);
    await context.close();
  });

  test('an administrator signs in, grants consent and lands in Roster as its first admin; sign out and be refused a protected page', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(roster.url);
    await shot(page, 'home');
    await page.getByRole('button', { name: 'Sign up your organisation' }).click();

    // First who: the admin signs in (and accepts the sign-in permissions for an app new to Fabrikam).
    await signInThroughEmulator(page, fabrikam.admin.props.userPrincipalName);
    // Then what: admin consent, asked for Fabrikam's own tenant.
    const consentAsked = page.waitForURL((url) => url.pathname === `/${fabrikam.tenant.id}/v2.0/adminconsent`);
    await answerEmulatorUntil(page, 'Fabrikam Admin', page.getByRole('heading', { name: 'Fabrikam is signed up' }));
    await consentAsked;
    assert.match(page.url(), /\/signup\/callback\?/);
    await page.getByText('first Roster administrator').waitFor();
    await shot(page, 'signed-up');
    await page.getByRole('main').getByRole('link', { name: 'Go to Roster' }).click();
    await page.waitForURL(`${roster.url}/app`);
    await page.getByRole('heading', { name: 'Welcome, Fabrikam Admin' }).waitFor();
    await page.getByText('Administrator', { exact: true }).waitFor();
    assert.equal(new URL(page.url()).search, '', 'nothing left in the address bar');
    await shot(page, 'app');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${roster.url}/`);
    await page.goto(`${roster.url}/app`);
    await page.waitForURL((url) => url.href.startsWith(roster.emulator.urls.pages));
    assert.match(page.url(), /oauth2\/v2\.0\/authorize/, 'the protected page sends a signed-out visitor to sign in');
    await context.close();
  });

  test('an organisation left without a Roster admin: a member is told whom to ask, a directory administrator claims it', async () => {
    await roster.db.store.db.updateTable('users').set({ roster_role: 'member' }).where('tenant_id', '=', fabrikam.tenant.id).execute();
    const memberContext = await browser.newContext();
    const member = await memberContext.newPage();
    await member.goto(`${roster.url}/signin`);
    await signInThroughEmulator(member, fabrikam.member.props.userPrincipalName);
    await member.waitForURL(`${roster.url}/app`);
    await member.getByRole('heading', { name: 'Your organisation has no Roster administrator' }).waitFor();
    await shot(member, 'no-admin-member');
    await memberContext.close();

    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${roster.url}/signin`);
    await signInThroughEmulator(page, fabrikam.admin.props.userPrincipalName);
    await page.waitForURL(`${roster.url}/app`);
    await page.getByRole('button', { name: 'Become the Roster administrator' }).waitFor();
    await shot(page, 'no-admin-claim');
    await page.getByRole('button', { name: 'Become the Roster administrator' }).click();
    await page.waitForURL(`${roster.url}/app`);
    await page.getByText('Administrator', { exact: true }).waitFor();
    assert.equal(await page.getByRole('heading', { name: 'Your organisation has no Roster administrator' }).count(), 0);
    await context.close();
  });

  test('a user of an organisation that never signed up is refused with an explanation', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${roster.url}/signin`);
    await signInThroughEmulator(page, northwind.member.props.userPrincipalName);
    // Northwind never consented: the emulator itself asks for an admin first.
    await page.getByRole('button', { name: /Return to the application/ }).click();
    await page.waitForURL(`${roster.url}/auth/callback**`);
    await page.getByRole('heading', { name: 'Your organisation has not approved Roster' }).waitFor();
    await shot(page, 'refused-not-approved');

    roster.emulator.ctx.directory.grantAdminConsent(northwind.tenant, roster.emulator.ctx.directory.requireApp(roster.emulator.ctx.demoAppId));
    await page.goto(`${roster.url}/signin`);
    await page.getByRole('button', { name: /Northwind User/ }).click();
    await page.waitForURL(`${roster.url}/auth/callback**`);
    await page.getByRole('heading', { name: 'Your organisation has not signed up for Roster' }).waitFor();
    await shot(page, 'refused-not-signed-up');
    const cookies = await context.cookies(roster.url);
    assert.equal(cookies.find((c) => c.name === 'roster_session'), undefined);
    await context.close();
  });
});
