import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GraphReader } from '../../src/directory/graph-reader.ts';
import { DirectorySync } from '../../src/directory/sync.ts';
import { Browser, decodeHtml } from '../helpers/browser.ts';
import { connectToEmulator } from '../helpers/entra.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { addOrg, demoApp, type Org } from '../helpers/fixtures.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';
import { signIn, signUp } from './flows.ts';

const XSS_NAME = '<script>alert(1)</script>';
const XSS_DESCRIPTION = '"><img src=x onerror=alert(2)>';

for (const engine of ENGINES) {
  describe(`group pages (${engine})`, () => {
    let emulator: TestEmulator;
    let roster: TestRoster;
    let contoso: Org;
    let fabrikam: Org;
    let admin: Browser;
    let fabrikamAdmin: Browser;
    let member: Browser;
    const ids = {} as Record<'top' | 'mid' | 'low' | 'xss' | 'formulaUser' | 'deep' | 'fabrikamGroup', string>;

    before(async () => {
      emulator = await startTestEmulator();
      contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
      fabrikam = addOrg(emulator.ctx, 'Fabrikam', 'fabrikam.com');
      const d = emulator.ctx.directory;
      const people = Array.from({ length: 120 }, (_, i) => d.addUser(contoso.tenant, { userPrincipalName: `p${String(i).padStart(3, '0')}@contoso.com`, displayName: `Person ${String(i).padStart(3, '0')}` }).props.id);
      const formula = d.addUser(contoso.tenant, { userPrincipalName: 'formula@contoso.com', displayName: '=HYPERLINK("http://evil.example","click")' });
      ids.formulaUser = formula.props.id;
      ids.deep = people[0]!;
      const low = d.addGroup(contoso.tenant, { displayName: 'Low', securityEnabled: true, members: [people[0]!, people[1]!] });
      const mid = d.addGroup(contoso.tenant, { displayName: 'Mid', securityEnabled: true, members: [low.props.id, people[2]!] });
      const top = d.addGroup(contoso.tenant, { displayName: 'Top', securityEnabled: true, members: [mid.props.id, ...people.slice(3, 100), formula.props.id, contoso.member.props.id] });
      const xss = d.addGroup(contoso.tenant, { displayName: XSS_NAME, description: XSS_DESCRIPTION, securityEnabled: true, members: [people[5]!] });
      d.addGroup(contoso.tenant, { displayName: 'All company', groupTypes: ['Unified'], mailEnabled: true, securityEnabled: false, mailNickname: 'allcompany', members: people.slice(0, 10) });
      Object.assign(ids, { top: top.props.id, mid: mid.props.id, low: low.props.id, xss: xss.props.id });
      ids.fabrikamGroup = d.addGroup(fabrikam.tenant, { displayName: 'Fabrikam secret', securityEnabled: true, members: [fabrikam.member.props.id] }).props.id;
      roster = await startTestRoster({ emulator, engine });
      for (const org of [contoso, fabrikam]) {
        const browser = new Browser();
        const done = await signUp(browser, roster, org);
        assert.equal(done.status, 200, done.html);
        if (roster.scheduler.isRunning(org.tenant.id)) await roster.scheduler.syncNow(org.tenant.id);
        if (org === contoso) admin = browser;
        else fabrikamAdmin = browser;
      }
      member = new Browser();
      assert.equal((await signIn(member, roster, contoso.member.props.userPrincipalName)).final.status, 200);
    });
    after(async () => {
      await roster?.close();
      await emulator?.close();
    });

    it('the groups page lists every group with its kind and direct member count; the kind filter and search narrow it', async () => {
      const page = await member.get(`${roster.url}/app/groups`);
      assert.equal(page.status, 200, page.html.slice(0, 1000));
      assert.match(page.html, /<p class="count" role="status">5 groups/);
      assert.match(page.html, /href="\/app\/groups"[^>]*>Groups<\/a>|>Groups<\/a>/, 'the nav has a Groups entry');
      const top = new RegExp(`<a href="/app/groups/${ids.top}">Top</a>[\\s\\S]*?<td data-label="Direct members">(\\d+)</td>`).exec(page.html);
      assert.equal(top?.[1], '100');
      const m365 = await member.get(`${roster.url}/app/groups?kind=microsoft365`);
      assert.match(m365.html, /1 group\b/);
      assert.match(m365.html, /All company/);
      const search = await member.get(`${roster.url}/app/groups?q=mid`);
      assert.match(search.html, /1 group\b/);
      assert.equal((await member.get(`${roster.url}/app/groups?kind=everything`)).status, 400, 'an unknown kind is refused');
      assert.equal((await member.get(`${roster.url}/app/groups?after=%3Cx%3E`)).status, 400, 'a malformed page key is refused');
    });

    it('group names and descriptions are attacker-controlled: escaped on every page that shows them', async () => {
      const person5 = emulator.ctx.directory.requireUser(contoso.tenant, 'p005@contoso.com').props.id;
      for (const path of ['/app/groups', `/app/groups/${ids.xss}`, `/app/users/${person5}`]) {
        const page = await member.get(`${roster.url}${path}`);
        assert.equal(page.status, 200, path);
        assert.ok(!page.html.includes(XSS_NAME), `${path}: the raw <script> name is not in the page`);
        assert.ok(!page.html.includes('<img src=x'), `${path}: the raw description is not in the page`);
        assert.ok(page.html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), `${path}: the name is shown, escaped`);
      }
    });

    it('rule 24: a group page shows direct members, all people through nesting, and its nested groups, paged', async () => {
      const direct = await member.get(`${roster.url}/app/groups/${ids.top}`);
      assert.equal(direct.status, 200);
      assert.match(direct.html, /<dt>Direct members<\/dt><dd>100<\/dd>/);
      assert.match(direct.html, /<dt>People, nesting included<\/dt><dd>102<\/dd>/, '97 people + formula + member directly, 1 in Mid, 2 in Low');
      // Nested groups are listed in id order (the keyset), so either may come first.
      const nestedSection = direct.html.split('<h2>Nested groups</h2>')[1]?.split('<h2>')[0] ?? '';
      assert.match(nestedSection, new RegExp(`href="/app/groups/${ids.mid}">Mid<`));
      assert.match(nestedSection, new RegExp(`href="/app/groups/${ids.low}">Low<`));
      const seen = new Set<string>();
      let url: string | null = `${roster.url}/app/groups/${ids.top}?view=all`;
      while (url) {
        const page = await member.get(url);
        assert.equal(page.status, 200);
        for (const [, id] of page.html.matchAll(/<td data-label="Name"><a href="\/app\/users\/([0-9a-f-]+)">/g)) seen.add(id!);
        const next = /<a href="([^"]+)" rel="next">/.exec(page.html)?.[1];
        url = next ? `${roster.url}${decodeHtml(next)}` : null;
      }
      assert.deepEqual([...seen].sort(), emulator.ctx.directory.transitiveMemberIds(contoso.tenant, ids.top).sort(), 'every page of all people equals the directory');
    });

    it('the user page lists the user’s groups, direct and through nesting', async () => {
      const page = await member.get(`${roster.url}/app/users/${ids.deep}`);
      assert.equal(page.status, 200);
      for (const [id, how] of [[ids.low, 'direct member'], [ids.mid, 'through a nested group'], [ids.top, 'through a nested group']] as const) {
        assert.match(page.html, new RegExp(`href="/app/groups/${id}">[^<]+</a> <span class="hint">${how}</span>`));
      }
    });

    it('CSV export of a group’s members neutralises formulas and streams every member', async () => {
      const hop = await member.get(`${roster.url}/app/groups/${ids.top}/members.csv?view=all`);
      assert.equal(hop.status, 200);
      assert.match(hop.headers.get('content-type') ?? '', /text\/csv/);
      assert.match(hop.headers.get('content-disposition') ?? '', /attachment; filename="roster-group-[0-9a-f-]+-all-members\.csv"/);
      const lines = hop.html.replace(/^\uFEFF/, '').trim().split(/\r?\n/);
      assert.equal(lines[0], '"id","type","displayName","userPrincipalNameOrMail","status"');
      assert.equal(lines.length - 1, 102);
      const formulaLine = lines.find((line) => line.startsWith(`"${ids.formulaUser}"`));
      assert.ok(formulaLine?.includes(`"'=HYPERLINK(`), `the formula is neutralised: ${formulaLine}`);
    });

    it('a forged group id of another tenant, an unknown id, or a non-GUID finds nothing; signed-out visitors are sent to sign in', async () => {
      assert.equal((await admin.get(`${roster.url}/app/groups/${ids.fabrikamGroup}`)).status, 404);
      assert.equal((await admin.get(`${roster.url}/app/groups/${ids.fabrikamGroup}/members.csv`)).status, 404);
      assert.equal((await admin.get(`${roster.url}/app/groups/00000000-0000-0000-0000-000000000000`)).status, 404);
      assert.equal((await admin.get(`${roster.url}/app/groups/not-a-guid`)).status, 400);
      const anonymous = await new Browser().get(`${roster.url}/app/groups`);
      assert.equal(anonymous.status, 303);
      assert.equal((await new Browser().get(`${roster.url}/app/groups/${ids.top}/members.csv`)).status, 303);
    });

    it('rule 25: a consent without the group permission shows "groups: missing permission" with the fix, and users keep syncing', async () => {
      emulator.ctx.directory.setConsentedAppRoles(fabrikam.tenant, demoApp(emulator.ctx), ['User.Read.All']);
      emulator.ctx.directory.addUser(fabrikam.tenant, { userPrincipalName: 'late@fabrikam.com', displayName: 'Late Arrival' });
      // A process that starts now gets a token with the narrower consent (issued tokens keep their roles until they expire, as in Entra).
      const connection = await connectToEmulator(emulator);
      try {
        const sync = new DirectorySync({ store: roster.db.store, entra: connection.app(), reader: new GraphReader({ http: connection.http }), graphBaseUrl: connection.graphBaseUrl, consentGraceMs: 0 });
        const outcome = await sync.run(fabrikam.tenant.id);
        assert.equal(outcome.status, 'succeeded');
        assert.equal(outcome.groups?.status, 'failed');
      } finally {
        await connection.close();
      }
      const fabAdmin = fabrikamAdmin;
      const sync = await fabAdmin.get(`${roster.url}/app/sync`);
      assert.match(sync.html, /Groups: missing permission/);
      assert.match(sync.html, /GroupMember\.Read\.All/);
      assert.match(sync.html, /Grant the permission/, 'an admin is offered the consent that fixes it');
      const groupsPage = await fabAdmin.get(`${roster.url}/app/groups`);
      assert.match(groupsPage.html, /Groups: missing permission/);
      const users = await fabAdmin.get(`${roster.url}/app/users?q=Late`);
      assert.match(users.html, /Late Arrival/, 'users kept syncing');
    });
  });
}
