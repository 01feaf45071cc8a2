import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fetch as undiciFetch } from 'undici';
import type { UserInput } from '../../src/emulator/model.ts';
import { addOrg, demoApp, type Org } from '../helpers/fixtures.ts';
import { Browser, decodeHtml, type Hop } from '../helpers/browser.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';
import { signIn, signUp } from './flows.ts';

const SESSION = 'roster_session';
const WORKERS = 300;
const pad = (n: number) => String(n).padStart(3, '0');

// ---- small local helpers ------------------------------------------------------

/** Waits for the tenant's sync under way in the test Roster, if any (never starts one). */
async function settle(roster: TestRoster, tenantId: string) {
  return roster.scheduler.isRunning(tenantId) ? roster.scheduler.syncNow(tenantId) : undefined;
}

/** Signs an organisation up as `username` (which signs them in); waits for the first sync. */
async function onboard(roster: TestRoster, org: Org, username = org.admin.props.userPrincipalName): Promise<Browser> {
  const browser = new Browser();
  const done = await signUp(browser, roster, org, 'accept', username);
  assert.equal(done.status, 200, done.html);
  assert.match(done.html, / is signed up/);
  await settle(roster, org.tenant.id);
  return browser;
}

async function signedIn(roster: TestRoster, username: string): Promise<Browser> {
  const browser = new Browser();
  const { final } = await signIn(browser, roster, username);
  assert.equal(final.status, 200, final.html);
  return browser;
}

function csrfOf(page: Hop): string {
  const token = /name="_csrf" value="([^"]+)"/.exec(page.html)?.[1];
  assert.ok(token, `no CSRF token on ${page.url}`);
  return decodeHtml(token);
}

/** Submits the page's form posting to `action` (the first one whose markup contains `containing`). */
async function submit(browser: Browser, page: Hop, action: string, fields: Record<string, string> = {}, containing = ''): Promise<Hop> {
  const forms = [...page.html.matchAll(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/g)];
  const formIndex = forms.findIndex((f) => decodeHtml(f[1]!) === action && f[2]!.includes(containing));
  assert.ok(formIndex >= 0, `no form to ${action} (${containing}) on ${page.url}`);
  return browser.submitForm(page, fields, { formIndex });
}

interface Row {
  id: string;
  name: string;
  mail: string;
  upn: string;
  department: string;
  status: string;
}

function userRows(html: string): Row[] {
  const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(html)?.[1] ?? '';
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map(([, tr]) => {
    const cell = (label: string) => decodeHtml(new RegExp(`<td data-label="${label}"[^>]*>([\\s\\S]*?)</td>`).exec(tr!)![1]!.trim());
    const link = /<a href="\/app\/users\/([^"]+)">([\s\S]*?)<\/a>/.exec(tr!)!;
    return { id: link[1]!, name: decodeHtml(link[2]!), mail: cell('Email'), upn: cell('UPN'), department: cell('Department'), status: /class="badge (\w+)"/.exec(tr!)![1]! };
  });
}

function totalOf(html: string): number {
  const match = /<p class="count" role="status">([\d,]+) users?/.exec(html);
  assert.ok(match, 'the users page shows a count');
  return Number(match[1]!.replace(/,/g, ''));
}

async function usersPage(browser: Browser, roster: TestRoster, query: Record<string, string> = {}): Promise<{ page: Hop; rows: Row[]; total: number }> {
  const search = new URLSearchParams(query).toString();
  const page = await browser.get(`${roster.url}/app/users${search ? `?${search}` : ''}`);
  assert.equal(page.status, 200, page.html.slice(0, 2000));
  return { page, rows: userRows(page.html), total: totalOf(page.html) };
}

/** The href of the pager's link with this `rel`, if the page has one. */
function pagerLink(html: string, rel: 'next' | 'prev'): string | undefined {
  const href = new RegExp(`<a href="([^"]+)" rel="${rel}">`).exec(html)?.[1];
  return href === undefined ? undefined : decodeHtml(href);
}

/** Every page of a listing, first to last, by the pages' own Next links. */
async function allRows(browser: Browser, roster: TestRoster, query: Record<string, string>): Promise<{ rows: Row[]; pages: Row[][]; total: number; hops: Hop[] }> {
  const first = await usersPage(browser, roster, query);
  const pages = [first.rows];
  const hops = [first.page];
  for (let next = pagerLink(first.page.html, 'next'); next !== undefined; next = pagerLink(hops.at(-1)!.html, 'next')) {
    assert.match(next, /[?&]after=/, 'Next carries a cursor, not a page number');
    const hop = await browser.get(`${roster.url}${next}`);
    assert.equal(hop.status, 200, hop.html.slice(0, 2000));
    hops.push(hop);
    pages.push(userRows(hop.html));
    assert.ok(pages.length <= 1000, 'the Next links end');
  }
  return { rows: pages.flat(), pages, total: first.total, hops };
}

