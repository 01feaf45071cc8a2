import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ControlClient, ControlError } from '../../src/emulator/control-client.ts';
import { freePort } from '../cli/spawn.ts';
import { Browser, decodeHtml, type Hop } from '../helpers/browser.ts';
import { passIdentityProvider, signIn, type Site } from '../web/flows.ts';

/**
 * The README's "Try it" section, run as written against a real `npm start`:
 * each step's commands are read from the README (only the data folder is
 * swapped for a temporary one, and the ports are set in the environment), then
 * the pages are checked for what the step says they show.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOCUMENTED_DATA_DIR = '--data-dir data/emulator';
const PASSWORD = 'roster-demo';
const ADMIN = 'admin@fabrikam.com';
const MEMBER = 'johanna.muller@fabrikam.com';

interface Step {
  number: number;
  title: string;
  commands: string[];
}

/** The intro's commands and the numbered steps of the README's "Try it" section. */
function tryIt(readme: string): { intro: string[]; steps: Step[] } {
  const section = /^## Try it\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1];
  assert.ok(section, 'the README has a "Try it" section');
  const commandsOf = (text: string) =>
    [...text.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap(([, block]) => block!.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
  const [intro, ...rest] = section.split(/^### /m);
  const steps = rest.map((chunk) => {
    const heading = /^(\d+)\. (.+)\n/.exec(chunk);
    assert.ok(heading, `a step heading is "N. title": ${chunk.slice(0, 60)}`);
    return { number: Number(heading[1]), title: heading[2]!, commands: commandsOf(chunk) };
  });
  return { intro: commandsOf(intro!), steps };
}

interface Snapshot {
  state: string;
  health: string;
  lastSuccessAt: number | null;
  lastError: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('README "Try it", step by step against npm start', () => {
  let tmp: string;
  let emulatorDir: string;
  let demo: ChildProcess;
  let exited: Promise<number | null>;
  let stdout = '';
  let stderr = '';
  let site: Site;
  let steps: Step[];
  let intro: string[];
  let admin: Browser;
  const env: Record<string, string> = {};

  /** Runs a command in the shell from the project folder, as a person in a second terminal would. */
  async function shell(command: string): Promise<{ code: number | null; out: string; err: string }> {
    const child = spawn('sh', ['-c', command], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { code, out, err };
  }

  /** Runs a documented command on the test's data folder; returns its JSON answer. */
  async function run<T>(command: string): Promise<T> {
    assert.ok(command.includes(DOCUMENTED_DATA_DIR), `the command names the demo's data folder: ${command}`);
    const { code, out, err } = await shell(command.replaceAll(DOCUMENTED_DATA_DIR, `--data-dir ${emulatorDir}`));
    assert.equal(code, 0, `${command}\n${out}\n${err}`);
    // npm prints the script it runs before the verb's JSON answer.
    const json = out.slice(out.search(/^[[{]/m));
    return JSON.parse(json) as T;
  }

  function stepNamed(number: number, pattern: RegExp): Step {
    const step = steps.find((s) => s.number === number);
    assert.ok(step, `the README has step ${number}`);
    assert.match(step.title, pattern);
    assert.ok(step.commands.length > 0, `step ${number} has a command`);
    return step;
  }

  async function snapshot(browser: Browser): Promise<Snapshot | 'signed-out'> {
    const hop = await browser.get(`${site.url}/app/sync/events`, { accept: 'application/json' });
    return hop.status === 200 ? (JSON.parse(hop.html) as Snapshot) : 'signed-out';
  }

  /** Waits until the tenant's sync is neither running nor queued and `done` says so. */
  async function settled(browser: Browser, done: (s: Snapshot) => boolean): Promise<Snapshot | 'signed-out'> {
    for (let waited = 0; waited < 90_000; waited += 200) {
      const s = await snapshot(browser);
      if (s === 'signed-out' || s.state === 'held' || (s.state === 'idle' && done(s))) return s;
      await sleep(200);
    }
    assert.fail('the sync did not settle within 90 s');
  }

  /** Submits the page's form that posts to `action` and contains `containing`. */
  function submit(browser: Browser, page: Hop, action: string, containing = ''): Promise<Hop> {
    const forms = [...page.html.matchAll(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/g)];
    const formIndex = forms.findIndex((f) => decodeHtml(f[1]!) === action && f[2]!.includes(containing));
    assert.ok(formIndex >= 0, `no form to ${action} (${containing}) on ${page.url}: ${page.html.slice(0, 1500)}`);
    return browser.submitForm(page, {}, { formIndex });
  }

  /** An admin's "Sync now" on the sync page (Fabrikam's unless told); waits for the round it starts. */
  async function syncNow(browser = admin): Promise<Snapshot | 'signed-out'> {
    const before = await settled(browser, () => true);
    if (before === 'signed-out') assert.fail('the admin is signed in before "Sync now"');
    // Live updates may have run the round already: a held removal waits for a decision, with no "Sync now" to press.
    if (before.state === 'held') return before;
    const pressed = await submit(browser, await browser.get(`${site.url}/app/sync`), '/app/sync', 'Sync now');
    assert.equal(pressed.status, 303, pressed.html.slice(0, 800));
    return settled(browser, (s) => s.lastSuccessAt !== before.lastSuccessAt || s.lastError !== before.lastError || s.health !== before.health);
  }

  async function users(browser: Browser, search = ''): Promise<{ total: number; rows: { upn: string; name: string; status: string }[] }> {
    const page = await browser.get(`${site.url}/app/users${search ? `?q=${encodeURIComponent(search)}` : ''}`);
    assert.equal(page.status, 200, page.html.slice(0, 800));
    const total = /<p class="count" role="status">([\d,]+) users?/.exec(page.html)?.[1];
    assert.ok(total, 'the users page shows a count');
    const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(page.html)?.[1] ?? '';
    const rows = [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map(([, tr]) => ({
      upn: decodeHtml(/<td data-label="UPN"[^>]*>([\s\S]*?)<\/td>/.exec(tr!)![1]!.trim()),
      name: decodeHtml(/<a href="\/app\/users\/[^"]+">([\s\S]*?)<\/a>/.exec(tr!)![1]!),
      status: /class="badge (\w+)"/.exec(tr!)![1]!,
    }));
    return { total: Number(total.replace(/,/g, '')), rows };
  }

  async function signedIn(username: string): Promise<Browser> {
    const browser = new Browser();
    const { final } = await signIn(browser, site, username);
    assert.equal(final.status, 200, final.html.slice(0, 800));
    return browser;
  }

  /** Sign-up's two trips to the identity provider from a page's button: sign-in, then admin consent. */
  async function consentFrom(browser: Browser, start: Hop, username: string): Promise<Hop> {
    const back = await passIdentityProvider(browser, site, start, username);
    const toConsent = await browser.get(new URL(back.location!, back.url).href);
    assert.equal(toConsent.status, 303, toConsent.html.slice(0, 800));
    const consented = await passIdentityProvider(browser, site, toConsent, username);
    return browser.get(new URL(consented.location!, consented.url).href);
  }

  before(async () => {
    ({ intro, steps } = tryIt(await readFile(join(ROOT, 'README.md'), 'utf8')));
    tmp = await mkdtemp(join(tmpdir(), 'roster-try-it-'));
    emulatorDir = join(tmp, 'data', 'emulator');
    Object.assign(env, {
      PORT: String(await freePort()),
      EMULATOR_HTTPS_PORT: String(await freePort()),
      EMULATOR_HTTP_PORT: String(await freePort()),
      DATA_DIR: join(tmp, 'data'),
    });
    site = { url: `http://localhost:${env.PORT}`, emulator: { urls: { pages: `http://localhost:${env.EMULATOR_HTTP_PORT}` } }, password: PASSWORD };
    assert.deepEqual(intro, ['npm start'], 'the section starts the demo with npm start');
    // Its own process group, so the signal reaches npm and the demo under it, as Ctrl+C does.
    demo = spawn('sh', ['-c', intro[0]!], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    demo.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    demo.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    exited = new Promise((resolve) => demo.once('exit', resolve));
    for (let waited = 0; !/Stop with Ctrl\+C/.test(stdout); waited += 100) {
      if (waited > 90_000 || demo.exitCode !== null) assert.fail(`the demo did not start: ${stdout}\n${stderr.slice(-2000)}`);
      await sleep(100);
    }
  });

  after(async () => {
    if (demo.exitCode === null && demo.signalCode === null) process.kill(-demo.pid!, 'SIGKILL');
    await rm(tmp, { recursive: true, force: true });
  });

  test('the demo tells how to drive its emulator from a second terminal, and that example works as printed', async () => {
    const control = join(emulatorDir, 'control.json');
    assert.equal((await stat(control)).mode & 0o777, 0o600, 'control.json is readable by its owner only');
    const { url } = JSON.parse(await readFile(control, 'utf8')) as { url: string };
    assert.equal(new URL(url).hostname, 'localhost');
    await assert.rejects(new ControlClient(url, 'a-forged-token').state(), (err: unknown) => err instanceof ControlError && err.status === 401, 'the control API needs the token from control.json');

    const example = /^ {2}(npm run roster -- emulator .+)$/m.exec(stdout)?.[1];
    assert.ok(example, `the start-up text shows a command:\n${stdout}`);
    assert.ok(example.endsWith(`--data-dir ${emulatorDir}`), example);
    const { code, out, err } = await shell(example);
    assert.equal(code, 0, `${out}\n${err}`);
    assert.match(out, /"accountEnabled": false/);
    const [, who, member] = /"Sync now" as (\S+) at .*: Users shows (.+) as Disabled/.exec(stdout) ?? [];
    assert.ok(who && member, `the start-up text says what to look for:\n${stdout}`);
    const contosoAdmin = await signedIn(who);
    assert.notEqual(await syncNow(contosoAdmin), 'signed-out');
    const upn = /user edit (\S+)/.exec(example)![1]!;
    assert.deepEqual((await users(contosoAdmin, upn)).rows.map((r) => [r.name, r.status]), [[member, 'disabled']]);
  });

  test('step 1: an admin signs Fabrikam up; its users appear, and Entra ID lists Roster among its apps', async () => {
    const step = stepNamed(1, /sign an organisation up/i);
    admin = new Browser();
    const signedUp = await consentFrom(admin, await admin.post(`${site.url}/signup`, { plan: 'team' }), ADMIN);
    assert.equal(signedUp.status, 200, signedUp.html.slice(0, 800));
    assert.match(signedUp.html, /Fabrikam is signed up/);
    await settled(admin, (s) => s.lastSuccessAt !== null);
    assert.equal((await users(admin)).total, 60);

    const tenant = await run<{ defaultDomain: string; consentedApps: { ready: boolean }[] }>(step.commands[0]!);
    assert.equal(tenant.defaultDomain, 'fabrikam.com');
    assert.equal(tenant.consentedApps.length, 1);
  });

  test('step 2 (security rule 19): a user disabled in Entra ID is shown disabled and signed out after "Sync now"', async () => {
    const step = stepNamed(2, /disable a user/i);
    const member = await signedIn(MEMBER);
    const edited = await run<{ accountEnabled: boolean }>(step.commands[0]!);
    assert.equal(edited.accountEnabled, false);
    assert.notEqual(await syncNow(), 'signed-out');
    const { rows } = await users(admin, MEMBER);
    assert.deepEqual(rows.map((r) => [r.upn, r.name, r.status]), [[MEMBER, 'Johanna Müller', 'disabled']]);

    const next = await member.get(`${site.url}/app`);
    assert.equal(next.status, 303, 'her session has ended');
    const atEntra = await member.follow(next);
    const locked = atEntra.html.includes('name="password"') ? await member.submitForm(atEntra, { username: MEMBER, password: PASSWORD }) : atEntra;
    assert.match(locked.html, /Your account has been locked/);
  });

  test('step 3: a user added in Entra ID is listed after "Sync now" and can sign in', async () => {
    const step = stepNamed(3, /add a user/i);
    const added = await run<{ userPrincipalName: string }>(step.commands[0]!);
    assert.notEqual(await syncNow(), 'signed-out');
    const listed = await users(admin, added.userPrincipalName);
    assert.deepEqual(listed.rows.map((r) => [r.name, r.status]), [['Ada Lovelace', 'active']]);
    assert.equal((await users(admin)).total, 61);
    await signedIn(added.userPrincipalName);
  });

  test('step 4 (sync rule 9): deleting 40% of the organisation is held for a decision; Confirm removes them', async () => {
    const step = stepNamed(4, /delete 40%/i);
    const deleted = await run<{ count: number; users: string[] }>(step.commands[0]!);
    assert.equal(deleted.count, 24);
    assert.ok(!deleted.users.includes(ADMIN), 'the administrator who decides is not deleted');
    const held = await syncNow();
    assert.ok(held !== 'signed-out' && held.state === 'held', JSON.stringify(held));
    const page = await admin.get(`${site.url}/app/sync`);
    assert.match(page.html, /Waiting for a decision/);
    assert.match(page.html, /would remove 24 of 61 users \(more than 30%\)/);
    assert.equal((await users(admin)).total, 61, 'nobody is removed before the decision');

    const confirmed = await submit(admin, page, '/app/sync/held', 'confirm');
    assert.equal(confirmed.status, 303);
    assert.equal((await users(admin)).total, 37);
    assert.deepEqual((await users(admin, deleted.users[0]!)).rows, []);
  });

  test('step 5 (security rule 19): a revoked consent disconnects the organisation and ends its sessions; the admin reconnects with the data kept', async () => {
    const step = stepNamed(5, /revoke consent and reconnect/i);
    await run(step.commands[0]!);
    assert.equal(await syncNow(), 'signed-out', 'the admin is signed out with the rest of Fabrikam');
    const next = await admin.get(`${site.url}/app/users`);
    assert.equal(next.status, 303);
    assert.match(next.location!, /^\/signin/);

    admin = new Browser();
    const { final } = await signIn(admin, site, ADMIN);
    assert.match(final.html, /Your organisation is not connected to Roster/);
    const reconnected = await consentFrom(admin, await submit(admin, final, '/signup', 'Reconnect your organisation'), ADMIN);
    assert.equal(reconnected.status, 200, reconnected.html.slice(0, 800));
    assert.equal((await admin.get(`${site.url}/app`)).status, 200);
    await settled(admin, (s) => s.lastSuccessAt !== null);
    assert.equal((await users(admin)).total, 37, 'the data was kept');
  });

  test('step 6: rotating the signing keys keeps the session; the next sign-in fetches the new key and works', async () => {
    const step = stepNamed(6, /rotate the signing keys/i);
    const control = await ControlClient.fromDataDir(emulatorDir);
    const keyFetches = async () => (await control.requests({ route: 'GET /:tenant/discovery/v2.0/keys' })).count;
    const fetchedBefore = await keyFetches();
    const rotated = await run<{ kid: string; kids: string[] }>(step.commands[0]!);
    assert.equal((await control.state()).signingKeys.current, rotated.kid);
    assert.equal((await admin.get(`${site.url}/app`)).status, 200, 'still signed in');

    const signedOut = await submit(admin, await admin.get(`${site.url}/app`), '/signout');
    assert.equal(signedOut.status, 303);
    assert.equal((await admin.get(`${site.url}/app`)).status, 303, 'signed out');
    const { final } = await signIn(admin, site, ADMIN);
    assert.equal(final.status, 200, final.html.slice(0, 800));
    assert.ok((await keyFetches()) > fetchedBefore, 'Roster fetched the key set again for the new key');
  });

  test('Ctrl+C stops the demo cleanly and removes control.json', async () => {
    assert.equal(steps.length, 6, 'every step of the README is checked above');
    const control = join(emulatorDir, 'control.json');
    const { pid } = JSON.parse(await readFile(control, 'utf8')) as { pid: number };
    // As a terminal's Ctrl+C: SIGINT to npm and the demo under it.
    process.kill(-demo.pid!, 'SIGINT');
    await exited;
    for (let waited = 0; alive(pid); waited += 100) {
      if (waited > 30_000) assert.fail(`the demo (pid ${pid}) did not stop: ${stderr.slice(-2000)}`);
      await sleep(100);
    }
    assert.match(stderr, /SIGINT: roster demo is stopping/);
    assert.doesNotMatch(stderr, /could not stop cleanly|did not stop within/);
    assert.equal(existsSync(control), false, 'the clean stop removed control.json');
    assert.ok(existsSync(join(emulatorDir, 'state.json')), 'and saved the directory');
  });
});
