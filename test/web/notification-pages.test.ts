import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GraphSubscriptionRepository } from '../../src/store/graph-subscriptions.ts';
import { Browser, decodeHtml } from '../helpers/browser.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { signUp } from './flows.ts';

const text = (html: string) => decodeHtml(html.replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ');

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('live updates on the pages', () => {
  let emulator: TestEmulator;
  let t: TestRoster;
  let org: Org;
  let browser: Browser;

  before(async () => {
    emulator = await startTestEmulator();
    org = addOrg(emulator.ctx, 'Livewire', 'livewire.com');
    t = await startTestRoster({ emulator, notifications: true, operators: [{ tenantId: org.tenant.id, objectId: org.admin.props.id }] });
    browser = new Browser();
    const done = await signUp(browser, t, org);
    assert.equal(done.status, 200, done.html);
  });
  after(async () => {
    await t.close();
    await emulator.close();
  });

  test('rule 1: the users subscription is created right after sign-up, the groups one once groups are synced; the sync page and the operator console show both', async () => {
    const rows = new GraphSubscriptionRepository(t.db.store.db);
    await waitFor('the subscriptions', async () => (await rows.get(org.tenant.id, 'users'))?.state === 'active' && (await rows.get(org.tenant.id, 'groups'))?.state === 'active');
    const sync = await browser.get(`${t.url}/app/sync`);
    assert.match(text(sync.html), /Live updates Users: On renewed (now|\d+ seconds? ago) Groups: On renewed (now|\d+ seconds? ago)/);
    const console = await browser.get(`${t.url}/operator`);
    assert.match(text(console.html), /on, renewed (now|\d+ seconds? ago) users, groups/);
    const detail = await browser.get(`${t.url}/operator/tenants/${org.tenant.id}`);
    assert.match(text(detail.html), /Live updates Users: On renewed .* Groups: On renewed/);
  });

  test('rule 1: a tenant whose groups are not subscribed says so beside its users subscription', async () => {
    const rows = new GraphSubscriptionRepository(t.db.store.db);
    await t.roster.notifications!.subscriptions.remove((await rows.get(org.tenant.id, 'groups'))!);
    const sync = await browser.get(`${t.url}/app/sync`);
    assert.match(text(sync.html), /Users: On renewed .* Groups: off, changes arrive with each scheduled sync \(on once groups are synced with their permission\)/);
    const console = await browser.get(`${t.url}/operator`);
    assert.match(text(console.html), /on, renewed (now|\d+ seconds? ago) users /);
    await t.roster.notifications!.subscriptions.maintain();
    assert.equal((await rows.get(org.tenant.id, 'groups'))?.state, 'active', 'the next pass makes it again');
  });

  test('rule 1: suspending the tenant in the operator console deletes its subscription at once', async () => {
    const detail = await browser.get(`${t.url}/operator/tenants/${org.tenant.id}`);
    const forms = [...detail.html.matchAll(/<form[^>]*action="([^"]*)"/g)].map((m) => decodeHtml(m[1]!));
    const suspended = await browser.submitForm(detail, {}, { formIndex: forms.indexOf(`/operator/tenants/${org.tenant.id}/suspend`) });
    assert.ok(suspended.status < 400, suspended.html);
    await waitFor('the deletion', async () => !emulator.ctx.subscriptions.all().some((s) => s.tenantId === org.tenant.id));
    assert.deepEqual(await new GraphSubscriptionRepository(t.db.store.db).forTenant(org.tenant.id), []);
  });
});
