import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AxeBuilder } from '@axe-core/playwright';
import type { Result } from 'axe-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import { DeliveryWorker } from '../../src/events/delivery.ts';
import { WebhookEndpoints } from '../../src/events/endpoints.ts';
import { repositoriesOf } from '../../src/store/repositories.ts';
import { answerEmulatorUntil, launchChromium, SCREENSHOTS, signInAtEmulator } from '../helpers/chromium.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { startAnsweringReceiver } from '../helpers/webhook-receiver.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';

const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const SIZES = [
  { name: 'desktop', viewport: { width: 1280, height: 800 } },
  { name: 'phone', viewport: { width: 390, height: 844 } },
] as const;

/** One line per violation and one per element it hit, so a failure says what to fix and where. */
function report(findings: { where: string; violations: Result[] }[]): string {
  return findings
    .flatMap(({ where, violations }) =>
      violations.map((v) => `${where}: ${v.id} (${v.impact ?? 'n/a'}) ${v.help}\n${v.nodes.map((n) => `    at ${n.target.join(' ')}${n.failureSummary ? ` — ${n.failureSummary.replace(/\s+/g, ' ')}` : ''}`).join('\n')}`),
    )
    .join('\n');
}

/**
 * axe-core (WCAG 2.0/2.1 A and AA) on every page Roster has, for an admin (who
 * is also an operator here) and a member, at desktop width and each page
 * template at phone width too, plus a keyboard check. Axe's script is injected by Playwright through the DevTools
 * protocol, which the pages' Content-Security-Policy does not govern, so the
 * contexts keep CSP on (the test checks that it is on).
 */
