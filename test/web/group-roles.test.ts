import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Browser, type Hop } from '../helpers/browser.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';
import { signIn, signUp } from './flows.ts';

const XSS_NAME = '<script>alert(1)</script>';

function csrfOf(page: Hop): string {
  const token = /name="_csrf" value="([^"]+)"/.exec(page.html)?.[1];
  assert.ok(token, `no form token on ${page.url}`);
  return token;
}

for (const engine of ENGINES) {
  describe(`roles and access from groups (${engine})`, () => {
    let emulator: TestEmulator;
    let roster: TestRoster;
    let contoso: Org;
    let signer: Browser;
    const ids = {} as Record<'admins' | 'leads' | 'staff' | 'staffEurope' | 'xss' | 'alice' | 'bob' | 'carol', string>;

    const db = () => roster.db.store.db;
    const sessionsOf = async (userId: string) => (await db().selectFrom('sessions').select('user_id').where('user_id', '=', userId).execute()).length;
    const mappings = () => db().selectFrom('group_role_mappings').select(['group_id', 'grants']).where('tenant_id', '=', contoso.tenant.id).orderBy('grants').orderBy('group_id').execute();
    const isAdminPage = async (browser: Browser) => (await browser.get(`${roster.url}/app/organisation`)).html.includes('action="/app/organisation/leave"');
    const change = async (browser: Browser, action: 'add' | 'remove', groupId: string, grants: string) => {
      const page = await browser.get(`${roster.url}/app/organisation`);
      return browser.post(`${roster.url}/app/organisation/group-roles${action === 'remove' ? '/remove' : ''}`, { groupId, grants, _csrf: csrfOf(page) });
    };
    const syncNow = () => roster.scheduler.syncNow(contoso.tenant.id);

    before(async () => {
      emulator = await startTestEmulator();
      contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
      const d = emulator.ctx.directory;
      const person = (name: string) => d.addUser(contoso.tenant, { userPrincipalName: `${name}@contoso.com`, displayName: name[0]!.toUpperCase() + name.slice(1), password: 'pw' }).props.id;
      Object.assign(ids, { alice: person('alice'), bob: person('bob'), carol: person('carol') });
      // Alice is an admin only through nesting: Leads sits inside Roster Admins.
      ids.leads = d.addGroup(contoso.tenant, { displayName: 'Leads', securityEnabled: true, members: [ids.alice] }).props.id;
      ids.admins = d.addGroup(contoso.tenant, { displayName: 'Roster Admins', securityEnabled: true, members: [ids.leads] }).props.id;
      ids.staffEurope = d.addGroup(contoso.tenant, { displayName: 'Staff Europe', securityEnabled: true, members: [ids.carol] }).props.id;
      ids.staff = d.addGroup(contoso.tenant, { displayName: 'Staff', securityEnabled: true, members: [ids.staffEurope, ids.alice, contoso.member.props.id] }).props.id;
      ids.xss = d.addGroup(contoso.tenant, { displayName: XSS_NAME, securityEnabled: true, members: [ids.bob] }).props.id;
      roster = await startTestRoster({ emulator, engine });
      signer = new Browser();
      assert.equal((await signUp(signer, roster, contoso)).status, 200);
      await syncNow();
    });
    after(async () => {
      await roster?.close();
      await emulator?.close();
    });

    it('roles from groups, nested membership counts: a group mapped to admin makes its member (through a nested group) an admin after signing in again; rule 35: audited', async () => {
      const alice = new Browser();
      assert.equal((await signIn(alice, roster, 'alice@contoso.com')).final.status, 200);
      assert.equal(await isAdminPage(alice), false, 'no group mapping yet: Alice is a member');

      const search = await signer.get(`${roster.url}/app/organisation?groupSearch=admins`);
      assert.equal(search.status, 200);
      assert.match(search.html, /Roster Admins/);
      assert.match(search.html, new RegExp(`name="groupId" value="${ids.admins}"`));
      const added = await change(signer, 'add', ids.admins, 'admin');
      assert.equal(added.status, 303, added.html);

      const again = new Browser();
      assert.equal((await signIn(again, roster, 'alice@contoso.com')).final.status, 200);
      assert.equal(await isAdminPage(again), true, 'Alice is an admin through Leads inside Roster Admins');
      const listed = await signer.get(`${roster.url}/app/organisation`);
      assert.match(listed.html, /Groups whose members are Roster administrators[\s\S]*Roster Admins/);
      assert.match(listed.html, /Alice/);

      const audit = await db().selectFrom('audit_log').selectAll().where('tenant_id', '=', contoso.tenant.id).where('action', '=', 'group_role.add').execute();
      assert.equal(audit.length, 1);
      assert.equal(audit[0]!.target, ids.admins);
      assert.equal(audit[0]!.actor_id, `${contoso.tenant.id}:${contoso.admin.props.id}`);
      assert.deepEqual(JSON.parse(audit[0]!.detail!), { grants: 'admin', group: 'Roster Admins' });
    });

    it('a member (not an admin) posting a group mapping gets 403 and nothing changes', async () => {
      const member = new Browser();
      assert.equal((await signIn(member, roster, contoso.member.props.userPrincipalName)).final.status, 200);
      const before = await mappings();
      const refused = await change(member, 'add', ids.staff, 'admin');
      assert.equal(refused.status, 403);
      const removal = await change(member, 'remove', ids.admins, 'admin');
      assert.equal(removal.status, 403);
      assert.deepEqual(await mappings(), before);
    });

    it('rule 20: a forged cross-site post, or one without the form token, is refused', async () => {
      const before = await mappings();
      const crossSite = await signer.post(`${roster.url}/app/organisation/group-roles`, { groupId: ids.staff, grants: 'access', _csrf: csrfOf(await signer.get(`${roster.url}/app/organisation`)) }, { origin: 'https://evil.example' });
      assert.equal(crossSite.status, 403);
      const fetchMetadata = await signer.post(`${roster.url}/app/organisation/group-roles`, { groupId: ids.staff, grants: 'access' }, { 'sec-fetch-site': 'cross-site' });
      assert.equal(fetchMetadata.status, 403);
      const noToken = await signer.post(`${roster.url}/app/organisation/group-roles`, { groupId: ids.staff, grants: 'access' });
      assert.equal(noToken.status, 403);
      // A token is bound to its session: one from another session (an attacker's own, say) does not do.
      const other = new Browser();
      assert.equal((await signIn(other, roster, contoso.member.props.userPrincipalName)).final.status, 200);
      const othersToken = await signer.post(`${roster.url}/app/organisation/group-roles`, { groupId: ids.staff, grants: 'access', _csrf: csrfOf(await other.get(`${roster.url}/app`)) });
      assert.equal(othersToken.status, 403);
      assert.deepEqual(await mappings(), before);
    });

    it('rule 24: a mapping of an unknown group or grant is refused with a clear message', async () => {
      const token = csrfOf(await signer.get(`${roster.url}/app/organisation`));
      assert.equal((await signer.post(`${roster.url}/app/organisation/group-roles`, { groupId: ids.staff, grants: 'owner', _csrf: token })).status, 400);
      assert.equal((await signer.post(`${roster.url}/app/organisation/group-roles`, { groupId: 'not-a-guid', grants: 'admin', _csrf: token })).status, 400);
      const unknown = await signer.post(`${roster.url}/app/organisation/group-roles`, { groupId: '00000000-0000-4000-8000-000000000000', grants: 'admin', _csrf: token });
      assert.equal(unknown.status, 404);
      assert.match(unknown.html, /no such group/);
    });

    it('rule 22: group names are attacker-controlled: escaped in the search results and the mapping list', async () => {
      assert.equal((await change(signer, 'add', ids.xss, 'member')).status, 303);
      for (const path of ['/app/organisation', '/app/organisation?groupSearch=script']) {
        const page = await signer.get(`${roster.url}${path}`);
        assert.equal(page.status, 200);
        assert.ok(!page.html.includes(XSS_NAME), `raw script on ${path}`);
        assert.ok(page.html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), `escaped name on ${path}`);
      }
      assert.equal((await change(signer, 'remove', ids.xss, 'member')).status, 303);
    });

    it('last admin path: an admin cannot remove the mapping that alone makes them admin, nor restrict access to a group they are not in', async () => {
      const alice = new Browser();
      await signIn(alice, roster, 'alice@contoso.com');
      const before = await mappings();
      const removal = await change(alice, 'remove', ids.admins, 'admin');
      assert.equal(removal.status, 409);
      assert.match(removal.html, /remove your own administrator role/);
      assert.match(removal.html, /Nothing was changed/);
      const restriction = await change(alice, 'add', ids.xss, 'access');
      assert.equal(restriction.status, 409);
      assert.match(restriction.html, /shut you out/);
      assert.deepEqual(await mappings(), before, 'both refusals kept nothing');
      assert.equal(await isAdminPage(alice), true);
      const refusals = await db().selectFrom('audit_log').select('action').where('tenant_id', '=', contoso.tenant.id).where('action', 'in', ['group_role.add', 'group_role.remove']).execute();
      assert.equal(refusals.filter((entry) => entry.action === 'group_role.remove').length, 1, 'only the signer\'s earlier removal is logged');
    });

    it('restricted access: a non-member is refused at sign-in with an explanation and no session; nested groups count; a member dropped from the group loses their session at the next sync', async () => {
      const carol = new Browser();
      assert.equal((await signIn(carol, roster, 'carol@contoso.com')).final.status, 200);
      // Alice is in Staff, so she may limit Roster to it.
      const alice = new Browser();
      await signIn(alice, roster, 'alice@contoso.com');
      assert.equal((await change(alice, 'add', ids.staff, 'access')).status, 303);

      const bob = new Browser();
      const refused = await signIn(bob, roster, 'bob@contoso.com');
      assert.equal(refused.final.status, 403);
      assert.match(refused.final.html, /Roster is limited to certain groups/);
      assert.match(refused.final.html, /only members of the group Staff/);
      assert.equal(refused.callback.headers.getSetCookie().some((cookie) => cookie.startsWith('roster_session=')), false, 'no session cookie');
      assert.equal(await sessionsOf(ids.bob), 0);

      assert.equal((await carol.get(`${roster.url}/app`)).status, 200, 'Carol is in Staff through Staff Europe');
      assert.equal(await sessionsOf(ids.carol), 1);
      emulator.ctx.directory.removeGroupMember(contoso.tenant, ids.staffEurope, ids.carol);
      await syncNow();
      assert.equal(await sessionsOf(ids.carol), 0, 'the sync ended her session');
      const after = await carol.get(`${roster.url}/app`);
      assert.equal(after.status, 303);
      assert.match(after.location ?? '', /^\/signin/);
    });

    it('the person who signed up stays admin and can sign in whatever the mapping, and may remove the mapping that made others admin', async () => {
      // The signer is in no group at all, yet access is restricted to Staff.
      const again = new Browser();
      assert.equal((await signIn(again, roster, contoso.admin.props.userPrincipalName)).final.status, 200);
      assert.equal(await isAdminPage(again), true);
      assert.equal((await change(again, 'remove', ids.admins, 'admin')).status, 303);
      await syncNow();
      assert.equal(await isAdminPage(again), true);
      const alice = new Browser();
      assert.equal((await signIn(alice, roster, 'alice@contoso.com')).final.status, 200, 'Alice is still in Staff');
      assert.equal(await isAdminPage(alice), false, 'Alice lost the role the mapping gave her');
    });
  });
}
