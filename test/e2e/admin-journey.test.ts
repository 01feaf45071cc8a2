import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { GraphReader } from '../../src/directory/graph-reader.ts';
import { DirectorySync } from '../../src/directory/sync.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { answerEmulatorUntil, launchChromium, SCREENSHOTS, signInAtEmulator } from '../helpers/chromium.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { connectToEmulator } from '../helpers/entra.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';

/** Fabrikam's people besides its admin and member: a full listing of four Graph pages. */
const EXTRA_USERS = 3000;
const DEPARTMENTS = ['Sales', 'Engineering', 'Finance', 'Legal', 'Support'];
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

const padded = (i: number) => String(i).padStart(4, '0');

/**
 * The whole story of an organisation in a real browser: sign-up and the first
 * sync, finding people, changes flowing in from Entra, a held mass deletion,
 * what a member may not do, the operator console, losing and regaining
 * Microsoft's consent, a phone-sized pass, and leaving Roster. The tests run in
 * order and share one Roster.
 */
describe('an organisation administered through Roster in Chromium', () => {
  let emulator: TestEmulator;
  let roster: TestRoster;
  let browser: Browser;
  let fabrikam: Org;
  let contoso: Org;
  let adminContext: BrowserContext;
  let admin: Page;
  let memberContext: BrowserContext;
  let member: Page;
  let operatorContext: BrowserContext;
  let operator: Page;
  /** Person 0042: searched for, promoted, and changed in Entra. */
  let person42Id: string;

  before(async () => {
    emulator = await startTestEmulator();
    fabrikam = addOrg(emulator.ctx, 'Fabrikam', 'fabrikam.com');
    // Contoso runs this Roster: its admin is an operator.
    contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
    emulator.ctx.directory.addUsersUnchecked(
      fabrikam.tenant,
      Array.from({ length: EXTRA_USERS }, (_, i) => ({
        userPrincipalName: `person${padded(i)}@fabrikam.com`,
        mail: `person${padded(i)}@fabrikam.com`,
        displayName: `Person ${padded(i)}`,
        givenName: 'Person',
        surname: padded(i),
        department: DEPARTMENTS[i % DEPARTMENTS.length]!,
        jobTitle: 'Analyst',
        accountEnabled: true,
        userType: 'Member' as const,
      })),
    );
    person42Id = emulator.ctx.directory.requireUser(fabrikam.tenant, 'person0042@fabrikam.com').props.id;
    roster = await startTestRoster({ emulator, operators: [{ tenantId: contoso.tenant.id, objectId: contoso.admin.props.id }] });
    browser = await launchChromium();
    await mkdir(SCREENSHOTS, { recursive: true });
    adminContext = await browser.newContext({ viewport: DESKTOP });
    admin = await adminContext.newPage();
  });
  after(async () => {
    await browser?.close();
    await roster?.close();
    await emulator?.close();
  });

  async function shot(page: Page, name: string, fullPage = true): Promise<void> {
    await page.screenshot({ path: new URL(`${name}.png`, SCREENSHOTS).pathname, fullPage });
  }

  const onEmulator = (url: URL) => url.href.startsWith(roster.emulator.urls.pages);

  const signInThroughEmulator = (page: Page, username: string) => signInAtEmulator(page, roster.emulator.urls.pages, username);

  /** From the home page: the admin signs in and grants consent, and lands signed in as the first Roster admin. */
  async function signUp(page: Page, org: Org): Promise<void> {
    await page.goto(roster.url);
    await page.getByRole('button', { name: 'Sign up your organisation' }).click();
    await signInThroughEmulator(page, org.admin.props.userPrincipalName);
    await consentAndSignIn(page, org);
  }

  /** From the emulator's pages: answer them as the organisation's admin until Roster confirms the sign-up, then go in. */
  async function consentAndSignIn(page: Page, org: Org): Promise<void> {
    await answerEmulatorUntil(page, `${org.tenant.displayName} Admin`, page.getByRole('heading', { name: `${org.tenant.displayName} is signed up` }));
    await page.getByRole('main').getByRole('link', { name: 'Go to Roster' }).click();
    await page.waitForURL(`${roster.url}/app`);
  }

  /** Picks the account on the emulator's account picker (the browser is signed in to Microsoft already). */
  async function pickAccount(page: Page, displayName: string): Promise<void> {
    await page.waitForURL(onEmulator);
    await page.getByRole('button', { name: new RegExp(displayName) }).click();
  }

  async function nav(page: Page, label: string): Promise<void> {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  }

  /** Waits (polling) until the locator's text matches; fails with the last text seen. */
  async function waitForText(locator: Locator, pattern: RegExp): Promise<string> {
    try {
      await locator.filter({ hasText: pattern }).first().waitFor({ timeout: 20_000 });
    } catch {
      assert.fail(`expected ${pattern} in ${locator}, last saw ${JSON.stringify(await locator.first().textContent().catch(() => null))}`);
    }
    return (await locator.first().textContent()) ?? '';
  }

  /** Cells of the newest run in the history table, by column label. */
  async function newestRun(page: Page): Promise<Record<string, string>> {
    const cells = page.locator('table.runs tbody tr').first().locator('td');
    const row: Record<string, string> = {};
    for (const cell of await cells.all()) row[(await cell.getAttribute('data-label'))!] = (await cell.innerText()).trim();
    return row;
  }

  async function progressOf(page: Page): Promise<{ hidden: boolean; max: string | null; value: string | null }> {
    const bar = page.locator('#sync-progress');
    return { hidden: await bar.isHidden(), max: await bar.getAttribute('max'), value: await bar.getAttribute('value') };
  }

  async function tenantState(org: Org): Promise<string | undefined> {
    return (await new TenantRepository(roster.db.store.db).get(org.tenant.id))?.state;
  }

  async function syncHealth(org: Org): Promise<string | undefined> {
    return (await roster.db.store.db.selectFrom('sync_state').select('health').where('tenant_id', '=', org.tenant.id).executeTakeFirst())?.health;
  }

  /** Polls a condition that background work makes true (at most 20 s). */
  async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
    for (const deadline = Date.now() + 20_000; !(await condition()); ) {
      if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Posts one of the admin-only forms from a member's page, as a crafted form would: same origin,
   * with the session's own CSRF token (taken from the sign-out form), so only the role check is left.
   */
  async function forgePost(page: Page, action: string, fields: Record<string, string>): Promise<void> {
    const token = await page.locator('input[name="_csrf"]').first().inputValue();
    const inputs = Object.entries({ _csrf: token, ...fields }).map(([name, value]) => `<input type="hidden" name="${name}" value="${value}">`);
    await page.setContent(`<form method="post" action="${action}">${inputs.join('')}<button type="submit">Send</button></form>`);
    await page.getByRole('button', { name: 'Send' }).click();
    await page.waitForURL((url) => url.pathname === action);
  }

  test('an admin signs up 3,000 users and watches the first sync: live progress that survives a reload, then the history', async () => {
    // The first sync starts the moment the sign-up is confirmed. It is held back until the admin
    // has the sync page open (so the browser never races it), and Graph answers each page slowly.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const syncNow = roster.scheduler.syncNow.bind(roster.scheduler);
    roster.scheduler.syncNow = async (tenantId, options) => {
      await gate;
      return syncNow(tenantId, options);
    };
    let slow = roster.emulator.ctx.faults.add({ target: 'graph', kind: 'delay', delayMs: 1000, tenant: fabrikam.tenant.id });
    try {
      await signUp(admin, fabrikam);
      await admin.getByRole('heading', { name: 'Welcome, Fabrikam Admin' }).waitFor();
      await nav(admin, 'Sync');
      await admin.waitForURL(`${roster.url}/app/sync`);
      const phase = admin.locator('#sync-phase');
      assert.equal(await phase.textContent(), 'No sync running.');
      assert.equal((await progressOf(admin)).hidden, true, 'no bar before a run');
      assert.match(await admin.locator('table.runs, p.empty').first().innerText(), /No sync has run yet/);
      release();
      roster.scheduler.syncNow = syncNow;

      // The page was idle when it loaded: the run shows up through the event stream alone.
      const first = await waitForText(phase, /Full sync running: [1-9]\d* pages?, [\d,]+ users read/);
      // From here Graph is slower still, so the rest of the listing outlasts the reload below.
      roster.emulator.ctx.faults.remove(slow.id);
      slow = roster.emulator.ctx.faults.add({ target: 'graph', kind: 'delay', delayMs: 2000, tenant: fabrikam.tenant.id });
      assert.equal((await progressOf(admin)).hidden, false, 'the bar shows while the run goes');
      assert.equal((await progressOf(admin)).value, null, 'a first sync has no known size: the bar is indeterminate, not full');
      assert.equal(await admin.locator('#sync-now').isDisabled(), true, 'Sync now is off while a run goes');
      assert.notEqual(await admin.locator('[data-count="created"]').innerText(), '0', 'counts show the new users read so far');
      const pagesRead = /running: ([\d,]+ pages?)/.exec(first)![1]!;
      await waitForText(phase, new RegExp(`Full sync running: (?!${pagesRead})[\\d,]+ pages?`));
      await shot(admin, 'admin-sync-progress', false);

      await admin.reload();
      assert.match((await phase.textContent()) ?? '', /Full sync running: \d+ pages?/, 'after a reload the page still shows the run');
      assert.equal((await progressOf(admin)).hidden, false, 'the bar survives a page reload');
      assert.equal(await admin.locator('#sync-counts').isVisible(), true);
      roster.emulator.ctx.faults.remove(slow.id);

      // When the run ends the page reloads by itself and the run is in the history.
      await admin.locator('#sync-live[data-state="idle"]').waitFor();
      await admin.locator('table.runs').first().waitFor();
      const run = await newestRun(admin);
      assert.equal(run.Kind, 'Full');
      assert.equal(run.Status, 'Succeeded');
      assert.equal(run.Pages, '4');
      assert.equal(Number(run.New!.replace(/,/g, '')) + Number(run.Updated!.replace(/,/g, '')), EXTRA_USERS + 2, 'every user was read');
      assert.equal(await phase.textContent(), 'No sync running.');
      assert.equal((await progressOf(admin)).hidden, true);
      assert.match(await admin.locator('.facts').first().innerText(), /Health\s+Healthy/);
      await shot(admin, 'admin-sync-history');
    } finally {
      release();
      roster.scheduler.syncNow = syncNow;
      roster.emulator.ctx.faults.clear();
    }
  });

  test('the admin searches, filters, sorts and pages through users, exports them, and opens and promotes one', async () => {
    await nav(admin, 'Users');
    await admin.waitForURL(`${roster.url}/app/users`);
    assert.match(await admin.locator('p.count').innerText(), /^3,002 users · showing 1–50$/);
    assert.equal(await admin.locator('tbody tr').count(), 50);

    await admin.getByLabel('Search').fill('legal');
    await admin.getByLabel('Show').selectOption({ label: 'Active' });
    await admin.getByLabel('Sort by').selectOption({ label: 'Name' });
    await admin.getByLabel('Order').selectOption({ label: 'Z to A' });
    await admin.getByRole('button', { name: 'Apply' }).click();
    await admin.waitForURL((url) => url.searchParams.get('q') === 'legal');
    const url = new URL(admin.url());
    assert.equal(url.searchParams.get('state'), 'active');
    assert.equal(url.searchParams.get('dir'), 'desc');
    assert.equal(await admin.locator('p.count').innerText(), '600 users matching “legal” · showing 1–50');
    const names = await admin.locator('tbody td[data-label="Name"] a').allInnerTexts();
    assert.equal(names[0], 'Person 2998', 'Z to A by name');
    assert.deepEqual(names, [...names].sort().reverse());
    assert.ok((await admin.locator('tbody td[data-label="Department"]').allInnerTexts()).every((d) => d === 'Legal'));
    assert.equal(await admin.locator('th[aria-sort]').getAttribute('aria-sort'), 'descending');
    await shot(admin, 'admin-users', false);

    await admin.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: 'Next' }).click();
    await waitForText(admin.locator('p.count'), /showing 51–100$/);
    assert.equal(await admin.locator('tbody td[data-label="Name"] a').first().innerText(), 'Person 2748', 'the 51st Legal person from the end');

    // The export follows the same filter.
    const exportHref = await admin.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
    assert.equal(exportHref, '/app/users.csv?q=legal&state=active&dir=desc');
    const csv = await adminContext.request.get(`${roster.url}${exportHref}`);
    assert.equal(csv.status(), 200);
    assert.match(csv.headers()['content-type'] ?? '', /^text\/csv/);
    const lines = (await csv.text()).trim().split(/\r?\n/);
    assert.equal(lines.length, 601, 'a header and the 600 matching users');
    assert.match(lines[1]!, /Person 2998/);

    await admin.getByLabel('Search').fill('Person 0042');
    await admin.getByLabel('Show').selectOption({ label: 'All users' });
    await admin.getByRole('button', { name: 'Apply' }).click();
    await waitForText(admin.locator('p.count'), /^1 user matching “Person 0042”$/);
    await admin.getByRole('link', { name: 'Person 0042' }).click();
    await admin.waitForURL(`${roster.url}/app/users/${person42Id}`);
    await admin.getByRole('heading', { name: 'Person 0042', level: 1 }).waitFor();
    const facts = await admin.locator('dl.facts').innerText();
    assert.match(facts, /User principal name\s+person0042@fabrikam\.com/);
    assert.match(facts, /Job title\s+Analyst/);
    assert.match(facts, /Department\s+Finance/);
    assert.match(facts, /Role in Roster\s+Member/);
    await shot(admin, 'admin-user-detail');

    await admin.getByRole('button', { name: 'Make Roster administrator' }).click();
    await admin.getByRole('button', { name: 'Remove Roster administrator role' }).waitFor();
    assert.match(await admin.locator('dl.facts').innerText(), /Role in Roster\s+Administrator/);
    await nav(admin, 'Organisation');
    assert.deepEqual(await admin.locator('ul.people li a').allInnerTexts(), ['Fabrikam Admin', 'Person 0042']);
  });

  test('a change made in Entra shows after the admin presses Sync now', async () => {
    roster.emulator.ctx.directory.editUser(fabrikam.tenant, person42Id, { jobTitle: 'Head of Research', department: 'Research' });
    await admin.goto(`${roster.url}/app/users/${person42Id}`);
    assert.match(await admin.locator('dl.facts').innerText(), /Job title\s+Analyst/, 'nothing changes before a sync');

    await nav(admin, 'Sync');
    await admin.getByRole('button', { name: 'Sync now' }).click();
    await admin.waitForURL(`${roster.url}/app/sync`);
    await waitForText(admin.locator('table.runs tbody tr').first(), /Incremental\s+Succeeded/);
    const run = await newestRun(admin);
    assert.equal(run.Updated, '1', 'the delta round carried the one change');
    await admin.goto(`${roster.url}/app/users/${person42Id}`);
    const facts = await admin.locator('dl.facts').innerText();
    assert.match(facts, /Job title\s+Head of Research/);
    assert.match(facts, /Department\s+Research/);
  });

  test(
    'a full resync shows a determinate bar that fills as users are listed',
    async () => {
      // A full resync knows how many users to expect, so its bar has a value that should grow.
      roster.emulator.ctx.faults.add({ target: 'graph', kind: 'delay', delayMs: 800, tenant: fabrikam.tenant.id });
      try {
        await admin.goto(`${roster.url}/app/sync`);
        await admin.getByRole('button', { name: 'Full resync' }).click();
        await admin.waitForURL(`${roster.url}/app/sync`);
        await waitForText(admin.locator('#sync-phase'), /Full sync running: [1-9]/);
        const before = await progressOf(admin);
        assert.equal(before.max, String(EXTRA_USERS + 2));
        assert.ok(Number(before.value) > 0, `after a page the bar has a value (${before.value} of ${before.max})`);
        // Polled from here: our CSP forbids the eval behind a string waitForFunction.
        let later = before;
        for (let attempt = 0; attempt < 200 && Number(later.value) <= Number(before.value); attempt++) {
          await admin.waitForTimeout(100);
          later = await progressOf(admin);
        }
        assert.ok(Number(later.value) > Number(before.value), `the bar moves on (${before.value} then ${later.value} of ${later.max})`);
      } finally {
        roster.emulator.ctx.faults.clear();
        await admin.locator('#sync-live[data-state="idle"]').waitFor();
      }
      await waitForText(admin.locator('table.runs tbody tr').first(), /Full\s+Succeeded/);
    },
  );

  test('a sync that would remove a third of the users is held until the admin decides', async () => {
    for (let i = 1000; i < 2000; i++) roster.emulator.ctx.directory.purgeUser(fabrikam.tenant, `person${padded(i)}@fabrikam.com`);
    await admin.goto(`${roster.url}/app/sync`);
    await admin.getByRole('button', { name: 'Sync now' }).click();
    await admin.getByRole('button', { name: 'Confirm: remove these users' }).waitFor({ timeout: 20_000 });
    assert.equal(await admin.getByRole('button', { name: 'Sync now' }).count(), 0, 'no new sync while a decision waits');
    assert.match(await admin.locator('.badge.health-held').innerText(), /Waiting for a decision/);
    assert.match((await newestRun(admin)).Status!, /^Held\s+the delta round would remove 1,000 of 3,002 users/);
    await nav(admin, 'Users');
    assert.match(await admin.locator('p.count').innerText(), /^3,002 users/, 'nobody is removed while held');
    await nav(admin, 'Sync');
    await shot(admin, 'admin-sync-held');

    await admin.getByRole('button', { name: 'Confirm: remove these users' }).click();
    await admin.waitForURL(`${roster.url}/app/sync`);
    assert.equal(await admin.getByRole('button', { name: 'Confirm: remove these users' }).count(), 0);
    assert.match(await admin.locator('.facts').first().innerText(), /Health\s+Healthy/);
    await admin.getByRole('button', { name: 'Sync now' }).waitFor();
    await nav(admin, 'Users');
    assert.match(await admin.locator('p.count').innerText(), /^2,002 users/);
  });

  test('a member browses but sees no admin controls, and forged admin POSTs are refused', async () => {
    memberContext = await browser.newContext({ viewport: DESKTOP });
    member = await memberContext.newPage();
    await member.goto(`${roster.url}/signin`);
    await signInThroughEmulator(member, fabrikam.member.props.userPrincipalName);
    await member.waitForURL(`${roster.url}/app`);
    await member.getByRole('heading', { name: 'Welcome, Fabrikam User' }).waitFor();
    assert.match(await member.locator('dl.facts').last().innerText(), /Your role in Roster\s+Member/);
    assert.equal(await member.getByRole('link', { name: 'Operator console' }).count(), 0);

    await nav(member, 'Sync');
    await member.getByText('Only your organisation\'s Roster administrators can start a sync.').waitFor();
    assert.equal(await member.getByRole('button', { name: 'Sync now' }).count(), 0);
    assert.equal(await member.getByRole('button', { name: 'Full resync' }).count(), 0);
    await nav(member, 'Organisation');
    assert.equal(await member.getByRole('button', { name: 'Leave Roster and delete our data' }).count(), 0);
    assert.equal(await member.getByRole('button', { name: /Reconnect/ }).count(), 0);
    await member.goto(`${roster.url}/app/users/${person42Id}`);
    assert.equal(await member.getByRole('button', { name: /Roster administrator/ }).count(), 0);
    await member.goto(`${roster.url}/app/users?q=Person+0042`);
    assert.equal(await member.locator('tbody tr').count(), 1, 'members can search users');

    const runsBefore = (await roster.db.store.db.selectFrom('sync_runs').select('id').where('tenant_id', '=', fabrikam.tenant.id).execute()).length;
    await member.goto(`${roster.url}/app/sync`);
    await forgePost(member, '/app/sync', {});
    await member.getByRole('heading', { name: 'Administrators only' }).waitFor();
    await member.goto(`${roster.url}/app/organisation`);
    await forgePost(member, '/app/organisation/leave', { confirmName: 'Fabrikam' });
    await member.getByRole('heading', { name: 'Administrators only' }).waitFor();
    await member.goto(`${roster.url}/app/users/${fabrikam.member.props.id}`);
    await forgePost(member, `/app/users/${fabrikam.member.props.id}/role`, { role: 'admin' });
    await member.getByRole('heading', { name: 'Administrators only' }).waitFor();
    await member.goto(`${roster.url}/operator`);
    await member.getByRole('heading', { name: 'Operators only' }).waitFor();

    assert.equal(await tenantState(fabrikam), 'active');
    const runsAfter = (await roster.db.store.db.selectFrom('sync_runs').select('id').where('tenant_id', '=', fabrikam.tenant.id).execute()).length;
    assert.equal(runsAfter, runsBefore, 'no sync was started');
    const state = await roster.db.store.db.selectFrom('sync_state').select('requested_at').where('tenant_id', '=', fabrikam.tenant.id).executeTakeFirstOrThrow();
    assert.equal(state.requested_at, null, 'no sync was requested');
    await member.goto(`${roster.url}/app`);
    assert.match(await member.locator('dl.facts').last().innerText(), /Your role in Roster\s+Member/, 'still a member');
  });

  test('an operator sees every tenant and suspends and resumes one', async () => {
    operatorContext = await browser.newContext({ viewport: DESKTOP });
    operator = await operatorContext.newPage();
    await signUp(operator, contoso);
    await nav(operator, 'Operator console');
    await operator.waitForURL(`${roster.url}/operator`);
    const rows = operator.locator('tbody tr');
    await waitForText(rows.filter({ hasText: 'Contoso' }), /active/);
    assert.deepEqual((await operator.locator('tbody td[data-label="Organisation"] a').allInnerTexts()).sort(), ['Contoso', 'Fabrikam']);
    const fabrikamRow = rows.filter({ hasText: 'Fabrikam' });
    assert.match(await fabrikamRow.locator('td[data-label="State"]').innerText(), /active/);
    assert.equal(await fabrikamRow.locator('td[data-label="Users"]').innerText(), '2,002');
    await shot(operator, 'operator-console');

    // The admin of a customer has no way in.
    await admin.goto(`${roster.url}/operator`);
    await admin.getByRole('heading', { name: 'Operators only' }).waitFor();

    await fabrikamRow.getByRole('link', { name: 'Fabrikam' }).click();
    await operator.waitForURL(`${roster.url}/operator/tenants/${fabrikam.tenant.id}`);
    await operator.getByRole('button', { name: 'Suspend' }).click();
    await operator.getByRole('button', { name: 'Resume' }).waitFor();
    assert.match(await operator.locator('dl.facts').first().innerText(), /State\s+suspended/);
    assert.equal(await operator.getByRole('button', { name: 'Sync now' }).count(), 0, 'a suspended tenant is not synced');
    assert.equal(await tenantState(fabrikam), 'suspended');

    // Every Fabrikam session ended.
    await member.goto(`${roster.url}/app`);
    await member.waitForURL(onEmulator);
    await admin.goto(`${roster.url}/app`);
    await pickAccount(admin, 'Fabrikam Admin');
    await admin.waitForURL(`${roster.url}/auth/callback**`);
    assert.equal(await admin.getByRole('heading', { level: 1 }).innerText(), 'Your organisation\'s access to Roster is suspended');

    await operator.getByRole('button', { name: 'Resume' }).click();
    await operator.getByRole('button', { name: 'Suspend' }).waitFor();
    assert.equal(await tenantState(fabrikam), 'active');
    await operator.getByRole('button', { name: 'Sync now' }).click();
    await operator.waitForURL(`${roster.url}/operator/tenants/${fabrikam.tenant.id}`);
    await operator.locator('table.runs').first().waitFor();

    await admin.goto(`${roster.url}/signin`);
    await pickAccount(admin, 'Fabrikam Admin');
    await admin.waitForURL(`${roster.url}/app`);
    await admin.getByRole('heading', { name: 'Welcome, Fabrikam Admin' }).waitFor();
    await member.goto(`${roster.url}/signin`);
    await pickAccount(member, 'Fabrikam User');
    await member.waitForURL(`${roster.url}/app`);
  });

  test('at phone size (390×844) no page scrolls sideways', async () => {
    const pages: [Page, string[]][] = [
      [admin, ['/app', '/app/users', `/app/users/${person42Id}`, '/app/sync', '/app/organisation']],
      [member, ['/app', '/app/users', '/app/users?q=legal&sort=upn', `/app/users/${fabrikam.member.props.id}`, '/app/sync', '/app/organisation']],
      [operator, ['/operator', `/operator/tenants/${fabrikam.tenant.id}`]],
    ];
    const overflowing: string[] = [];
    for (const [page, paths] of pages) {
      await page.setViewportSize(PHONE);
      for (const path of paths) {
        await page.goto(`${roster.url}${path}`);
        assert.equal(new URL(page.url()).pathname, path.split('?')[0], `still signed in at ${path}`);
        const width = await page.evaluate<number>('document.documentElement.scrollWidth');
        if (width > PHONE.width) overflowing.push(`${path}: ${width}px`);
        if (page === member && path === '/app/users') await shot(member, 'member-users-phone', false);
      }
      await page.setViewportSize(DESKTOP);
    }
    assert.deepEqual(overflowing, [], 'pages wider than the phone');
  });

  test('when consent is revoked in Entra the next sync disconnects the organisation, and consenting again reconnects it', async () => {
    roster.emulator.ctx.directory.revokeConsent(fabrikam.tenant, roster.emulator.ctx.demoAppId);
    await admin.goto(`${roster.url}/app`);
    // The next sync runs in the sync daemon, whose token cache is its own: asking Entra for a token
    // is what reveals the revocation (a token cached before it keeps working until it expires).
    const connection = await connectToEmulator(roster.emulator);
    try {
      const daemon = new DirectorySync({ store: roster.db.store, entra: connection.app(), reader: new GraphReader({ http: connection.http }), graphBaseUrl: connection.graphBaseUrl, consentGraceMs: 0 });
      const outcome = await daemon.run(fabrikam.tenant.id);
      assert.equal(outcome.status, 'failed');
    } finally {
      await connection.close();
    }
    assert.equal(await tenantState(fabrikam), 'disconnected');

    // The admin's session ended with the connection; signing in explains why and how to fix it.
    await admin.reload();
    await pickAccount(admin, 'Fabrikam Admin');
    // With Roster's enterprise app gone, Microsoft asks the person to consent to sign-in again.
    await admin.getByRole('heading', { name: 'Permissions requested' }).waitFor();
    await admin.getByRole('button', { name: 'Accept' }).click();
    await admin.waitForURL(`${roster.url}/auth/callback**`);
    await admin.getByRole('heading', { name: 'Your organisation is not connected to Roster' }).waitFor();
    assert.match(await admin.locator('main').innerText(), /consent was revoked/);
    await shot(admin, 'reconnect');

    await admin.getByRole('button', { name: 'Reconnect your organisation' }).click();
    await consentAndSignIn(admin, fabrikam);
    assert.equal(await tenantState(fabrikam), 'active');
    // The reconnect's first sync runs in the background; then the connection shows as healthy.
    await until(async () => (await syncHealth(fabrikam)) === 'ok', 'the sync after reconnecting succeeds');
    await nav(admin, 'Organisation');
    assert.match(await admin.locator('dl.facts').innerText(), /Connection\s+Connected/);
    assert.deepEqual(await admin.locator('ul.people li a').allInnerTexts(), ['Fabrikam Admin', 'Person 0042'], 'roles survive a reconnect');
    await nav(admin, 'Users');
    assert.match(await admin.locator('p.count').innerText(), /^2,002 users/, 'the data was kept while disconnected');
  });

  test('the admin takes the organisation out of Roster through the Leave Roster form', async () => {
    await nav(admin, 'Organisation');
    await admin.getByRole('heading', { name: 'Leave Roster' }).waitFor();
    await shot(admin, 'admin-organisation');

    await admin.getByLabel('Type Fabrikam to confirm').fill('Fabrikam Ltd');
    await admin.getByRole('button', { name: 'Leave Roster and delete our data' }).click();
    await admin.getByRole('heading', { name: 'Organisation name did not match' }).waitFor();
    assert.equal(await tenantState(fabrikam), 'active', 'a wrong name changes nothing');
    await admin.getByRole('link', { name: 'Back to the organisation page' }).click();

    await admin.getByLabel('Type Fabrikam to confirm').fill('fabrikam');
    await admin.getByRole('button', { name: 'Leave Roster and delete our data' }).click();
    await admin.getByRole('heading', { name: 'Your organisation has left Roster' }).waitFor();
    assert.match(await admin.locator('main').innerText(), /deleted its copy of 2,002 users/);
    assert.equal(await tenantState(fabrikam), 'offboarded');
    assert.equal(await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sign in' }).count(), 1, 'signed out');

    // Nobody at Fabrikam is signed in any more; the operator sees the tenant as offboarded.
    await member.goto(`${roster.url}/app/users`);
    await member.waitForURL(onEmulator);
    await operator.goto(`${roster.url}/operator`);
    assert.match(await operator.locator('tbody tr', { hasText: 'Fabrikam' }).locator('td[data-label="State"]').innerText(), /offboarded/);
    assert.equal(await operator.locator('tbody tr', { hasText: 'Fabrikam' }).locator('td[data-label="Users"]').innerText(), '0');
  });
});
