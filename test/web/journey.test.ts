import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { Browser } from '../helpers/browser.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';
import { signIn, signUp } from './flows.ts';

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

    it('an admin signs in, grants consent, and is the organisation\'s first Roster admin in the same step', async () => {
      const browser = new Browser();
      const done = await signUp(browser, roster, contoso);
      assert.equal(done.status, 200, done.html);
      assert.match(done.html, /Contoso is signed up/);
      assert.match(done.html, /first Roster administrator/);
      const tenant = await roster.db.store.db.selectFrom('tenants').selectAll().where('id', '=', contoso.tenant.id).executeTakeFirstOrThrow();
      assert.equal(tenant.state, 'active');
      assert.equal(tenant.signed_up_by_oid, contoso.admin.props.id);

      // Already signed in: no second click decides who the admin is.
      assert.match(done.html, /href="\/app">Go to Roster</);
      const app = await browser.get(`${roster.url}/app`);
      assert.equal(app.status, 200);
      assert.match(app.html, /Welcome, Contoso Admin/);
      assert.match(app.html, /Your role in Roster<\/dt><dd>Administrator/);
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
