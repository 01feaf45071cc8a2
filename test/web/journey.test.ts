import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { Browser, decodeHtml } from '../helpers/browser.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';
import { passIdentityProvider, signIn, signUp } from './flows.ts';

for (const engine of ENGINES) {
  describe(`sign-up and sign-in journey (${engine})`, () => {
    let roster: TestRoster;
    let contoso: Org;
    let northwind: Org;

    before(async () => {
      roster = await startTestRoster({ engine });
      contoso = addOrg(roster.emulator.ctx, 'Contoso', 'contoso.com');
      northwind = addOrg(roster.emulator.ctx, 'Northwind', 'northwind.com');
    });
    after(() => roster.close());

    it('an admin signs the organisation up, then signs in and becomes its first Roster admin', async () => {
      const browser = new Browser();
      const done = await signUp(browser, roster, contoso);
      assert.equal(done.status, 200, done.html);
      assert.match(done.html, /Contoso is signed up/);
      const tenant = await roster.db.store.db.selectFrom('tenants').selectAll().where('id', '=', contoso.tenant.id).executeTakeFirstOrThrow();
      assert.equal(tenant.state, 'active');

      const signInLink = decodeHtml(/class="button primary" href="([^"]+)">Sign in</.exec(done.html)![1]!);
      const back = await passIdentityProvider(browser, roster, await browser.get(signInLink), contoso.admin.props.userPrincipalName);
      const callback = await browser.get(new URL(back.location!, back.url).href);
      assert.equal(callback.status, 303);
      assert.equal(callback.location, '/app');
      const app = await browser.get(`${roster.url}/app`);
      assert.equal(app.status, 200);
      assert.match(app.html, /Welcome, Contoso Admin/);
      assert.match(app.html, /Administrator/);
    });

    it('a colleague signs in as a member; a never-onboarded organisation is refused', async () => {
      const member = new Browser();
      const { final } = await signIn(member, roster, contoso.member.props.userPrincipalName);
      assert.equal(final.status, 200);
      assert.match(final.html, /Welcome, Contoso User/);
      assert.match(final.html, /Member/);

      const outsider = new Browser();
      const refused = await signIn(outsider, roster, northwind.admin.props.userPrincipalName);
      assert.equal(refused.callback.status, 403);
      assert.match(refused.callback.html, /has not signed up for Roster/);
      assert.equal(outsider.cookie('roster_session'), undefined);
    });
  });
}
