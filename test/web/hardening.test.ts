import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fetch as undiciFetch } from 'undici';
import { neutraliseFormula } from '../../src/web/routes/users.ts';
import { addOrg, type Org } from '../helpers/fixtures.ts';
import { Browser, type Hop } from '../helpers/browser.ts';
import { startTestRoster, type TestRoster } from '../helpers/roster.ts';
import { ENGINES } from '../helpers/stores.ts';
import { signIn, signUp } from './flows.ts';

function csrfOf(page: Hop): string {
  const token = /name="_csrf" value="([^"]+)"/.exec(page.html)?.[1];
  assert.ok(token, `no CSRF token on ${page.url}`);
  return token;
}

/** Opens the live sync stream as the browser's session and returns its events as they come, and whether it ended. */
async function openStream(browser: Browser, roster: TestRoster) {
  const cookie = [...browser.cookies].map(([k, v]) => `${k}=${v.value}`).join('; ');
  const controller = new AbortController();
  const res = await undiciFetch(`${roster.url}/app/sync/events`, { headers: { accept: 'text/event-stream', cookie }, signal: controller.signal });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return {
    headers: res.headers,
    /** Reads until `event: name` has arrived, or the stream ended; true when it did end. */
    async readUntil(pattern: RegExp): Promise<{ text: string; ended: boolean }> {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) return { text, ended: true };
        text += decoder.decode(value, { stream: true });
      }
      return { text, ended: false };
    },
    async ended(): Promise<boolean> {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return true;
        text += decoder.decode(value, { stream: true });
      }
    },
    close: () => controller.abort(),
  };
}

for (const engine of ENGINES) {
  describe(`web hardening (${engine})`, () => {
    let roster: TestRoster;
    let contoso: Org;

    before(async () => {
      roster = await startTestRoster({ engine, web: { streamCheckMs: 50 } });
      contoso = addOrg(roster.emulator.ctx, 'Contoso', 'contoso.com');
      roster.emulator.ctx.directory.addUser(contoso.tenant, { userPrincipalName: 'cells@contoso.com', displayName: 'Cell Tester', department: ' =2+2', jobTitle: '\n=1+1', officeLocation: '＝1+1', companyName: ';=SUM(A1)', employeeId: '\tplain', mobilePhone: '\rplain' });
      const done = await signUp(new Browser(), roster, contoso);
      assert.match(done.html, /Contoso is signed up/);
      await roster.scheduler.syncNow(contoso.tenant.id);
    });
    after(() => roster.close());

    it('hardening 6: the live sync stream ends at sign-out', { timeout: 20_000 }, async () => {
      const browser = new Browser();
      await signIn(browser, roster, 'user@contoso.com');
      const page = await browser.get(`${roster.url}/app/sync`);
      const stream = await openStream(browser, roster);
      try {
        assert.equal((await stream.readUntil(/^event: ?sync$/m)).ended, false);
        assert.equal((await browser.post(`${roster.url}/signout`, { _csrf: csrfOf(page) })).status, 303);
        assert.equal(await stream.ended(), true);
        assert.match((await stream.readUntil(/^event: ?signed-out$/m)).text, /^event: ?signed-out$/m);
      } finally {
        stream.close();
      }
    });

    it('hardening 6: the live sync stream ends when the user loses access, or the session expires', { timeout: 20_000 }, async () => {
      const db = roster.db.store.db;
      const disabled = new Browser();
      await signIn(disabled, roster, 'user@contoso.com');
      const stream = await openStream(disabled, roster);
      try {
        await stream.readUntil(/^event: ?sync$/m);
        await db.updateTable('users').set({ account_enabled: 0 }).where('id', '=', contoso.member.props.id).execute();
        assert.equal(await stream.ended(), true);
      } finally {
        stream.close();
        await db.updateTable('users').set({ account_enabled: 1 }).where('id', '=', contoso.member.props.id).execute();
      }

      const idle = new Browser();
      await signIn(idle, roster, 'user@contoso.com');
      const open = await openStream(idle, roster);
      try {
        await open.readUntil(/^event: ?sync$/m);
        roster.advance(62 * 60_000);
        assert.equal(await open.ended(), true);
      } finally {
        open.close();
      }
    });

    it('hardening 10: every response to a signed-in person, and the sign-in and sign-up callbacks, say Cache-Control: no-store', async () => {
      const browser = new Browser();
      const { callback } = await signIn(browser, roster, 'admin@contoso.com');
      assert.equal(callback.headers.get('cache-control'), 'no-store', 'sign-in callback');
      for (const path of ['/app', '/app/users', `/app/users/${contoso.member.props.id}`, '/app/sync', '/app/organisation', '/', '/no-such-page', '/app/users?page=0', '/operator']) {
        const hop = await browser.get(`${roster.url}${path}`);
        assert.equal(hop.headers.get('cache-control'), 'no-store', path);
      }
      const stream = await openStream(browser, roster);
      stream.close();
      assert.equal(stream.headers.get('cache-control'), 'no-store', 'event stream');
      const signupCallback = await new Browser().get(`${roster.url}/signup/callback?admin_consent=True&tenant=${contoso.tenant.id}&state=unknown`);
      assert.equal(signupCallback.headers.get('cache-control'), 'no-store', 'sign-up callback');
      const failedSignIn = await new Browser().get(`${roster.url}/auth/callback?state=unknown&code=x`);
      assert.equal(failedSignIn.headers.get('cache-control'), 'no-store', 'sign-in callback that failed');
    });

    it('hardening 10: a sign-up finished by its retry, which signs the admin in, says Cache-Control: no-store', async () => {
      const northwind = addOrg(roster.emulator.ctx, 'Northwind', 'northwind.com');
      const directory = roster.emulator.ctx.directory;
      directory.consentPropagationSeconds = 30;
      try {
        const browser = new Browser();
        const waiting = await signUp(browser, roster, northwind);
        assert.equal(waiting.status, 202);
        assert.equal(waiting.headers.get('cache-control'), 'no-store', 'the page that waits for consent');
        roster.advance(31_000);
        const done = await browser.submitForm(waiting);
        assert.equal(done.url, `${roster.url}/signup/confirm`);
        assert.match(done.html, /Northwind is signed up/);
        assert.equal(done.headers.get('cache-control'), 'no-store', 'the signed-up page of the new session');
      } finally {
        directory.consentPropagationSeconds = 0;
      }
    });

    it('rule 17 (hardening 11): a session used within the idle window never expires, whatever last_seen_at lags behind', async () => {
      const browser = new Browser();
      await signIn(browser, roster, 'user@contoso.com');
      // Used 59 s after sign-in: within last_seen_at's one-minute precision, so nothing is written.
      roster.advance(59_000);
      assert.equal((await browser.get(`${roster.url}/app`)).status, 200);
      // 59 min 59 s after that use: still inside the 60-minute idle window.
      roster.advance(60 * 60_000 - 1000);
      assert.equal((await browser.get(`${roster.url}/app`)).status, 200, 'a session used within the idle window ended');
      // Idle for longer than the window (and its minute of precision): the session ends.
      roster.advance(61 * 60_000);
      assert.equal((await browser.get(`${roster.url}/app`)).status, 303);
    });

    it('rule 22 (hardening 8): the CSV export neutralises formulas behind blanks, line breaks, separators, full-width signs and leading tab or CR', async () => {
      const browser = new Browser();
      await signIn(browser, roster, 'admin@contoso.com');
      const csv = await browser.get(`${roster.url}/app/users.csv?q=cells`);
      assert.equal(csv.status, 200);
      const row = csv.html.split('\r\n').find((line) => line.includes('Cell Tester')) ?? csv.html.slice(csv.html.indexOf('Cell Tester') - 60);
      for (const cell of ["' =2+2", "'\n=1+1", "'＝1+1", "';=SUM(A1)", "'\tplain", "'\rplain"]) assert.ok(csv.html.includes(`"${cell}"`), `${JSON.stringify(cell)} in ${JSON.stringify(row)}`);
    });
  });
}

