import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { answerEmulatorUntil, launchChromium, SCREENSHOTS, signInAtEmulator } from '../helpers/chromium.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';

const TEAMS = ['Sales', 'Engineering', 'Finance', 'Legal', 'Support', 'Marketing'];

/** An administrator finds the organisation's groups in Chromium: the list, a nested group's members, and a person's groups. */
describe('groups in Chromium', () => {
  let emulator: TestEmulator;
  let roster: TestRoster;
  let browser: Browser;
  let page: Page;
  let org: Org;
  let firstPerson: string;

  before(async () => {
    emulator = await startTestEmulator();
    org = addOrg(emulator.ctx, 'Northwind', 'northwind.com');
    const d = emulator.ctx.directory;
    const people = Array.from({ length: 240 }, (_, i) => d.addUser(org.tenant, { userPrincipalName: `p${i}@northwind.com`, displayName: `Person ${String(i).padStart(3, '0')}`, department: TEAMS[i % TEAMS.length]! }).props.id);
    firstPerson = people[0]!;
    const teams = TEAMS.map((team, t) => d.addGroup(org.tenant, { displayName: `${team} team`, description: `Everyone in ${team}`, securityEnabled: true, members: people.filter((_, i) => i % TEAMS.length === t) }));
    const leads = d.addGroup(org.tenant, { displayName: 'Team leads', securityEnabled: true, members: people.slice(0, 6) });
    d.addGroup(org.tenant, { displayName: 'All staff', securityEnabled: true, description: 'Every team, nested', members: [...teams.map((g) => g.props.id), leads.props.id, org.admin.props.id] });
    d.addGroup(org.tenant, { displayName: 'Announcements', groupTypes: ['Unified'], mailEnabled: true, securityEnabled: false, mailNickname: 'announcements', description: 'Company-wide news', members: people.slice(0, 50) });
    d.addGroup(org.tenant, { displayName: 'Newsletter', mailEnabled: true, securityEnabled: false, mailNickname: 'newsletter', members: people.slice(100, 140) });
    d.addGroup(org.tenant, { displayName: '<script>alert("group")</script>', description: 'A name an attacker chose', securityEnabled: true, members: people.slice(0, 2) });
    roster = await startTestRoster({ emulator });
    browser = await launchChromium();
    await mkdir(SCREENSHOTS, { recursive: true });
    page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  });
  after(async () => {
    await browser?.close();
    await roster?.close();
    await emulator?.close();
  });

  test('sign up, wait for the first sync, and browse the groups', async () => {
    let dialogs = 0;
    page.on('dialog', (dialog) => {
      dialogs += 1;
      void dialog.dismiss();
    });
    await page.goto(roster.url);
    await page.getByRole('button', { name: 'Sign up your organisation' }).click();
    await signInAtEmulator(page, roster.emulator.urls.pages, org.admin.props.userPrincipalName);
    await answerEmulatorUntil(page, 'Northwind Admin', page.getByRole('heading', { name: 'Northwind is signed up' }));
    if (roster.scheduler.isRunning(org.tenant.id)) await roster.scheduler.syncNow(org.tenant.id);
    await page.getByRole('main').getByRole('link', { name: 'Go to Roster' }).click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Groups', exact: true }).click();
    await page.getByRole('heading', { name: 'Groups', level: 1 }).waitFor();
    assert.match(await page.getByRole('status').first().innerText(), /11 groups/);
    await page.getByText('<script>alert("group")</script>').waitFor();
    await page.screenshot({ path: new URL('groups.png', SCREENSHOTS).pathname, fullPage: true });

    await page.getByRole('link', { name: 'All staff' }).click();
    await page.getByRole('heading', { name: 'All staff', level: 1 }).waitFor();
    await page.getByRole('link', { name: 'All people, nesting included' }).click();
    await page.getByRole('link', { name: 'All people, nesting included' }).and(page.locator('[aria-current="page"]')).waitFor();
    await page.getByRole('table').waitFor();
    await page.screenshot({ path: new URL('group-detail.png', SCREENSHOTS).pathname, fullPage: true });

    await page.goto(`${roster.url}/app/users/${firstPerson}`);
    await page.getByRole('heading', { name: 'Groups', level: 2 }).waitFor();
    await page.screenshot({ path: new URL('user-groups.png', SCREENSHOTS).pathname, fullPage: true });
    assert.equal(dialogs, 0, 'no script from a group name ran');
  });
});