/** RFC 4180 rows (quoted fields may hold commas, quotes and line breaks). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      if (c === '\r') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows;
}

async function exportCsv(browser: Browser, roster: TestRoster, query: Record<string, string> = {}): Promise<{ hop: Hop; header: string[]; records: Record<string, string>[] }> {
  const search = new URLSearchParams(query).toString();
  const hop = await browser.get(`${roster.url}/app/users.csv${search ? `?${search}` : ''}`);
  assert.equal(hop.status, 200, hop.html.slice(0, 500));
  const text = hop.html.startsWith('\uFEFF') ? hop.html.slice(1) : hop.html;
  const [header, ...rows] = parseCsv(text);
  assert.ok(header);
  for (const row of rows) assert.equal(row.length, header.length, `row of ${row.length} cells: ${row.join('|')}`);
  return { hop, header, records: rows.map((row) => Object.fromEntries(header.map((name, i) => [name, row[i]!]))) };
}

interface Snapshot {
  state: string;
  health: string;
  lastSuccessAt: number | null;
  lastError: string | null;
  run: { kind: string } | null;
  expected: number | null;
}

async function snapshotOf(browser: Browser, roster: TestRoster): Promise<Snapshot> {
  const hop = await browser.get(`${roster.url}/app/sync/events`, { accept: 'application/json' });
  assert.equal(hop.status, 200, hop.html);
  assert.match(hop.headers.get('content-type') ?? '', /application\/json/);
  return JSON.parse(hop.html) as Snapshot;
}

/** Opens the event stream, reads until the first complete event, then hangs up. */
async function firstEvent(browser: Browser, roster: TestRoster): Promise<{ contentType: string; event: string; data: string }> {
  const controller = new AbortController();
  const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v.value}`).join('; ');
  const res = await undiciFetch(`${roster.url}/app/sync/events`, { headers: { accept: 'text/event-stream', cookie }, signal: controller.signal });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (!/^event:[^\n]*\n(?:[^\n]+\n)*\n/m.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    controller.abort();
    await reader.cancel().catch(() => {});
  }
  const block = text.split('\n\n').find((b) => /^event:/m.test(b)) ?? '';
  return {
    contentType: res.headers.get('content-type') ?? '',
    event: /^event: ?(.*)$/m.exec(block)?.[1] ?? '',
    data: [...block.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join('\n'),
  };
}

for (const engine of ENGINES) {
  describe(`admin pages (${engine})`, () => {
    let emulator: TestEmulator;
    let roster: TestRoster;
    let ops: Org;
    let contoso: Org;
    let fabrikam: Org;
    let contosoAdmin: Browser;
    let contosoMember: Browser;
    let opsBrowser: Browser;
    const tricky: Record<'xss' | 'formula' | 'percent' | 'underscore' | 'backslash' | 'guest' | 'disabled' | 'deleted' | 'twin' | 'entraAdmin', string> = {} as never;

    const db = () => roster.db.store.db;
    const count = async (table: 'users' | 'sync_runs' | 'sessions' | 'sync_state', tenantId: string) =>
      Number((await db().selectFrom(table).select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow()).n);
    const tenantState = async (id: string) => (await db().selectFrom('tenants').select('state').where('id', '=', id).executeTakeFirst())?.state;
    const roleOf = async (tenantId: string, id: string) => (await db().selectFrom('users').select('roster_role').where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirstOrThrow()).roster_role;
    const generated = () => contoso.tenant.users.filter((u) => u.props.displayName.startsWith('Worker '));
    /**
     * A small organisation of the test's own (admin, member, and any `extra` users), onboarded and signed in:
     * a test that changes state works on it, so a fault shows in the test that meets it and nowhere else.
     */
    const ownOrg = async (name: string, extra: (domain: string) => UserInput[] = () => []) => {
      const domain = `${name.toLowerCase().replace(/[^a-z]/g, '')}.com`;
      const org = addOrg(emulator.ctx, name, domain);
      const ids = extra(domain).map((input) => emulator.ctx.directory.addUser(org.tenant, input).props.id);
      const admin = await onboard(roster, org);
      const member = await signedIn(roster, org.member.props.userPrincipalName);
      return { org, domain, ids, admin, member };
    };

    before(async () => {
      emulator = await startTestEmulator();
      const ctx = emulator.ctx;
      const d = ctx.directory;
      ops = addOrg(ctx, 'Roster Ops', 'rosterops.com');
      contoso = addOrg(ctx, 'Contoso', 'contoso.com');
      fabrikam = addOrg(ctx, 'Fabrikam', 'fabrikam.com');

      d.addUsersUnchecked(
        contoso.tenant,
        Array.from({ length: WORKERS }, (_, i): UserInput => ({
          displayName: `Worker ${pad(i)}`,
          userPrincipalName: `u${pad((i * 11) % WORKERS)}@contoso.com`,
          mail: `m${pad((i * 7) % WORKERS)}@contoso.com`,
          department: i % 25 === 0 ? 'Finance' : `Team ${pad(i % 10)}`,
        })),
      );
      const add = (input: UserInput) => d.addUser(contoso.tenant, input).props.id;
      tricky.xss = add({ userPrincipalName: 'xss@contoso.com', displayName: '<script>alert(1)</script>', jobTitle: '<img src=x onerror=alert(2)>' });
      tricky.formula = add({
        userPrincipalName: 'fred@contoso.com',
        displayName: 'Formula Fred',
        department: '=HYPERLINK("http://evil")',
        jobTitle: '+SUM(1,2)',
        mobilePhone: '-1+1',
        officeLocation: '@cmd',
        companyName: '\t=1+1',
        employeeId: '\r=2',
      });
      tricky.percent = add({ userPrincipalName: 'growth@contoso.com', displayName: 'Growth 100%' });
      tricky.underscore = add({ userPrincipalName: 'snake@contoso.com', displayName: 'snake_case Sam' });
      tricky.backslash = add({ userPrincipalName: 'slash@contoso.com', displayName: 'Back Slash', department: 'R\\D' });
      tricky.guest = add({ userPrincipalName: 'gus@contoso.com', displayName: 'Gus Guest', mail: 'gus@partner.example', userType: 'Guest' });
      tricky.disabled = add({ userPrincipalName: 'dana@contoso.com', displayName: 'Dana Disabled', accountEnabled: false });
      tricky.deleted = add({ userPrincipalName: 'sol@contoso.com', displayName: 'Sol Deleted' });
      tricky.twin = add({ userPrincipalName: 'twin@contoso.com', displayName: 'Twin Name', department: 'Twins' });
      tricky.entraAdmin = add({ userPrincipalName: 'it@contoso.com', displayName: 'IT Admin', password: 'pw', admin: true });

      d.addUsersUnchecked(fabrikam.tenant, Array.from({ length: 20 }, (_, i): UserInput => ({ displayName: `Worker ${pad(i)}`, userPrincipalName: `w${pad(i)}@fabrikam.com`, department: 'Finance' })));
      d.addUser(fabrikam.tenant, { userPrincipalName: 'twin@fabrikam.com', displayName: 'Twin Name', department: 'Twins' });

      roster = await startTestRoster({ engine, emulator, operators: [{ tenantId: ops.tenant.id, objectId: ops.admin.props.id }] });
      contosoAdmin = await onboard(roster, contoso);
      // The soft delete reaches Roster through the next (incremental) round.
      d.softDeleteUser(contoso.tenant, tricky.deleted);
      assert.equal((await roster.scheduler.syncNow(contoso.tenant.id))?.status, 'succeeded');
      contosoMember = await signedIn(roster, contoso.member.props.userPrincipalName);
      await onboard(roster, fabrikam);
      opsBrowser = await onboard(roster, ops);
    });
    after(async () => {
      await roster?.close();
      await emulator?.close();
    });

    // ---- 1. users page ----------------------------------------------------------

    it('users page: search by name, email, UPN and department finds exactly the right people, case-insensitively', async () => {
      const workers = generated();
      const w = workers[123]!.props;
      const byName = await usersPage(contosoMember, roster, { q: 'wORKER 123' });
      assert.deepEqual(byName.rows.map((r) => r.id), [w.id]);
      assert.equal(byName.total, 1);
      const byMail = await usersPage(contosoMember, roster, { q: w.mail!.toUpperCase() });
      assert.deepEqual(byMail.rows.map((r) => r.id), [w.id]);
      const byUpn = await usersPage(contosoMember, roster, { q: w.userPrincipalName.split('@')[0]! + '@' });
      assert.deepEqual(byUpn.rows.map((r) => r.id), [w.id]);
      const finance = await usersPage(contosoMember, roster, { q: 'finance' });
      const expected = workers.filter((u) => u.props.department === 'Finance').map((u) => u.props.id).sort();
      assert.equal(expected.length, 12);
      assert.deepEqual(finance.rows.map((r) => r.id).sort(), expected);
      assert.equal(finance.total, 12);
      const guest = await usersPage(contosoMember, roster, { q: 'partner.example' });
      assert.deepEqual(guest.rows.map((r) => r.name), ['Gus Guest']);
    });

    it('rule 25: %, _, a backslash and SQL are searched as plain text', async () => {
      const one = async (q: string) => (await usersPage(contosoMember, roster, { q })).rows.map((r) => r.id);
      assert.deepEqual(await one('%'), [tricky.percent]);
      assert.deepEqual(await one('100%'), [tricky.percent]);
      assert.deepEqual(await one('_'), [tricky.underscore]);
      assert.deepEqual(await one('e_c'), [tricky.underscore]);
      assert.deepEqual(await one('\\'), [tricky.backslash]);
      for (const q of ["' OR 1=1 --", "'; drop table users; --", '" OR ""="']) {
        const { page, total, rows } = await usersPage(contosoMember, roster, { q });
        assert.equal(total, 0, q);
        assert.equal(rows.length, 0, q);
        assert.match(page.html, /No users match/);
      }
      assert.equal(await count('users', contoso.tenant.id), WORKERS + 12, 'the users are all still there');
    });

    it('users page: every sort key, both ways, walks the users in order across pages', async () => {
      const workers = generated().map((u) => u.props);
      const keyOf = { name: (u: (typeof workers)[number]) => u.displayName, upn: (u: (typeof workers)[number]) => u.userPrincipalName, mail: (u: (typeof workers)[number]) => u.mail!, department: (u: (typeof workers)[number]) => u.department! };
      for (const sort of ['name', 'upn', 'mail', 'department'] as const) {
        const ascending = [...workers].sort((a, b) => {
          const ka = keyOf[sort](a).toLowerCase();
          const kb = keyOf[sort](b).toLowerCase();
          return ka < kb ? -1 : ka > kb ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
        });
        for (const dir of ['asc', 'desc'] as const) {
          const { rows, total } = await allRows(contosoMember, roster, { q: 'worker', sort, dir });
          assert.equal(total, WORKERS);
          const expected = dir === 'asc' ? ascending : [...ascending].reverse();
          assert.deepEqual(rows.map((r) => r.id), expected.map((u) => u.id), `${sort} ${dir}`);
        }
      }
    });

    it('users page: 50 a page, disjoint pages that add up to the total, and a past-the-end page says so', async () => {
      const { pages, rows, total } = await allRows(contosoMember, roster, {});
      assert.equal(total, WORKERS + 12);
      assert.equal(pages.length, Math.ceil(total / 50));
      for (const page of pages.slice(0, -1)) assert.equal(page.length, 50);
      assert.equal(rows.length, total, 'the pages hold every user once');
      assert.equal(new Set(rows.map((r) => r.id)).size, total, 'no user on two pages');
      const stored = await db().selectFrom('users').select('id').where('tenant_id', '=', contoso.tenant.id).execute();
      assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(stored.map((r) => r.id)));
      const second = await usersPage(contosoMember, roster, { page: '2' });
      assert.deepEqual(second.rows, pages[1], 'a bookmarked page number shows the same users');
      assert.match(second.page.html, /showing 51–100/);
      assert.match(second.page.html, /rel="prev"/);
      const beyond = await usersPage(contosoMember, roster, { page: String(pages.length + 5) });
      assert.equal(beyond.rows.length, 0);
      assert.match(beyond.page.html, /No more users/);
    });

    it('users page: Next, Previous, First and Last links page by cursor and show where in the list the page is', async () => {
      const walk = await allRows(contosoMember, roster, { sort: 'department', dir: 'desc' });
      const { hops, pages, total } = walk;
      assert.equal(new Set(walk.rows.map((r) => r.id)).size, total, 'every user once by the Next links');
      assert.match(hops[0]!.html, /showing 1–50</);
      assert.doesNotMatch(hops[0]!.html, /rel="prev"/);
      const third = hops[2]!;
      assert.match(third.html, /showing 101–150</);
      assert.match(third.html, new RegExp(`Users 101–150 of ${total}`));
      const previous = await contosoMember.get(`${roster.url}${pagerLink(third.html, 'prev')!}`);
      assert.equal(previous.status, 200);
      assert.match(pagerLink(third.html, 'prev')!, /[?&]before=/);
      assert.deepEqual(userRows(previous.html), pages[1], 'Previous shows the page before');
      assert.match(previous.html, /showing 51–100</);
      const back = await contosoMember.get(`${roster.url}${pagerLink(previous.html, 'prev')!}`);
      assert.deepEqual(userRows(back.html), pages[0]);
      assert.doesNotMatch(back.html, /rel="prev"/, 'the first page has no Previous');
      assert.match(back.html, /showing 1–50</);
      const links = (html: string) => Object.fromEntries([...html.matchAll(/<a href="([^"]+)"[^>]*>(First|Last)<\/a>/g)].map(([, href, label]) => [label!, decodeHtml(href!)]));
      assert.equal(links(third.html).First, '/app/users?sort=department&dir=desc');
      const last = await contosoMember.get(`${roster.url}${links(third.html).Last!}`);
      assert.deepEqual(userRows(last.html), walk.rows.slice(-50), 'Last shows the last 50 users');
      assert.match(last.html, new RegExp(`showing ${total - 49}–${total}<`));
      assert.doesNotMatch(last.html, /rel="next"/);
      // The export link and the sort links start from the top, without a cursor.
      assert.doesNotMatch(third.html, /users\.csv[^"]*(after|before|page)=/);
      assert.doesNotMatch(/<thead>[\s\S]*?<\/thead>/.exec(third.html)![0], /(after|before|page)=/);
    });

    it('users page: following Next while users are added and removed sees every user there from the start exactly once', async () => {
      const { org } = await ownOrg('Keyset Walkers', (domain) => Array.from({ length: 160 }, (_, i): UserInput => ({ displayName: `Walker ${i % 13}`, userPrincipalName: `walker${i}@${domain}`, department: ['Ops', 'ops', 'Legal', 'Sales'][i % 4] })));
      const tenantId = org.tenant.id;
      const member = await signedIn(roster, org.member.props.userPrincipalName);
      const startIds = (await db().selectFrom('users').select('id').where('tenant_id', '=', tenantId).execute()).map((r) => r.id);
      const seen: string[] = [];
      const deleted = new Set<string>();
      let hop = (await usersPage(member, roster, { sort: 'name' })).page;
      for (let loads = 0; ; loads++) {
        seen.push(...userRows(hop.html).map((r) => r.id));
        const next = pagerLink(hop.html, 'next');
        if (!next) break;
        assert.ok(loads < 20);
        // Users named to sort before the cursor and after it, and two not yet seen deleted.
        await db()
          .insertInto('users')
          .values(['Aaron', 'Walker 0', 'Walker 9', 'Zed'].map((name, i) => ({ tenant_id: tenantId, id: randomUUID(), display_name: name, user_principal_name: `new${loads}-${i}@keyset.example`, mail: null, department: null, account_enabled: 1, roster_role: 'member' as const, updated_at: 1 })))
          .execute();
        const unseen = startIds.filter((id) => !seen.includes(id) && !deleted.has(id));
        const doomed = [unseen[0], unseen.at(-1)].filter((id): id is string => id !== undefined);
        await db().deleteFrom('users').where('tenant_id', '=', tenantId).where('id', 'in', doomed).execute();
        for (const id of doomed) deleted.add(id);
        hop = await member.get(`${roster.url}${next}`);
        assert.equal(hop.status, 200);
      }
      assert.equal(new Set(seen).size, seen.length, 'no user on two pages');
      assert.deepEqual(startIds.filter((id) => !deleted.has(id) && !seen.includes(id)), [], 'every remaining user seen');
      assert.deepEqual(seen.filter((id) => deleted.has(id)), [], 'no deleted user shown');
      assert.ok(deleted.size >= 4);
    });

    it('users page: a forged, garbled or mismatched cursor gets a 400 page that leads back to the first page', async () => {
      const fromName = pagerLink((await usersPage(contosoMember, roster, {})).page.html, 'next')!;
      const cursor = new URLSearchParams(fromName.split('?')[1]).get('after')!;
      const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const cases: [string, RegExp][] = [
        ['after=not%20base64!', /"after" is not a place in the list/],
        ['before=%22%3E%3Cscript%3E', /"before" is not a place in the list/],
        [`after=${'A'.repeat(7000)}`, /"after" (is longer than 6000 characters|is not a place)/],
        ['after=abc', /"after" is not a place in this list of users/],
        [`after=${encode({ key: 'a', id: 'b' })}`, /"after" is not a place in this list of users/],
        [`after=${encode(['name', 'asc', 'a', '', 0])}`, /"after" is not a place in this list of users/],
        [`after=${encode(['name', 'asc', 'a', 'b', -5])}`, /"after" is not a place in this list of users/],
        [`after=${encode(['name', 'asc', 'x'.repeat(2000), 'b', 0])}`, /"after" is not a place in this list of users/],
        [`after=${encode(['name', 'asc', 7, 'b', 0])}`, /"after" is not a place in this list of users/],
        [`after=${encode(['salary', 'asc', 'a', 'b', 0])}`, /"after" is not a place in this list of users/],
        [`after=${encode(['name', 'asc', 'a\u0000', 'b', 0])}`, /"after" is not a place in this list of users/],
        [`before=${encode(['name', 'asc', 'a', 'b\u0000', 0])}`, /"before" is not a place in this list of users/],
        [`sort=upn&after=${cursor}`, /"after" is not a place in this list of users/],
        [`dir=desc&before=${cursor}`, /"before" is not a place in this list of users/],
        [`after=${cursor}&page=2`, /one of "after", "before" or "page"/],
        [`after=${cursor}&before=${cursor}`, /one of "after", "before" or "page"/],
        ['page=lastly', /"page" must be a page number/],
      ];
      for (const [query, message] of cases) {
        const hop = await contosoMember.get(`${roster.url}/app/users?${query}`);
        assert.equal(hop.status, 400, `${query}: ${hop.html.slice(0, 300)}`);
        const text = decodeHtml(/<section class="message[^>]*>([\s\S]*?)<\/section>/.exec(hop.html)?.[1] ?? '');
        assert.match(text, message, query);
        assert.doesNotMatch(hop.html, /\bat [\w.<>]+ \(|node_modules|Error:/, `${query} leaks internals`);
      }
      const sortedByUpn = await contosoMember.get(`${roster.url}/app/users?sort=upn&after=${encode(['upn', 'asc', 'x', 'y', 0])}`);
      assert.match(sortedByUpn.html, /href="\/app\/users\?sort=upn"/, 'the 400 page offers the first page of the same order');
      // A well-formed cursor naming no real user still pages from its place in the order.
      const anywhere = await usersPage(contosoMember, roster, { after: encode(['name', 'asc', 'worker 150', '00000000-0000-0000-0000-000000000000', 0]) });
      assert.equal(anywhere.rows[0]!.name, 'Worker 150');
      assert.ok(!roster.logs.join('\n').includes('"request failed"'), 'no request ended in a 500');
    });

    it('users page: the state filters show active, disabled, soft-deleted and guest users', async () => {
      const disabled = await usersPage(contosoMember, roster, { state: 'disabled' });
      assert.deepEqual(disabled.rows.map((r) => [r.id, r.status]), [[tricky.disabled, 'disabled']]);
      const deleted = await usersPage(contosoMember, roster, { state: 'deleted' });
      assert.deepEqual(deleted.rows.map((r) => [r.id, r.status]), [[tricky.deleted, 'deleted']]);
      const guests = await usersPage(contosoMember, roster, { state: 'guest' });
      assert.deepEqual(guests.rows.map((r) => [r.id, r.status]), [[tricky.guest, 'guest']]);
      const active = await allRows(contosoMember, roster, { state: 'active' });
      assert.equal(active.total, WORKERS + 12 - 2);
      const activeIds = new Set(active.rows.map((r) => r.id));
      assert.ok(!activeIds.has(tricky.disabled) && !activeIds.has(tricky.deleted));
      assert.ok(activeIds.has(contoso.member.props.id));
      const all = await usersPage(contosoMember, roster, { state: 'all', q: 'sol deleted' });
      assert.deepEqual(all.rows.map((r) => r.status), ['deleted'], 'all includes the soft-deleted');
      const detail = await contosoMember.get(`${roster.url}/app/users/${tricky.deleted}`);
      assert.match(detail.html, /can still be restored there/);
      const combined = await usersPage(contosoMember, roster, { state: 'disabled', q: 'worker' });
      assert.equal(combined.total, 0);
      assert.match(combined.page.html, /No users match/);
    });

    it('rule 22: a script in directory data is escaped in the list, the detail page and the search box', async () => {
      const list = await usersPage(contosoMember, roster, { q: 'script' });
      assert.deepEqual(list.rows.map((r) => r.name), ['<script>alert(1)</script>']);
      assert.doesNotMatch(list.page.html, /<script>alert/);
      assert.match(list.page.html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
      const detail = await contosoMember.get(`${roster.url}/app/users/${tricky.xss}`);
      assert.equal(detail.status, 200);
      assert.doesNotMatch(detail.html, /<script>alert|<img src=x/);
      assert.match(detail.html, /&lt;img src=x onerror=alert\(2\)&gt;/);
      const echoed = await usersPage(contosoMember, roster, { q: '"><script>alert(3)</script>' });
      assert.doesNotMatch(echoed.page.html, /<script>alert\(3\)|"><script/);
      assert.match(echoed.page.html, /&quot;&gt;&lt;script&gt;alert\(3\)/);
    });

    it('users page: before the first sync has finished, the page says the directory has not been read yet', async () => {
      const adatum = addOrg(emulator.ctx, 'Adatum', 'adatum.com');
      emulator.ctx.directory.addUsersUnchecked(adatum.tenant, Array.from({ length: 5 }, (_, i) => ({ userPrincipalName: `p${i}@adatum.com` })));
      // Consent without the Graph permission: the first sync cannot read the directory.
      const app = demoApp(emulator.ctx);
      const roles = app.requiredAppRoles;
      app.requiredAppRoles = [];
      let admin: Browser;
      try {
        admin = await onboard(roster, adatum);
      } finally {
        app.requiredAppRoles = roles;
      }
      const page = await usersPage(admin, roster, {});
      assert.match(page.page.html, /has not finished reading your organisation's directory/);
      assert.match(page.page.html, /href="\/app\/sync"/);
      const afterSync = await usersPage(contosoMember, roster, {});
      assert.doesNotMatch(afterSync.page.html, /has not finished reading/);
      const none = await usersPage(contosoMember, roster, { q: 'zz-nobody-zz' });
      assert.equal(none.total, 0);
      assert.match(none.page.html, /No users match/);
      assert.doesNotMatch(none.page.html, /has not finished reading/);
    });

    // ---- 2. CSV export ------------------------------------------------------------

    it('CSV export: attachment with a header row, one row per matching user, formulas neutralised (rule 22)', async () => {
      const { hop, header, records } = await exportCsv(contosoMember, roster);
      assert.match(hop.headers.get('content-type') ?? '', /^text\/csv/);
      assert.match(hop.headers.get('content-disposition') ?? '', /^attachment; filename="roster-users-\d{4}-\d{2}-\d{2}\.csv"$/);
      assert.equal(hop.headers.get('cache-control'), 'no-store');
      assert.equal(hop.headers.get('x-content-type-options'), 'nosniff');
      assert.deepEqual(header.slice(0, 4), ['id', 'displayName', 'userPrincipalName', 'mail']);
      assert.ok(header.includes('department'));
      assert.equal(records.length, WORKERS + 12);
      const stored = await db().selectFrom('users').select('id').where('tenant_id', '=', contoso.tenant.id).execute();
      assert.deepEqual(new Set(records.map((r) => r.id)), new Set(stored.map((r) => r.id)));

      const fred = records.find((r) => r.id === tricky.formula)!;
      assert.equal(fred.department, `'=HYPERLINK("http://evil")`);
      assert.equal(fred.jobTitle, "'+SUM(1,2)");
      assert.equal(fred.mobilePhone, "'-1+1");
      assert.equal(fred.officeLocation, "'@cmd");
      assert.equal(fred.companyName, "'\t=1+1");
      assert.equal(fred.employeeId, "'\r=2");
      for (const record of records) {
        for (const [name, value] of Object.entries(record)) assert.doesNotMatch(value, /^[=+\-@\t\r]/, `${record.id} ${name}`);
      }
      assert.equal(records.find((r) => r.id === tricky.xss)!.displayName, '<script>alert(1)</script>');
    });

    it('CSV export: the same filters and order as the page', async () => {
      const finance = await exportCsv(contosoMember, roster, { q: 'FINANCE' });
      assert.equal(finance.records.length, 12);
      assert.ok(finance.records.every((r) => r.department === 'Finance'));
      const deleted = await exportCsv(contosoMember, roster, { state: 'deleted' });
      assert.deepEqual(deleted.records.map((r) => [r.id, r.status]), [[tricky.deleted, 'deleted']]);
      for (const dir of ['asc', 'desc']) {
        const csv = await exportCsv(contosoMember, roster, { q: 'worker', sort: 'upn', dir });
        const page = await allRows(contosoMember, roster, { q: 'worker', sort: 'upn', dir });
        assert.deepEqual(csv.records.map((r) => r.id), page.rows.map((r) => r.id), dir);
      }
      const wild = await exportCsv(contosoMember, roster, { q: '%' });
      assert.deepEqual(wild.records.map((r) => r.id), [tricky.percent]);
      const bad = await contosoMember.get(`${roster.url}/app/users.csv?state=everyone`);
      assert.equal(bad.status, 400);
    });

    // ---- 3. isolation -------------------------------------------------------------

    it("rule 26: another tenant's user ids are 404, and its users never show in search, export, runs or counts", async () => {
      for (const id of [fabrikam.admin.props.id, fabrikam.member.props.id, fabrikam.tenant.users.at(-1)!.props.id]) {
        const detail = await contosoAdmin.get(`${roster.url}/app/users/${id}`);
        assert.equal(detail.status, 404);
        assert.doesNotMatch(detail.html, /Fabrikam/);
        const upper = await contosoAdmin.get(`${roster.url}/app/users/${id.toUpperCase()}`);
        assert.equal(upper.status, 404);
      }
      const promote = await contosoAdmin.post(`${roster.url}/app/users/${fabrikam.member.props.id}/role`, { role: 'admin', _csrf: csrfOf(await contosoAdmin.get(`${roster.url}/app`)) });
      assert.equal(promote.status, 404);
      assert.equal(await roleOf(fabrikam.tenant.id, fabrikam.member.props.id), 'member');

      const twins = await usersPage(contosoMember, roster, { q: 'twin' });
      assert.deepEqual(twins.rows.map((r) => r.id), [tricky.twin]);
      assert.equal((await usersPage(contosoMember, roster, { q: 'fabrikam' })).total, 0);
      assert.equal((await usersPage(contosoMember, roster, { q: 'worker' })).total, WORKERS, "Fabrikam's workers are not counted");
      const smuggled = await usersPage(contosoMember, roster, { q: 'twin', tenant: fabrikam.tenant.id, tid: fabrikam.tenant.id });
      assert.deepEqual(smuggled.rows.map((r) => r.id), [tricky.twin]);

      const fabrikamIds = new Set((await db().selectFrom('users').select('id').where('tenant_id', '=', fabrikam.tenant.id).execute()).map((r) => r.id));
      const csv = await exportCsv(contosoMember, roster);
      assert.ok(csv.records.every((r) => !fabrikamIds.has(r.id ?? '')));
      assert.ok(!csv.records.some((r) => /fabrikam/i.test(r.userPrincipalName ?? '')));

      // Fabrikam gets more runs than Contoso: the sync page lists Contoso's only.
      for (let i = 0; i < 4; i++) await roster.scheduler.syncNow(fabrikam.tenant.id);
      const syncPage = await contosoMember.get(`${roster.url}/app/sync`);
      const shown = (/<tbody>([\s\S]*?)<\/tbody>/.exec(syncPage.html)?.[1] ?? '').match(/<tr>/g)?.length ?? 0;
      assert.equal(shown, await count('sync_runs', contoso.tenant.id));
      assert.ok(shown < (await count('sync_runs', fabrikam.tenant.id)));

      const overview = await contosoMember.get(`${roster.url}/app`);
      assert.match(overview.html, new RegExp(`<a href="/app/users">${WORKERS + 12}</a>`));
      const organisation = await contosoMember.get(`${roster.url}/app/organisation`);
      assert.match(organisation.html, new RegExp(`Users in Roster</dt><dd>${WORKERS + 12}<`));
      assert.doesNotMatch(organisation.html, /Fabrikam/);
    });

    // ---- 4. roles -----------------------------------------------------------------

    it('rule 7: a member gets 403 on every admin action and sees no admin buttons', async () => {
      const { org, admin, member } = await ownOrg('Proseware');
      const memberId = org.member.props.id;
      const token = csrfOf(await member.get(`${roster.url}/app`));
      const runs = await count('sync_runs', org.tenant.id);
      const refused = [
        await member.post(`${roster.url}/app/sync`, { _csrf: token }),
        await member.post(`${roster.url}/app/sync/held`, { _csrf: token, decision: 'confirm' }),
        await member.post(`${roster.url}/app/users/${memberId}/role`, { _csrf: token, role: 'admin' }),
        await member.post(`${roster.url}/app/organisation/leave`, { _csrf: token, confirmName: 'Proseware' }),
      ];
      for (const hop of refused) {
        assert.equal(hop.status, 403, hop.url);
        assert.match(hop.html, /Only Roster administrators of Proseware can do this/);
      }
      assert.equal(await settle(roster, org.tenant.id), undefined, 'no sync started');
      assert.equal(await count('sync_runs', org.tenant.id), runs);
      assert.equal(await roleOf(org.tenant.id, memberId), 'member');
      assert.equal(await tenantState(org.tenant.id), 'active');

      const memberPages = [await member.get(`${roster.url}/app/sync`), await member.get(`${roster.url}/app/users/${memberId}`), await member.get(`${roster.url}/app/organisation`)];
      const adminPages = [await admin.get(`${roster.url}/app/sync`), await admin.get(`${roster.url}/app/users/${memberId}`), await admin.get(`${roster.url}/app/organisation`)];
      const adminMarkers = [/action="\/app\/sync"/, /action="\/app\/users\/[^"]+\/role"/, /action="\/app\/organisation\/leave"/];
      adminMarkers.forEach((marker, i) => {
        assert.doesNotMatch(memberPages[i]!.html, marker);
        assert.match(adminPages[i]!.html, marker, 'the admin does see it');
      });
      assert.match(memberPages[0]!.html, /Only your organisation's Roster administrators can start a sync/);
    });

    it('rule 7: an Entra admin who did not sign up is a member in Roster', async () => {
      const { org, domain, ids: [entraAdmin] } = await ownOrg('Fourth Coffee', (domain) => [{ userPrincipalName: `it@${domain}`, displayName: 'IT Admin', password: 'pw', admin: true }]);
      const itAdmin = await signedIn(roster, `it@${domain}`);
      const home = await itAdmin.get(`${roster.url}/app`);
      assert.match(home.html, /Your role in Roster<\/dt><dd>Member/);
      const refused = await itAdmin.post(`${roster.url}/app/sync`, { _csrf: csrfOf(home) });
      assert.equal(refused.status, 403);
      assert.equal(await roleOf(org.tenant.id, entraAdmin!), 'member');
    });

    it('roles: an admin makes a member an admin, who can then sync; an admin cannot demote themselves', async () => {
      const { org, admin, member, ids: [disabledId] } = await ownOrg('Lamna', (domain) => [{ userPrincipalName: `dana@${domain}`, displayName: 'Dana Disabled', accountEnabled: false }]);
      const memberId = org.member.props.id;
      const detail = await admin.get(`${roster.url}/app/users/${memberId}`);
      const made = await submit(admin, detail, `/app/users/${memberId}/role`, {}, 'value="admin"');
      assert.equal(made.status, 303);
      assert.equal(await roleOf(org.tenant.id, memberId), 'admin');

      const runs = await count('sync_runs', org.tenant.id);
      const syncPage = await member.get(`${roster.url}/app/sync`);
      assert.match(syncPage.html, /id="sync-now"/);
      const started = await submit(member, syncPage, '/app/sync');
      assert.equal(started.status, 303);
      assert.equal((await settle(roster, org.tenant.id))?.status, 'succeeded');
      assert.equal(await count('sync_runs', org.tenant.id), runs + 1);

      const adminId = org.admin.props.id;
      const self = await admin.get(`${roster.url}/app/users/${adminId}`);
      assert.doesNotMatch(self.html, /Remove Roster administrator role/, 'no button to demote oneself');
      const demoteSelf = await admin.post(`${roster.url}/app/users/${adminId}/role`, { role: 'member', _csrf: csrfOf(self) });
      assert.equal(demoteSelf.status, 409);
      assert.equal(await roleOf(org.tenant.id, adminId), 'admin');

      // Another admin can: the original admin takes the role back from the member.
      const again = await admin.get(`${roster.url}/app/users/${memberId}`);
      assert.equal((await submit(admin, again, `/app/users/${memberId}/role`, {}, 'value="member"')).status, 303);
      assert.equal(await roleOf(org.tenant.id, memberId), 'member');
      assert.equal((await member.post(`${roster.url}/app/sync`, { _csrf: csrfOf(syncPage) })).status, 403, 'the role is checked on every request');
      const disabled = await admin.post(`${roster.url}/app/users/${disabledId!}/role`, { role: 'admin', _csrf: csrfOf(again) });
      assert.equal(disabled.status, 409, 'a disabled account cannot become an admin');
    });

    // ---- 5. CSRF ------------------------------------------------------------------

    it('rule 20: every admin POST without the form token, or with a wrong one, is refused and changes nothing', async () => {
      const { org, admin } = await ownOrg('Margie Travel');
      const memberId = org.member.props.id;
      const page = await admin.get(`${roster.url}/app/organisation`);
      const token = csrfOf(page);
      const runs = await count('sync_runs', org.tenant.id);
      for (const _csrf of [undefined, 'wrong', `${token}x`, '']) {
        const extra: Record<string, string> = _csrf === undefined ? {} : { _csrf };
        const attempts = [
          await admin.post(`${roster.url}/app/sync`, { ...extra }),
          await admin.post(`${roster.url}/app/sync/held`, { ...extra, decision: 'confirm' }),
          await admin.post(`${roster.url}/app/users/${memberId}/role`, { ...extra, role: 'admin' }),
          await admin.post(`${roster.url}/app/organisation/leave`, { ...extra, confirmName: 'Margie Travel' }),
        ];
        for (const hop of attempts) {
          assert.equal(hop.status, 403, `${hop.url} with _csrf=${String(_csrf)}`);
          assert.match(hop.html, /nothing was changed/);
        }
      }
      const anonymous = await new Browser().post(`${roster.url}/app/sync`, { _csrf: token });
      assert.equal(anonymous.status, 401, 'no session, no sync');
      assert.equal(await settle(roster, org.tenant.id), undefined);
      assert.equal(await count('sync_runs', org.tenant.id), runs);
      assert.equal(await roleOf(org.tenant.id, memberId), 'member');
      assert.equal(await tenantState(org.tenant.id), 'active');
      assert.equal((await admin.get(`${roster.url}/app`)).status, 200, 'still signed in');
    });

    it('rule 20: a cross-site POST is refused even with the right token', async () => {
      const { org, admin } = await ownOrg('Relecloud');
      const token = csrfOf(await admin.get(`${roster.url}/app`));
      const runs = await count('sync_runs', org.tenant.id);
      const foreignOrigin = await admin.post(`${roster.url}/app/sync`, { _csrf: token }, { origin: 'https://evil.example' });
      const crossSite = await admin.post(`${roster.url}/app/organisation/leave`, { _csrf: token, confirmName: 'Relecloud' }, { 'sec-fetch-site': 'cross-site' });
      const noOrigin = await admin.post(`${roster.url}/app/users/${org.member.props.id}/role`, { _csrf: token, role: 'admin' }, { origin: '' });
      for (const hop of [foreignOrigin, crossSite, noOrigin]) assert.equal(hop.status, 403, hop.url);
      assert.equal(await settle(roster, org.tenant.id), undefined);
      assert.equal(await count('sync_runs', org.tenant.id), runs);
      assert.equal(await tenantState(org.tenant.id), 'active');
      assert.equal(await roleOf(org.tenant.id, org.member.props.id), 'member');
    });

    // ---- 6. sync now ----------------------------------------------------------------

    it('Sync now from the page creates a run, the snapshot and the event stream report it, and changes show on the users page', async () => {
      const { org, domain, admin, member } = await ownOrg('Trey Research');
      const d = emulator.ctx.directory;
      d.editUser(org.tenant, org.member.props.id, { department: 'Research Lab' });
      const nia = d.addUser(org.tenant, { userPrincipalName: `nia@${domain}`, displayName: 'Newcomer Nia' });
      const before = await snapshotOf(member, roster);
      assert.equal(before.state, 'idle');
      assert.equal(before.health, 'ok');
      const runs = await count('sync_runs', org.tenant.id);

      // Graph answers the run's first page slowly, so the run is still under way while the page is asked.
      const slow = emulator.ctx.faults.add({ target: 'graph', kind: 'delay', delayMs: 1500, tenant: org.tenant.id, count: 1 });
      try {
        const syncPage = await admin.get(`${roster.url}/app/sync`);
        const posted = await submit(admin, syncPage, '/app/sync', {}, 'id="sync-now"');
        assert.equal(posted.status, 303);
        assert.equal(posted.location, '/app/sync');
        const during = await snapshotOf(member, roster);
        assert.ok(during.state === 'queued' || during.state === 'running', during.state);
        const event = await firstEvent(member, roster);
        assert.match(event.contentType, /^text\/event-stream/);
        assert.equal(event.event, 'sync');
        const streamed = JSON.parse(event.data) as Snapshot;
        assert.ok(streamed.state === 'queued' || streamed.state === 'running', streamed.state);
        assert.equal(streamed.health, 'ok');
        assert.equal((await settle(roster, org.tenant.id))?.status, 'succeeded');
      } finally {
        emulator.ctx.faults.remove(slow.id);
      }

      assert.equal(await count('sync_runs', org.tenant.id), runs + 1);
      const done = await snapshotOf(member, roster);
      assert.deepEqual(Object.keys(done).sort(), ['expected', 'health', 'lastError', 'lastSuccessAt', 'run', 'state']);
      assert.equal(done.state, 'idle');
      assert.equal(done.health, 'ok');
      assert.equal(done.run, null);
      assert.ok(done.lastSuccessAt! > before.lastSuccessAt!);
      const idleEvent = await firstEvent(member, roster);
      assert.equal((JSON.parse(idleEvent.data) as Snapshot).lastSuccessAt, done.lastSuccessAt);

      const research = await usersPage(member, roster, { q: 'research lab' });
      assert.deepEqual(research.rows.map((r) => r.id), [org.member.props.id]);
      const newcomer = await usersPage(member, roster, { q: 'newcomer' });
      assert.deepEqual(newcomer.rows.map((r) => r.id), [nia.props.id]);
      const syncPage = await member.get(`${roster.url}/app/sync`);
      assert.match(syncPage.html, /Incremental<\/td>/);
      assert.match(syncPage.html, /run-succeeded/);
    });

    // ---- 7. held mass deletion --------------------------------------------------------

    it('held mass deletion: a full resync removing most users waits; discard keeps them, confirm removes them', async () => {
      const northwind = addOrg(emulator.ctx, 'Northwind', 'northwind.com');
      const d = emulator.ctx.directory;
      d.addUsersUnchecked(northwind.tenant, Array.from({ length: 40 }, (_, i) => ({ userPrincipalName: `n${pad(i)}@northwind.com`, displayName: `Northwind ${pad(i)}` })));
      const admin = await onboard(roster, northwind);
      const member = await signedIn(roster, northwind.member.props.userPrincipalName);
      const total = async () => (await usersPage(admin, roster, {})).total;
      assert.equal(await total(), 42);
      for (const user of northwind.tenant.users.slice(2, 22)) d.purgeUser(northwind.tenant, user.props.id);

      const fullResync = async () => {
        const page = await admin.get(`${roster.url}/app/sync`);
        const posted = await submit(admin, page, '/app/sync', {}, 'name="full"');
        assert.equal(posted.status, 303);
        const outcome = await settle(roster, northwind.tenant.id);
        assert.equal(outcome?.kind, 'full');
        assert.equal(outcome?.status, 'held');
      };
      await fullResync();
      const held = await admin.get(`${roster.url}/app/sync`);
      assert.match(held.html, /Confirm: remove these users/);
      assert.match(held.html, /Discard: keep everyone/);
      assert.doesNotMatch(held.html, /id="sync-now"/);
      assert.equal((await snapshotOf(admin, roster)).state, 'held');
      assert.doesNotMatch((await member.get(`${roster.url}/app/sync`)).html, /action="\/app\/sync\/held"/);
      assert.equal((await admin.post(`${roster.url}/app/sync`, { _csrf: csrfOf(held) })).status, 409, 'no new sync while a decision waits');
      assert.equal((await admin.post(`${roster.url}/app/sync/held`, { decision: 'confirm' })).status, 403, 'not without the form token');
      assert.equal((await snapshotOf(admin, roster)).state, 'held');
      assert.equal(await total(), 42);

      const discarded = await submit(admin, held, '/app/sync/held', {}, 'value="discard"');
      assert.equal(discarded.status, 303);
      assert.equal(await total(), 42, 'discard keeps everyone');
      const afterDiscard = await snapshotOf(admin, roster);
      assert.equal(afterDiscard.state, 'idle');
      assert.equal(afterDiscard.health, 'ok');

      await fullResync();
      const heldAgain = await admin.get(`${roster.url}/app/sync`);
      const confirmed = await submit(admin, heldAgain, '/app/sync/held', {}, 'value="confirm"');
      assert.equal(confirmed.status, 303);
      assert.equal(await total(), 22);
      const remaining = await db().selectFrom('users').select('id').where('tenant_id', '=', northwind.tenant.id).execute();
      assert.deepEqual(new Set(remaining.map((r) => r.id)), new Set(northwind.tenant.users.map((u) => u.props.id)));
      assert.equal((await snapshotOf(admin, roster)).state, 'idle');
      assert.doesNotMatch((await admin.get(`${roster.url}/app/sync`)).html, /Confirm: remove these users/);
    });

    // ---- 8. revocation ------------------------------------------------------------------

    it('rule 19: revoked consent disconnects the tenant, ends its sessions and refuses sign-in; signing up again reconnects it', async (t) => {
      const tailspin = addOrg(emulator.ctx, 'Tailspin', 'tailspin.com');
      const admin = await onboard(roster, tailspin);
      const member = await signedIn(roster, tailspin.member.props.userPrincipalName);
      const users = await count('users', tailspin.tenant.id);
      emulator.ctx.directory.revokeConsent(tailspin.tenant, emulator.ctx.demoAppId);

      // Graph keeps accepting the app token Roster already holds until it expires (within the hour, as in Entra):
      // the next sync after that asks for a new one, which the tenant refuses. Every clock moves 57 minutes on,
      // past the token's renewal point but inside the sessions' idle timeout.
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 57 * 60_000 });
      try {
        const page = await admin.get(`${roster.url}/app/sync`);
        assert.equal((await submit(admin, page, '/app/sync', {}, 'id="sync-now"')).status, 303);
        assert.equal((await settle(roster, tailspin.tenant.id))?.status, 'failed');
      } finally {
        t.mock.timers.reset();
      }
      assert.equal(await tenantState(tailspin.tenant.id), 'disconnected');
      assert.equal(await count('sessions', tailspin.tenant.id), 0);
      assert.equal(await count('users', tailspin.tenant.id), users, 'the data stays');
      for (const browser of [admin, member]) {
        const app = await browser.get(`${roster.url}/app/users`);
        assert.equal(app.status, 303);
        assert.match(app.location!, /^\/signin/);
      }
      // Without Roster's enterprise app, Entra stops a member; an Entra admin consenting to sign in reaches Roster, which refuses.
      const memberAgain = new Browser();
      const stopped = await signIn(memberAgain, roster, tailspin.member.props.userPrincipalName);
      assert.equal(stopped.callback.status, 400);
      assert.match(stopped.callback.html, /has not approved Roster/);
      const adminAgain = new Browser();
      const refused = await signIn(adminAgain, roster, tailspin.admin.props.userPrincipalName);
      assert.equal(refused.callback.status, 403);
      assert.match(refused.callback.html, /Your organisation is not connected to Roster/);
      for (const browser of [memberAgain, adminAgain]) assert.equal(browser.cookie(SESSION), undefined);

      const again = await signUp(new Browser(), roster, tailspin);
      assert.match(again.html, /Tailspin is signed up/);
      assert.equal(await tenantState(tailspin.tenant.id), 'active');
      await settle(roster, tailspin.tenant.id);
      const back = await signedIn(roster, tailspin.member.props.userPrincipalName);
      const snapshot = await snapshotOf(back, roster);
      assert.equal(snapshot.health, 'ok');
      assert.equal(snapshot.lastError, null);
      const firstAdmin = await signedIn(roster, tailspin.admin.props.userPrincipalName);
      assert.match((await firstAdmin.get(`${roster.url}/app`)).html, /Your role in Roster<\/dt><dd>Administrator/, 'the first admin is still the admin');
    });

    it('rule 14: a missing User.Read.All shows admins the fix (consent again) and members the explanation; the tenant stays usable', async (t) => {
      const alpine = addOrg(emulator.ctx, 'Alpine Ski House', 'alpineskihouse.com');
      const admin = await onboard(roster, alpine);
      const member = await signedIn(roster, alpine.member.props.userPrincipalName);
      // Someone removes the application permission in Entra; the next app token (after the cached one's renewal point) lacks the role.
      alpine.tenant.servicePrincipals.get(emulator.ctx.demoAppId)!.appRoles = [];
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 57 * 60_000 });
      try {
        const page = await admin.get(`${roster.url}/app/sync`);
        assert.equal((await submit(admin, page, '/app/sync', {}, 'id="sync-now"')).status, 303);
        assert.equal((await settle(roster, alpine.tenant.id))?.status, 'failed');
        assert.equal(await tenantState(alpine.tenant.id), 'active', 'people keep signing in');

        const organisation = await admin.get(`${roster.url}/app/organisation`);
        assert.equal(organisation.status, 200);
        assert.match(organisation.html, /Missing permission/);
        assert.match(organisation.html, /Roster may not read your users/);
        assert.match(organisation.html, /User\.Read\.All/);
        assert.match(organisation.html, /<form method="post" action="\/signup">[\s\S]*?Grant the permission/);
        const overview = await member.get(`${roster.url}/app`);
        assert.equal(overview.status, 200);
        assert.match(overview.html, /Roster may not read your users/);
        assert.doesNotMatch(overview.html, /Grant the permission/, 'only admins get the button');
      } finally {
        t.mock.timers.reset();
      }

      // Consenting again grants the permission (and Roster's confirmation fetches a fresh app token); the next sync is healthy.
      await signUp(new Browser(), roster, alpine);
      await settle(roster, alpine.tenant.id);
      const page = await admin.get(`${roster.url}/app/sync`);
      assert.equal((await submit(admin, page, '/app/sync', {}, 'id="sync-now"')).status, 303);
      assert.equal((await settle(roster, alpine.tenant.id))?.status, 'succeeded');
      assert.equal((await snapshotOf(member, roster)).health, 'ok');
    });

    // ---- 9. offboarding -------------------------------------------------------------------

    it('leaving Roster: a wrong name changes nothing; the right one ends sessions, deletes the data and refuses sign-in; signing up again starts afresh', async () => {
      const woodgrove = addOrg(emulator.ctx, 'Woodgrove Bank', 'woodgrove.com');
      const d = emulator.ctx.directory;
      d.addUsersUnchecked(woodgrove.tenant, Array.from({ length: 10 }, (_, i) => ({ userPrincipalName: `g${i}@woodgrove.com` })));
      const other = d.addUser(woodgrove.tenant, { userPrincipalName: 'it@woodgrove.com', displayName: 'Woodgrove IT', password: 'pw', admin: true });
      const admin = await onboard(roster, woodgrove);
      const member = await signedIn(roster, woodgrove.member.props.userPrincipalName);
      assert.equal(await count('users', woodgrove.tenant.id), 13);
      const adminCookie = admin.cookie(SESSION)!;

      const organisation = await admin.get(`${roster.url}/app/organisation`);
      assert.match(organisation.html, /Type <strong>Woodgrove Bank<\/strong> to confirm/);
      for (const confirmName of ['Woodgrove', 'Contoso', '']) {
        const wrong = await submit(admin, organisation, '/app/organisation/leave', { confirmName });
        assert.equal(wrong.status, 400, confirmName);
        assert.match(wrong.html, /Nothing was changed/);
      }
      assert.equal(await tenantState(woodgrove.tenant.id), 'active');
      assert.equal(await count('users', woodgrove.tenant.id), 13);
      assert.equal((await member.get(`${roster.url}/app`)).status, 200);

      const left = await submit(admin, organisation, '/app/organisation/leave', { confirmName: 'Woodgrove Bank' });
      assert.equal(left.status, 200, left.html);
      assert.match(left.html, /Your organisation has left Roster/);
      assert.equal(await tenantState(woodgrove.tenant.id), 'offboarded');
      for (const table of ['users', 'sync_runs', 'sessions', 'sync_state'] as const) assert.equal(await count(table, woodgrove.tenant.id), 0, table);
      const replay = new Browser();
      replay.cookies.set(SESSION, { value: adminCookie, raw: '' });
      for (const browser of [replay, member]) {
        const hop = await browser.get(`${roster.url}/app`);
        assert.equal(hop.status, 303);
        assert.match(hop.location!, /^\/signin/);
      }
      const refused = await signIn(new Browser(), roster, woodgrove.member.props.userPrincipalName);
      assert.equal(refused.callback.status, 403);
      assert.match(refused.callback.html, /Your organisation left Roster/);

      // Another Entra admin signs the organisation up again: they are its admin now, the first one is not.
      const newAdmin = await onboard(roster, woodgrove, other.props.userPrincipalName);
      assert.equal(await tenantState(woodgrove.tenant.id), 'active');
      assert.equal((await usersPage(newAdmin, roster, {})).total, 13);
      assert.match((await newAdmin.get(`${roster.url}/app`)).html, /Your role in Roster<\/dt><dd>Administrator/);
      const formerAdmin = await signedIn(roster, woodgrove.admin.props.userPrincipalName);
      assert.match((await formerAdmin.get(`${roster.url}/app`)).html, /Your role in Roster<\/dt><dd>Member/);
    });

    // ---- 10. operator console ----------------------------------------------------------------

    it('operator: the console lists every tenant with its user count; nobody else gets in', async () => {
      const listing = await opsBrowser.get(`${roster.url}/operator`);
      assert.equal(listing.status, 200, listing.html);
      const tenants = await db().selectFrom('tenants').select(['id', 'display_name']).execute();
      assert.ok(tenants.length >= 4);
      for (const tenant of tenants) {
        const row = new RegExp(`<a href="/operator/tenants/${tenant.id}">([^<]*)</a>[\\s\\S]*?<td data-label="Users" class="num">([\\d,]+)</td>`).exec(listing.html);
        assert.ok(row, `${tenant.display_name} is listed`);
        assert.equal(decodeHtml(row[1]!), tenant.display_name);
        // Every user of Roster's copy, soft-deleted ones included, as the users page counts them.
        const all = await db().selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
        assert.equal(Number(row[2]!.replace(/,/g, '')), Number(all.n), tenant.display_name);
      }
      assert.match(listing.html, new RegExp(`<a href="/operator/tenants/${contoso.tenant.id}">Contoso</a>`));
      assert.match((await opsBrowser.get(`${roster.url}/app`)).html, /href="\/operator"/);
      const detail = await opsBrowser.get(`${roster.url}/operator/tenants/${contoso.tenant.id}`);
      assert.equal(detail.status, 200);
      assert.match(detail.html, /action="\/operator\/tenants\/[^"]+\/suspend"/);

      // A tenant admin of their own organisation, so a guard fault here changes nobody else's tenant.
      const outsider = await ownOrg('Wingtip Toys');
      const adminHome = await outsider.admin.get(`${roster.url}/app`);
      assert.doesNotMatch(adminHome.html, /href="\/operator"/);
      const token = csrfOf(adminHome);
      const outsiders = [
        await outsider.admin.get(`${roster.url}/operator`),
        await outsider.admin.get(`${roster.url}/operator/tenants/${outsider.org.tenant.id}`),
        ...(await Promise.all(['sync', 'suspend', 'resume'].map((action) => outsider.admin.post(`${roster.url}/operator/tenants/${outsider.org.tenant.id}/${action}`, { _csrf: token })))),
        await outsider.admin.post(`${roster.url}/operator/tenants/${outsider.org.tenant.id}/held`, { _csrf: token, decision: 'confirm' }),
      ];
      for (const hop of outsiders) {
        assert.equal(hop.status, 403, hop.url);
        assert.match(hop.html, /Operators only/);
        assert.doesNotMatch(hop.html, /Fabrikam/);
      }
      assert.equal(await tenantState(outsider.org.tenant.id), 'active');
      const anonymous = await new Browser().get(`${roster.url}/operator`);
      assert.equal(anonymous.status, 303);
      assert.match(anonymous.location!, /^\/signin/);
    });

    it('operator: suspend ends the tenant sessions and refuses sign-in (and sign-up); resume restores', async () => {
      const litware = addOrg(emulator.ctx, 'Litware', 'litware.com');
      const admin = await onboard(roster, litware);
      const member = await signedIn(roster, litware.member.props.userPrincipalName);
      const detail = await opsBrowser.get(`${roster.url}/operator/tenants/${litware.tenant.id}`);

      const noToken = await opsBrowser.post(`${roster.url}/operator/tenants/${litware.tenant.id}/suspend`, {});
      assert.equal(noToken.status, 403, 'the operator needs the form token too');
      assert.equal(await tenantState(litware.tenant.id), 'active');

      const suspended = await submit(opsBrowser, detail, `/operator/tenants/${litware.tenant.id}/suspend`);
      assert.equal(suspended.status, 303);
      assert.equal(await tenantState(litware.tenant.id), 'suspended');
      assert.equal(await count('sessions', litware.tenant.id), 0);
      for (const browser of [admin, member]) assert.equal((await browser.get(`${roster.url}/app`)).status, 303);
      const refused = await signIn(new Browser(), roster, litware.member.props.userPrincipalName);
      assert.equal(refused.callback.status, 403);
      assert.match(refused.callback.html, /suspended/);
      assert.equal(refused.final.status, 403);

      // Signing up again is not a way around an operator's suspension.
      const signupAgain = await signUp(new Browser(), roster, litware);
      assert.equal(signupAgain.status, 403);
      assert.match(signupAgain.html, /suspended/);
      assert.equal(await tenantState(litware.tenant.id), 'suspended');
      assert.equal((await signIn(new Browser(), roster, litware.admin.props.userPrincipalName)).callback.status, 403);

      // The console's "Suspended" list holds exactly the suspended tenants.
      const suspendedList = await opsBrowser.get(`${roster.url}/operator?show=suspended`);
      assert.equal(suspendedList.status, 200);
      const listed = [...suspendedList.html.matchAll(/<a href="\/operator\/tenants\/([^"]+)">/g)].map((m) => m[1]);
      const suspendedIds = (await db().selectFrom('tenants').select('id').where('state', '=', 'suspended').execute()).map((r) => r.id);
      assert.deepEqual(listed.sort(), suspendedIds.sort());
      assert.ok(listed.includes(litware.tenant.id));
      assert.match(suspendedList.html, /aria-current="page">Suspended \(\d+\)/);
      assert.equal((await opsBrowser.get(`${roster.url}/operator?show=everything`)).status, 400);

      const suspendedPage = await opsBrowser.get(`${roster.url}/operator/tenants/${litware.tenant.id}`);
      assert.doesNotMatch(suspendedPage.html, /\/suspend"/);
      assert.equal((await submit(opsBrowser, suspendedPage, `/operator/tenants/${litware.tenant.id}/resume`)).status, 303);
      assert.equal(await tenantState(litware.tenant.id), 'active');
      await settle(roster, litware.tenant.id);
      const back = await signedIn(roster, litware.admin.props.userPrincipalName);
      assert.match((await back.get(`${roster.url}/app`)).html, /Your role in Roster<\/dt><dd>Administrator/);

      const runs = await count('sync_runs', litware.tenant.id);
      const page = await opsBrowser.get(`${roster.url}/operator/tenants/${litware.tenant.id}`);
      assert.equal((await submit(opsBrowser, page, `/operator/tenants/${litware.tenant.id}/sync`)).status, 303);
      assert.equal((await settle(roster, litware.tenant.id))?.status, 'succeeded');
      assert.equal(await count('sync_runs', litware.tenant.id), runs + 1);
    });

    it('rule 24: bad ids and query values get a 400 or 404 with a clear message, never a 500', async () => {
      const token = csrfOf(await opsBrowser.get(`${roster.url}/operator`));
      const unknown = randomUUID();
      const cases: [Browser, string, number, RegExp][] = [
        [opsBrowser, '/operator/tenants/not-a-guid', 400, /"id" must be an id in GUID form/],
        [opsBrowser, `/operator/tenants/${unknown}`, 404, /Tenant not found/],
        [contosoMember, '/app/users?state=everyone', 400, /"state" must be equal to one of the allowed values: all, active, disabled, deleted, guest/],
        [contosoMember, '/app/users?sort=salary', 400, /"sort" must be equal to one of the allowed values: name, upn, mail, department/],
        [contosoMember, '/app/users?dir=sideways', 400, /"dir" must be equal to one of the allowed values: asc, desc/],
        [contosoMember, '/app/users?page=0', 400, /"page" must be a page number/],
        [contosoMember, '/app/users?page=-1', 400, /"page" must be a page number/],
        [contosoMember, '/app/users?page=abc', 400, /"page" must be a page number/],
        [contosoMember, '/app/users?page=1e3', 400, /"page" must be a page number/],
        [contosoMember, `/app/users?q=${'x'.repeat(201)}`, 400, /"q" is longer than 200 characters/],
        [contosoMember, '/app/users?q=a&q=b', 400, /"q" must be a single string/],
        [contosoMember, '/app/users/not-a-guid', 400, /"id" must be an id in GUID form/],
        [contosoMember, `/app/users/${unknown}`, 404, /User not found/],
      ];
      for (const [browser, path, status, message] of cases) {
        const hop = await browser.get(`${roster.url}${path}`);
        assert.equal(hop.status, status, `${path}: ${hop.html.slice(0, 300)}`);
        const text = decodeHtml(/<section class="message[^>]*>([\s\S]*?)<\/section>/.exec(hop.html)?.[1] ?? '');
        assert.match(text, message, path);
        assert.doesNotMatch(hop.html, /\bat [\w.<>]+ \(|node_modules|Error:/, `${path} leaks internals`);
      }
      const posts: [string, Record<string, string>, number][] = [
        ['/operator/tenants/not-a-guid/suspend', { _csrf: token }, 400],
        [`/operator/tenants/${unknown}/suspend`, { _csrf: token }, 404],
        [`/operator/tenants/${unknown}/held`, { _csrf: token, decision: 'confirm' }, 404],
        [`/operator/tenants/${contoso.tenant.id}/held`, { _csrf: token, decision: 'maybe' }, 400],
      ];
      for (const [path, fields, status] of posts) {
        const hop = await opsBrowser.post(`${roster.url}${path}`, fields);
        assert.equal(hop.status, status, `${path}: ${hop.html.slice(0, 300)}`);
      }
      const { org, admin } = await ownOrg('Coho Winery');
      const adminToken = csrfOf(await admin.get(`${roster.url}/app`));
      const role = await admin.post(`${roster.url}/app/users/${org.member.props.id}/role`, { _csrf: adminToken, role: 'owner' });
      assert.equal(role.status, 400);
      assert.equal(await roleOf(org.tenant.id, org.member.props.id), 'member');
      assert.ok(!roster.logs.join('\n').includes('"request failed"'), 'no request ended in a 500');
    });
  });
}
