import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import { answerEmulatorUntil, launchChromium, SCREENSHOTS, signInAtEmulator } from '../helpers/chromium.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';

/**
 * Change notifications seen from a browser: after sign-up, a person disabled
 * in Entra drops out of the active users on Roster's users page within
 * seconds, with nobody pressing "Sync now" and no scheduled round.
 */
describe('live updates in Chromium', () => {
  let emulator: TestEmulator;
  let roster: TestRoster;
  let browser: Browser;
  let page: Page;
  let org: Org;

  before(async () => {
    emulator = await startTestEmulator();
    org = addOrg(emulator.ctx, 'Northwind', 'northwind.com');
    roster = await startTestRoster({ emulator, notifications: true });
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    await mkdir(SCREENSHOTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await roster?.close();
    await emulator?.close();
  });

  test('rule 3: a user disabled in the directory disappears from the active users within seconds, without "Sync now"', async () => {
    await page.goto(roster.url);
    await page.getByRole('button', { name: 'Sign up your organisation' }).click();
    await signInAtEmulator(page, emulator.urls.pages, org.admin.props.userPrincipalName);
    await answerEmulatorUntil(page, 'Northwind Admin', page.getByRole('heading', { name: 'Northwind is signed up' }));
    // The first sync and the users subscription follow sign-up; the groups one follows that sync.
    if (roster.scheduler.isRunning(org.tenant.id)) await roster.scheduler.syncNow(org.tenant.id);
    const deadline = Date.now() + 10_000;
    const subscribed = (resource: string) => emulator.ctx.subscriptions.all().some((s) => s.tenantId === org.tenant.id && s.resource === resource);
    while (!subscribed('users') || !subscribed('groups')) {
      assert.ok(Date.now() < deadline, 'the subscriptions were created');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    await page.goto(`${roster.url}/app/sync`);
    // Users and groups each have their line once the first sync has read the groups.
    await page.locator('#live-updates [data-resource="groups"]').getByText(/renewed (now|\d+ seconds? ago)/).waitFor();
    await page.locator('#live-updates [data-resource="users"]').getByText(/renewed (now|\d+ seconds? ago)/).waitFor();
    await page.screenshot({ path: new URL('live-updates-sync.png', SCREENSHOTS).pathname, fullPage: true });
    await page.goto(`${roster.url}/app/users?state=active`);
    const member = page.getByRole('main').getByText('Northwind User');
    await member.first().waitFor();

    const runsBefore = await roster.db.store.db.selectFrom('sync_runs').select('id').where('tenant_id', '=', org.tenant.id).execute();
    const disabledAt = Date.now();
    emulator.ctx.directory.editUser(org.tenant, org.member.props.id, { accountEnabled: false });
    while ((await member.count()) > 0) {
      assert.ok(Date.now() - disabledAt < 30_000, 'the disabled user never left the page');
      await new Promise((resolve) => setTimeout(resolve, 250));
      await page.reload();
    }
    await page.goto(`${roster.url}/app/users?state=disabled`);
    await member.first().waitFor();
    const runsAfter = await roster.db.store.db.selectFrom('sync_runs').select(['id', 'kind']).where('tenant_id', '=', org.tenant.id).execute();
    assert.equal(runsAfter.length, runsBefore.length + 1, 'one delta round, asked for by the notification');
  });
});
