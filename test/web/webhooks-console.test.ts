import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeliveryWorker } from '../../src/events/delivery.ts';
import { repositoriesOf } from '../../src/store/repositories.ts';
import { TenantLifecycle } from '../../src/tenants/lifecycle.ts';
import { Browser, decodeHtml, type Hop } from '../helpers/browser.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { startAnsweringReceiver } from '../helpers/webhook-receiver.ts';
import { ENGINES } from '../helpers/stores.ts';
import { signUp } from './flows.ts';

/** Posts the page's form whose action is `action`, with its hidden fields (the CSRF token) and `fields`. */
async function post(browser: Browser, page: Hop, action: string, fields: Record<string, string> = {}): Promise<Hop> {
  const forms = [...page.html.matchAll(/<form[^>]*action="([^"]*)"[^>]*>/g)];
  const formIndex = forms.findIndex((f) => decodeHtml(f[1]!) === action);
  assert.ok(formIndex >= 0, `no form to ${action} on ${page.url}`);
  return browser.submitForm(page, fields, { formIndex });
}

for (const engine of ENGINES) {
  describe(`operator console: webhooks (${engine})`, () => {
    let emulator: TestEmulator;
    let roster: TestRoster;
    let ops: Org;
    let customer: Org;
    let operator: Browser;
    let admin: Browser;
    let receiver: Awaited<ReturnType<typeof startAnsweringReceiver>>;
    let receiverUrl: string;

    before(async () => {
      emulator = await startTestEmulator();
      ops = addOrg(emulator.ctx, 'Opsco', 'opsco.com');
      customer = addOrg(emulator.ctx, 'Custco', 'custco.com');
      roster = await startTestRoster({ engine, emulator, operators: [{ tenantId: ops.tenant.id, objectId: ops.admin.props.id }] });
      operator = new Browser();
      assert.equal((await signUp(operator, roster, ops)).status, 200);
      admin = new Browser();
      assert.equal((await signUp(admin, roster, customer)).status, 200);
      // A receiver whose answer tries to inject markup into the console.
      receiver = await startAnsweringReceiver(500, '<script>alert("owned")</script><img src=x onerror=alert(1)>', { 'content-type': 'text/html' });
      receiverUrl = receiver.url;
    });
    after(async () => {
      await receiver?.close();
      await roster?.close();
      await emulator?.close();
    });

    it('only operators reach the webhook pages and actions', async () => {
      for (const browser of [admin, new Browser()]) {
        const page = await browser.get(`${roster.url}/operator/webhooks`);
        assert.ok([302, 303, 403, 404].includes(page.status), `got ${page.status}`);
        const created = await browser.post(`${roster.url}/operator/webhooks`, { url: 'https://example.com/x' });
        assert.ok(created.status >= 300, `got ${created.status}`);
      }
      assert.deepEqual(await repositoriesOf(roster.db.store).webhooks.listEndpoints(), []);
    });

    it('rules 32, 33 and 35: an endpoint is created with its secret shown once; plain http to another host is refused; the delivery log escapes what the receiver answered; replay, rotate, disable and delete work', async () => {
      const list = await operator.get(`${roster.url}/operator/webhooks`);
      assert.equal(list.status, 200);
      const refused = await post(operator, list, '/operator/webhooks', { url: 'http://example.com/hooks' });
      assert.equal(refused.status, 400);
      assert.match(refused.html, /url must use https/);

      const created = await post(operator, list, '/operator/webhooks', { url: receiverUrl, description: 'Product <b>sync</b>', event_types: 'tenant.suspended' });
      assert.equal(created.status, 201, created.html);
      const secret = /whsec_[A-Za-z0-9+/=]+/.exec(created.html)?.[0];
      assert.ok(secret, 'the secret is on the page that creates the endpoint');
      const [endpoint] = await repositoriesOf(roster.db.store).webhooks.listEndpoints();
      const detailUrl = `${roster.url}/operator/webhooks/${endpoint!.id}`;
      for (const url of [`${roster.url}/operator/webhooks`, detailUrl]) {
        const page = await operator.get(url);
        assert.equal(page.status, 200);
        assert.ok(!page.html.includes(secret.slice(6, 30)), `${url} never shows the secret again`);
        assert.ok(page.html.includes('Product &lt;b&gt;sync&lt;/b&gt;'));
      }

      // A suspension gives the endpoint an event; one attempt, then failed (a one-step schedule).
      await new TenantLifecycle(roster.db.store).suspend(customer.tenant.id, 'test', Date.now());
      const sender = new DeliveryWorker({ store: roster.db.store, schedule: [0], timeoutMs: 2000 });
      await sender.drain();
      await sender.stop();
      const detail = await operator.get(detailUrl);
      assert.match(detail.html, /HTTP 500/);
      assert.ok(!detail.html.includes('<script>alert'), 'the response excerpt is escaped');
      assert.ok(!detail.html.includes('<img src=x'), 'the response excerpt is escaped');
      assert.match(detail.html, /&lt;script&gt;alert/);
      assert.match(detail.html, />failed</);

      const [delivery] = await repositoriesOf(roster.db.store).webhooks.listDeliveries(endpoint!.id, { limit: 5 });
      const replayed = await post(operator, detail, `/operator/webhooks/${endpoint!.id}/deliveries/${delivery!.id}/replay`);
      assert.equal(replayed.status, 303);
      assert.equal((await repositoriesOf(roster.db.store).webhooks.getDelivery(delivery!.id))?.status, 'pending');

      const rotated = await post(operator, await operator.get(detailUrl), `/operator/webhooks/${endpoint!.id}/rotate`);
      assert.equal(rotated.status, 200);
      const newSecret = /whsec_[A-Za-z0-9+/=]+/.exec(rotated.html)?.[0];
      assert.ok(newSecret && newSecret !== secret);
      assert.match((await operator.get(detailUrl)).html, /previous secret also signs until/);

      assert.equal((await post(operator, await operator.get(detailUrl), `/operator/webhooks/${endpoint!.id}/disable`)).status, 303);
      assert.match((await operator.get(detailUrl)).html, /disabled by an operator/);
      assert.equal((await post(operator, await operator.get(detailUrl), `/operator/webhooks/${endpoint!.id}/enable`)).status, 303);
      assert.equal((await repositoriesOf(roster.db.store).webhooks.getEndpoint(endpoint!.id))?.enabled, 1);

      const noToken = await operator.post(`${detailUrl}/delete`, {});
      assert.equal(noToken.status, 403, 'the form token is required');
      assert.equal((await post(operator, await operator.get(detailUrl), `/operator/webhooks/${endpoint!.id}/delete`)).status, 303);
      assert.equal((await operator.get(detailUrl)).status, 404);
      // Rule 35: every change is in the audit log, with the operator as who.
      const audit = await roster.db.store.db.selectFrom('audit_log').select(['action', 'actor_kind', 'actor_id']).where('target', '=', endpoint!.id).orderBy('id').execute();
      assert.deepEqual(audit.map((e) => e.action), ['webhook.create', 'webhook.replay', 'webhook.rotate_secret', 'webhook.disable', 'webhook.enable', 'webhook.delete']);
      assert.ok(audit.every((e) => e.actor_kind === 'user' && e.actor_id.endsWith(ops.admin.props.id)), JSON.stringify(audit));
      assert.equal((await operator.get(`${roster.url}/operator/webhooks/not-an-id`)).status, 400);
    });
  });
}