describe('hardening 8: formula neutralisation', () => {
  it('neutralises every cell a spreadsheet would run, and nothing else', () => {
    const formulas = [' =2+2', '\n=1+1', '＝1+1', '＋1', '－1', '＠SUM(A1)', ';=1+1', ',=1+1', '\u200b=1', '\u00a0@cmd', '\tplain', '\rplain', '=1', '+1', '-1', '@x'];
    for (const value of formulas) assert.equal(neutraliseFormula(value), `'${value}`, JSON.stringify(value));
    for (const value of ['plain', 'a=b', 'Team 1', 'R\\D', '', ' ', 'O\'Brien', '1+1']) assert.equal(neutraliseFormula(value), value, JSON.stringify(value));
  });
});

describe('hardening 7: rate limits behind a proxy', () => {
  const SIGN_IN_LIMIT = 60;

  /** Sends the sign-in limit's worth of requests "from" one client, then one from another; returns the other's status. */
  async function otherClientAfterOneExhausts(roster: TestRoster): Promise<{ first: number[]; other: number; sameAgain: number }> {
    const from = (ip: string) => undiciFetch(`${roster.url}/signin`, { headers: { 'x-forwarded-for': ip }, redirect: 'manual' }).then(async (res) => (await res.arrayBuffer(), res.status));
    const first: number[] = [];
    for (let i = 0; i < SIGN_IN_LIMIT; i++) first.push(await from('203.0.113.10'));
    return { first, sameAgain: await from('203.0.113.10'), other: await from('198.51.100.20') };
  }

  it('hardening 7: without TRUST_PROXY, X-Forwarded-For is ignored: the socket address is the key', async (t) => {
    const roster = await startTestRoster();
    t.after(() => roster.close());
    const { first, sameAgain, other } = await otherClientAfterOneExhausts(roster);
    assert.ok(first.every((status) => status === 303));
    assert.equal(sameAgain, 429);
    assert.equal(other, 429, 'a forged X-Forwarded-For must not buy a fresh limit');
  });

  for (const [setting, trustProxy] of [
    ['the proxy\'s addresses', ['127.0.0.1', '::1']],
    ['a hop count of 1', 1],
  ] as const) {
    it(`hardening 7: with the proxy trusted by ${setting}, each client behind it has its own limit`, async (t) => {
      const roster = await startTestRoster({ web: { trustProxy } });
      t.after(() => roster.close());
      const { first, sameAgain, other } = await otherClientAfterOneExhausts(roster);
      assert.ok(first.every((status) => status === 303));
      assert.equal(sameAgain, 429);
      assert.equal(other, 303, 'another client behind the same proxy is not limited');
    });
  }
});
