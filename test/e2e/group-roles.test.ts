import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { answerEmulatorUntil, launchChromium, SCREENSHOTS, signInAtEmulator } from '../helpers/chromium.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';

const DESKTOP = { width: 1280, height: 900 };

/** An administrator gives roles and access through Entra groups in Chromium; the people concerned sign in and see the result. */
describe('roles and access from groups in Chromium', () => {
  let emulator: TestEmulator;
  let roster: TestRoster;
  let browser: Browser;
  let admin: Page;
  let org: Org;

  /** A fresh browser whose person signs in from /signin and ends on whatever Roster shows (`arrived`). */
  async function signInAs(username: string, name: string, arrived: (page: Page) => ReturnType<Page['getByRole']>): Promise<Page> {
    const page = await (await browser.newContext({ viewport: DESKTOP })).newPage();
    await page.goto(`${roster.url}/signin`);
    await signInAtEmulator(page, roster.emulator.urls.pages, username);
    await answerEmulatorUntil(page, name, arrived(page));
    return page;
  }

  async function addGroup(search: string, button: string): Promise<void> {
    await admin.goto(`${roster.url}/app/organisation`);
    await admin.getByLabel('Find a group by name').fill(search);
    await admin.getByRole('button', { name: 'Search' }).click();
    await admin.getByRole('button', { name: button }).click();
    await admin.getByRole('heading', { name: 'Roles and access from groups' }).waitFor();
  }

  before(async () => {
    emulator = await startTestEmulator();
    org = addOrg(emulator.ctx, 'Northwind', 'northwind.com');
    const d = emulator.ctx.directory;
    const dana = d.addUser(org.tenant, { userPrincipalName: 'dana@northwind.com', displayName: 'Dana Lead', password: 'pw' }).props.id;
    const erin = d.addUser(org.tenant, { userPrincipalName: 'erin@northwind.com', displayName: 'Erin Contractor', password: 'pw' }).props.id;
    const managers = d.addGroup(org.tenant, { displayName: 'Managers', securityEnabled: true, members: [dana] }).props.id;
    d.addGroup(org.tenant, { displayName: 'Roster Admins', securityEnabled: true, description: 'Managers, nested', members: [managers] });
    d.addGroup(org.tenant, { displayName: 'Staff', securityEnabled: true, members: [dana, org.member.props.id] });
    d.addGroup(org.tenant, { displayName: 'Contractors', securityEnabled: true, members: [erin] });
    roster = await startTestRoster({ emulator });
    browser = await launchChromium();
    await mkdir(SCREENSHOTS, { recursive: true });
    admin = await (await browser.newContext({ viewport: DESKTOP })).newPage();
    await admin.goto(roster.url);
    await admin.getByRole('button', { name: 'Sign up your organisation' }).click();
    await signInAtEmulator(admin, roster.emulator.urls.pages, org.admin.props.userPrincipalName);
    await answerEmulatorUntil(admin, 'Northwind Admin', admin.getByRole('heading', { name: 'Northwind is signed up' }));
    if (roster.scheduler.isRunning(org.tenant.id)) await roster.scheduler.syncNow(org.tenant.id);
    else await roster.scheduler.syncNow(org.tenant.id);
  });
  after(async () => {
    await browser?.close();
    await roster?.close();
    await emulator?.close();
  });

  test('an admin maps a group to the admin role, and a member of a group nested in it signs in again and is an admin', async () => {
    const before = await signInAs('dana@northwind.com', 'Dana Lead', (page) => page.getByRole('heading', { name: 'Welcome, Dana Lead' }));
    assert.match(await before.locator('dl.facts').last().innerText(), /Your role in Roster\s+Member/);
    await before.context().close();

    await addGroup('Roster', 'Administrators: Roster Admins');
    const mapped = admin.locator('ul[data-grants="admin"]');
    await mapped.getByRole('link', { name: 'Roster Admins' }).waitFor();
    await admin.getByRole('heading', { name: 'Roles and access from groups' }).scrollIntoViewIfNeeded();

    const after = await signInAs('dana@northwind.com', 'Dana Lead', (page) => page.getByRole('heading', { name: 'Welcome, Dana Lead' }));
    assert.match(await after.locator('dl.facts').last().innerText(), /Your role in Roster\s+Administrator/);
    await after.goto(`${roster.url}/app/organisation`);
    await after.getByRole('heading', { name: 'Leave Roster' }).waitFor();
    await after.context().close();
  });

  test('access restricted to one group refuses a non-member with an explanation', async () => {
    await addGroup('Staff', 'Allowed to use Roster: Staff');
    await admin.locator('ul[data-grants="access"]').getByRole('link', { name: 'Staff' }).waitFor();
    await admin.getByLabel('Find a group by name').fill('Contractors');
    await admin.getByRole('button', { name: 'Search' }).click();
    await admin.getByRole('button', { name: 'Members: Contractors' }).waitFor();
    await admin.locator('section[aria-labelledby="group-roles"]').screenshot({ path: new URL('organisation-group-roles.png', SCREENSHOTS).pathname });

    const erin = await signInAs('erin@northwind.com', 'Erin Contractor', (page) => page.getByRole('heading', { name: 'Roster is limited to certain groups' }));
    assert.match(await erin.getByRole('main').innerText(), /only members of the group Staff to use Roster, and you are not a member of it/);
    await erin.goto(`${roster.url}/app`);
    await erin.waitForURL((url) => url.href.startsWith(roster.emulator.urls.pages), { timeout: 10_000 });
    await erin.context().close();
  });
});