describe('accessibility of every page (axe-core, WCAG 2.1 AA)', () => {
  let emulator: TestEmulator;
  let roster: TestRoster;
  let browser: Browser;
  let fabrikam: Org;
  let adminContext: BrowserContext;
  let admin: Page;
  let memberContext: BrowserContext;
  let member: Page;

  before(async () => {
    emulator = await startTestEmulator();
    fabrikam = addOrg(emulator.ctx, 'Fabrikam', 'fabrikam.com');
    emulator.ctx.directory.addUsersUnchecked(
      fabrikam.tenant,
      Array.from({ length: 60 }, (_, i) => ({
        userPrincipalName: `person${i}@fabrikam.com`,
        mail: `person${i}@fabrikam.com`,
        displayName: `Person ${i}`,
        department: ['Sales', 'Legal', 'Finance'][i % 3]!,
        jobTitle: 'Analyst',
        accountEnabled: i % 10 !== 9,
        userType: i % 15 === 14 ? ('Guest' as const) : ('Member' as const),
      })),
    );
    roster = await startTestRoster({ emulator, operators: [{ tenantId: fabrikam.tenant.id, objectId: fabrikam.admin.props.id }] });
    browser = await launchChromium();
    adminContext = await browser.newContext({ viewport: SIZES[0].viewport });
    admin = await adminContext.newPage();
    memberContext = await browser.newContext({ viewport: SIZES[0].viewport });
    member = await memberContext.newPage();
  });
  after(async () => {
    await browser?.close();
    await roster?.close();
    await emulator?.close();
  });

  /** Runs axe on the page as it is, at each size; returns what it found, labelled. */
  async function audit(page: Page, label: string, sizes: readonly (typeof SIZES)[number][] = SIZES): Promise<{ where: string; violations: Result[] }[]> {
    const findings: { where: string; violations: Result[] }[] = [];
    for (const size of sizes) {
      await page.setViewportSize(size.viewport);
      const results = await new AxeBuilder({ page }).withTags(WCAG_TAGS).analyze();
      if (results.violations.length > 0) findings.push({ where: `${label} [${size.name}] ${new URL(page.url()).pathname}`, violations: results.violations });
    }
    await page.setViewportSize(SIZES[0].viewport);
    return findings;
  }

  /**
   * Opens each path and audits it; `expect` is the status each answers with.
   * Every path at desktop width; at phone width the first path of each page
   * template, for whoever meets it first (a template reflows the same way for
   * an admin and a member, error pages share one, and axe is the slow part).
   */
  async function auditPaths(page: Page, who: string, paths: [string, number][], layoutsSeen = new Set<string>()): Promise<{ where: string; violations: Result[] }[]> {
    const findings: { where: string; violations: Result[] }[] = [];
    for (const [path, status] of paths) {
      const response = await page.goto(`${roster.url}${path}`);
      assert.equal(response?.status(), status, `${who} ${path}`);
      assert.ok(new URL(page.url()).href.startsWith(roster.url), `${who} stayed on Roster at ${path}`);
      const layout = status >= 400 ? 'message page' : new URL(path, roster.url).pathname.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/, ':id');
      findings.push(...(await audit(page, who, layoutsSeen.has(layout) ? [SIZES[0]] : SIZES)));
      layoutsSeen.add(layout);
    }
    return findings;
  }

  const signInThroughEmulator = (page: Page, username: string) => signInAtEmulator(page, roster.emulator.urls.pages, username);

  test('public pages, the sign-up journey and error pages have no violations', async () => {
    const findings: { where: string; violations: Result[] }[] = [];
    const home = await admin.goto(roster.url);
    assert.match(home?.headers()['content-security-policy'] ?? '', /script-src 'self'/, 'the audited pages run under their real CSP');
    findings.push(...(await audit(admin, 'visitor home')));
    findings.push(...(await auditPaths(admin, 'visitor', [['/no-such-page', 404], ['/auth/callback?state=stale', 400]])));

    await admin.goto(roster.url);
    await admin.getByRole('button', { name: 'Sign up your organisation' }).click();
    await signInThroughEmulator(admin, fabrikam.admin.props.userPrincipalName);
    await answerEmulatorUntil(admin, 'Fabrikam Admin', admin.getByRole('heading', { name: 'Fabrikam is signed up' }));
    findings.push(...(await audit(admin, 'signed-up message')));
    await admin.getByRole('main').getByRole('link', { name: 'Go to Roster' }).click();
    await admin.waitForURL(`${roster.url}/app`);

    await member.goto(`${roster.url}/signin`);
    await signInThroughEmulator(member, fabrikam.member.props.userPrincipalName);
    await member.waitForURL(`${roster.url}/app`);
    assert.deepEqual(findings, [], `axe found violations:\n${report(findings)}`);
  });

  test('every signed-in page, for an admin and for a member, has no violations', async () => {
    // The first sync has read the directory (it starts at sign-up); wait for it on the sync page.
    await admin.goto(`${roster.url}/app/sync`);
    await admin.locator('table.runs').first().waitFor();
    const someone = emulator.ctx.directory.requireUser(fabrikam.tenant, 'person9@fabrikam.com').props.id;
    const findings: { where: string; violations: Result[] }[] = [];
    const common: [string, number][] = [
      ['/app', 200],
      ['/app/users', 200],
      ['/app/users?q=legal&state=active&sort=department&dir=desc&page=2', 200],
      ['/app/users?q=nobody-matches-this', 200],
      [`/app/users/${someone}`, 200],
      [`/app/users/${fabrikam.admin.props.id}`, 200],
      ['/app/sync', 200],
      ['/app/organisation', 200],
      ['/app/no-such-page', 404],
      ['/app/users/00000000-0000-4000-8000-000000000000', 404],
      ['/app/users?sort=shoe-size', 400],
    ];
    const layoutsSeen = new Set<string>();
    findings.push(...(await auditPaths(admin, 'admin', [...common, ['/operator', 200], [`/operator/tenants/${fabrikam.tenant.id}`, 200], ['/operator/tenants/00000000-0000-4000-8000-000000000000', 404]], layoutsSeen)));
    findings.push(...(await auditPaths(member, 'member', [...common, ['/operator', 403]], layoutsSeen)));
    assert.deepEqual(findings, [], `axe found violations:\n${report(findings)}`);
  });

  test('the webhook pages (endpoints, a secret shown once, a delivery log) have no violations', async () => {
    const receiver = await startAnsweringReceiver(503, 'busy <b>now</b>, try later', { 'retry-after': '120' });
    try {
      const { url } = receiver;
      const { endpoint } = await new WebhookEndpoints({ store: roster.db.store }).create({ url, description: 'Product backend', eventTypes: ['user.created', 'user.deleted', 'tenant.suspended'] }, { kind: 'cli', id: 'cli', name: 'test', source: 'cli' });
      await repositoriesOf(roster.db.store).events.append(['user.created', 'user.deleted', 'tenant.suspended'].map((type) => ({ type, tenantId: fabrikam.tenant.id, data: { id: fabrikam.member.props.id } })), Date.now());
      const sender = new DeliveryWorker({ store: roster.db.store, timeoutMs: 2000 });
      await sender.drain();
      await sender.stop();
      const findings = await auditPaths(admin, 'operator', [['/operator/webhooks', 200]]);
      await admin.screenshot({ path: new URL('operator-webhooks.png', SCREENSHOTS).pathname, fullPage: true });
      findings.push(...(await auditPaths(admin, 'operator', [[`/operator/webhooks/${endpoint.id}`, 200]])));
      await admin.screenshot({ path: new URL('operator-webhook-deliveries.png', SCREENSHOTS).pathname, fullPage: true });
      await admin.goto(`${roster.url}/operator/webhooks`);
      await admin.getByLabel(/^URL/).fill('https://app.example.com/webhooks/roster');
      await admin.getByRole('button', { name: 'Create endpoint' }).click();
      await admin.getByRole('heading', { name: 'Webhook endpoint created' }).waitFor();
      findings.push(...(await audit(admin, 'operator secret')));
      assert.deepEqual(findings, [], `axe found violations:\n${report(findings)}`);
    } finally {
      await receiver.close();
    }
  });

  test('a sync held for a decision has no violations, for admin, member and operator', async () => {
    for (let i = 0; i < 40; i++) emulator.ctx.directory.purgeUser(fabrikam.tenant, `person${i}@fabrikam.com`);
    await admin.goto(`${roster.url}/app/sync`);
    await admin.getByRole('button', { name: 'Sync now' }).click();
    await admin.getByRole('button', { name: 'Confirm: remove these users' }).waitFor();
    const findings: { where: string; violations: Result[] }[] = [];
    findings.push(...(await audit(admin, 'admin held')));
    findings.push(...(await auditPaths(admin, 'admin held', [['/app', 200], ['/app/organisation', 200], [`/operator/tenants/${fabrikam.tenant.id}`, 200], ['/operator', 200]])));
    findings.push(...(await auditPaths(member, 'member held', [['/app/sync', 200], ['/app', 200]])));
    await admin.goto(`${roster.url}/app/sync`);
    await admin.getByRole('button', { name: 'Discard: keep everyone' }).click();
    await admin.getByRole('button', { name: 'Sync now' }).waitFor();
    assert.deepEqual(findings, [], `axe found violations:\n${report(findings)}`);
  });

  test('the operator\'s API key pages and audit log have no violations (with screenshots)', async () => {
    const findings: { where: string; violations: Result[] }[] = [];
    findings.push(...(await auditPaths(admin, 'operator', [['/operator/api-keys', 200], ['/operator/audit?tenant=not-a-tenant', 400]])));
    await admin.goto(`${roster.url}/operator/api-keys`);
    // No scope chosen: the page comes back with the reason and the form as it was.
    await admin.getByLabel('Name').fill('Billing service (production)');
    await admin.getByRole('button', { name: 'Create key' }).click();
    await admin.getByRole('alert').waitFor();
    findings.push(...(await audit(admin, 'operator key refused')));
    await admin.getByLabel(/directory:read/).check();
    await admin.getByLabel('Limited to').selectOption({ label: 'Fabrikam' });
    await admin.getByRole('button', { name: 'Create key' }).click();
    await admin.getByRole('heading', { name: 'API key created' }).waitFor();
    findings.push(...(await audit(admin, 'operator key created')));
    await mkdir(SCREENSHOTS, { recursive: true });
    await admin.screenshot({ path: new URL('operator-api-key-created.png', SCREENSHOTS).pathname, fullPage: true });
    await admin.getByRole('link', { name: 'Done' }).click();
    await admin.getByRole('heading', { name: 'API keys' }).waitFor();
    findings.push(...(await audit(admin, 'operator keys')));
    await admin.screenshot({ path: new URL('operator-api-keys.png', SCREENSHOTS).pathname, fullPage: true });
    findings.push(...(await auditPaths(admin, 'operator', [['/operator/audit', 200], ['/operator/audit?action=api_key.create', 200]])));
    await admin.goto(`${roster.url}/operator/audit`);
    await admin.screenshot({ path: new URL('operator-audit.png', SCREENSHOTS).pathname, fullPage: true });
    findings.push(...(await auditPaths(member, 'member', [['/operator/api-keys', 403], ['/operator/audit', 403]])));
    assert.deepEqual(findings, [], `axe found violations:\n${report(findings)}`);
  });

  test('from the top of a page, Tab reaches the skip link first, and the user search by keyboard alone', async () => {
    await member.goto(`${roster.url}/app/users`);
    await member.keyboard.press('Tab');
    const first = await member.evaluate<{ text: string; href: string | null; visible: boolean }>(`(() => {
      const el = document.activeElement;
      const box = el.getBoundingClientRect();
      return { text: el.textContent.trim(), href: el.getAttribute('href'), visible: box.width > 0 && box.top >= 0 && box.left >= 0 };
    })()`);
    assert.deepEqual(first, { text: 'Skip to content', href: '#main', visible: true }, 'the first Tab stop is a visible skip link');
    await member.keyboard.press('Enter');
    assert.equal(await member.evaluate<string>('document.activeElement.id'), 'main', 'the skip link moves focus to the content');

    // From the content, Tab walks to the search field without a mouse.
    const stops: string[] = [];
    for (let i = 0; i < 10 && stops.at(-1) !== 'q'; i++) {
      await member.keyboard.press('Tab');
      stops.push(await member.evaluate<string>('document.activeElement.id || document.activeElement.tagName'));
    }
    assert.equal(stops.at(-1), 'q', `Tab stops after the skip link: ${stops.join(' → ')}`);
    await member.keyboard.type('legal');
    await member.keyboard.press('Enter');
    await member.waitForURL((url) => url.searchParams.get('q') === 'legal');
    assert.match(await member.locator('p.count').innerText(), /users matching “legal”/);
  });
});
