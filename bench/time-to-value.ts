/**
 * Time to value: from an admin's consent to the first users page that lists
 * every user, for a new organisation added to a running demo. One `roster
 * demo` process (as `npm start` runs it, on SQLite, in a temporary data folder);
 * the organisation is added through the emulator's control API, signed up
 * through the pages as a browser would, and timed in three parts:
 *   consent confirmation: the consent page's Accept until Roster's "signed up" page;
 *   first sync:           until the sync page's snapshot shows the first run finished;
 *   page render:          the users page, which must show every user.
 *
 *   node_modules/.bin/node bench/time-to-value.ts [--users 25000] [--aim 30]
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ControlClient } from '../src/emulator/control-client.ts';
import { freePort } from '../test/cli/spawn.ts';
import { Browser, decodeHtml, type Hop } from '../test/helpers/browser.ts';
import { passIdentityProvider, signIn, type Site } from '../test/web/flows.ts';

const { values } = parseArgs({ options: { users: { type: 'string', default: '25000' }, aim: { type: 'string', default: '30' } } });
const USERS = Number(values.users);
const AIM_SECONDS = Number(values.aim);
if (!Number.isInteger(USERS) || USERS < 2) throw new Error('--users must be a whole number of at least 2');

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const POLL_MS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const tmp = await mkdtemp(join(tmpdir(), 'roster-ttv-'));
const env = {
  PORT: String(await freePort()),
  EMULATOR_HTTPS_PORT: String(await freePort()),
  EMULATOR_HTTP_PORT: String(await freePort()),
  DATA_DIR: join(tmp, 'data'),
};
const site: Site = { url: `http://localhost:${env.PORT}`, emulator: { urls: { pages: `http://localhost:${env.EMULATOR_HTTP_PORT}` } }, password: 'roster-demo' };
const demo = spawn(process.execPath, [join(ROOT, 'bin/roster.js'), 'demo'], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
let output = '';
demo.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
demo.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));

interface Snapshot {
  state: string;
  lastSuccessAt: number | null;
  lastError: string | null;
}

async function firstSyncDone(browser: Browser): Promise<Snapshot> {
  for (;;) {
    const hop = await browser.get(`${site.url}/app/sync/events`, { accept: 'application/json' });
    assert.equal(hop.status, 200, hop.html.slice(0, 500));
    const snapshot = JSON.parse(hop.html) as Snapshot;
    if (snapshot.state === 'idle' && snapshot.lastSuccessAt !== null) return snapshot;
    if (snapshot.lastError) throw new Error(`the sync failed: ${snapshot.lastError}`);
    await sleep(POLL_MS);
  }
}

try {
  for (let waited = 0; !/Stop with Ctrl\+C/.test(output); waited += 100) {
    if (waited > 120_000 || demo.exitCode !== null) throw new Error(`the demo did not start:\n${output}`);
    await sleep(100);
  }
  // The demo's own first syncs (Contoso, Northwind Traders' 25,000) finish before the clock starts.
  for (const admin of ['admin@contoso.com', 'admin@northwindtraders.com']) {
    const browser = new Browser();
    await signIn(browser, site, admin);
    await firstSyncDone(browser);
  }

  const control = await ControlClient.fromDataDir(join(env.DATA_DIR, 'emulator'));
  const built = performance.now();
  const tenant = await control.addTenant({ displayName: 'Tailspin Toys', generateUsers: USERS, seed: 7 });
  const buildMs = performance.now() - built;
  const admin = tenant.admin!;

  // Sign-up: the home page's button, the admin's sign-in, then admin consent for their tenant.
  const browser = new Browser();
  const back = await passIdentityProvider(browser, site, await browser.post(`${site.url}/signup`, { plan: 'team' }), admin);
  const toConsent = await browser.get(new URL(back.location!, back.url).href);
  assert.equal(toConsent.status, 303, toConsent.html.slice(0, 500));
  let consentPage = await browser.follow(toConsent);
  // The emulator first asks which signed-in account consents.
  const account = /name="account" value="([^"]+)"/.exec(consentPage.html)?.[1];
  if (account) consentPage = await browser.follow(await browser.submitForm(consentPage, {}, { buttonValue: { account: decodeHtml(account) } }));
  assert.match(consentPage.html, /name="decision"/, 'the consent page');

  const t0 = performance.now();
  const accepted = await browser.submitForm(consentPage, {}, { buttonValue: { decision: 'accept' } });
  const callback: Hop = await browser.get(new URL(accepted.location!, accepted.url).href);
  const t1 = performance.now();
  assert.equal(callback.status, 200, callback.html.slice(0, 500));
  assert.match(callback.html, /Tailspin Toys is signed up/);
  await firstSyncDone(browser);
  const t2 = performance.now();
  const page = await browser.get(`${site.url}/app/users`);
  const t3 = performance.now();
  assert.equal(page.status, 200);
  const total = Number(/<p class="count" role="status">([\d,]+) users?/.exec(page.html)?.[1]?.replace(/,/g, ''));
  assert.equal(total, USERS, 'the users page lists every user');

  const rows: [string, number][] = [
    ['consent confirmation (Accept -> "signed up" page)', t1 - t0],
    ['first sync (until the run is recorded as finished)', t2 - t1],
    ['page render (users page, every user counted)', t3 - t2],
    ['time to value', t3 - t0],
  ];
  process.stdout.write(
    `Time to value: a new organisation of ${USERS.toLocaleString('en-GB')} users added to a running demo (SQLite), Node ${process.versions.node}\n\n` +
      `  (adding the organisation to the emulator: ${seconds(buildMs)}, not counted)\n` +
      rows.map(([name, ms]) => `  ${name.padEnd(52)} ${seconds(ms).padStart(9)}`).join('\n') +
      `\n\n  first sync: ${Math.round(USERS / ((t2 - t1) / 1000)).toLocaleString('en-GB')} users/s; the sync page was polled every ${POLL_MS} ms\n` +
      `  aim: at most ${AIM_SECONDS} s: ${(t3 - t0) / 1000 <= AIM_SECONDS ? 'met' : 'MISSED'} (${((t3 - t0) / 1000 / AIM_SECONDS).toFixed(2)}x of the aim)\n` +
      `  load average (1 min) at the end: ${loadavg()[0]!.toFixed(2)} on the machine's CPUs\n`,
  );
} finally {
  demo.kill('SIGTERM');
  await new Promise((r) => (demo.exitCode !== null ? r(null) : demo.once('exit', r)));
  await rm(tmp, { recursive: true, force: true });
}
