import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import type { ReadyLine } from '../../src/emulator/cli.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const NODE = join(ROOT, 'node_modules/.bin/node');
const BIN = join(ROOT, 'bin/roster.js');
const FREE_PORTS = ['--https-port', '0', '--http-port', '0'];

interface Running {
  child: ChildProcess;
  ready: ReadyLine;
  stderr: () => string;
  /** Waits until stderr matches (stderr and stdout are separate pipes: no order between them). */
  waitForStderr(pattern: RegExp): Promise<string>;
  /** SIGTERM (or another signal), then the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const children = new Set<ChildProcess>();

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Starts `roster <args>` and waits for its first stdout line (the ready event). */
async function start(args: string[]): Promise<Running> {
  const child = spawn(NODE, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines = createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within 30 s; stderr: ${stderr}`)), 30_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before it was ready; stderr: ${stderr}`));
    });
  });
  const extra: string[] = [];
  lines.on('line', (line) => extra.push(line));
  return {
    child,
    ready: JSON.parse(first) as ReadyLine,
    stderr: () => stderr,
    // Waits for the output itself: each chunk of stderr is checked as it arrives.
    waitForStderr: (pattern) =>
      new Promise<string>((resolve, reject) => {
        const check = () => {
          if (!pattern.test(stderr)) return;
          child.stderr!.off('data', check);
          child.off('exit', exited);
          resolve(stderr);
        };
        const exited = () => {
          child.stderr!.off('data', check);
          reject(new Error(`exited before stderr matched ${pattern}: ${stderr}`));
        };
        child.stderr!.on('data', check);
        child.once('exit', exited);
        check();
      }),
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal);
      const code = await exitOf(child);
      children.delete(child);
      assert.deepEqual(extra, [], 'exactly one line on stdout');
      return code;
    },
  };
}

/** Runs `roster <args>` to completion. */
async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(NODE, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const code = await exitOf(child);
  children.delete(child);
  return { code, stdout, stderr };
}

async function verb<T = unknown>(dataDir: string, args: string[]): Promise<T> {
  const result = await run(['emulator', ...args, '--data-dir', dataDir]);
  assert.equal(result.code, 0, `roster emulator ${args.join(' ')} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'roster-cli-'));
});
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await rm(tmp, { recursive: true, force: true });
});

describe('roster emulator (start)', () => {
  test('prints one ready line, writes control.json, saves and cleans up on SIGTERM', async () => {
    const dataDir = join(tmp, 'ready');
    const emu = await start(['emulator', '--data-dir', dataDir, ...FREE_PORTS, '--tenants', '2', '--users', '50', '--consented', '1', '--password', 'pw-for-all']);
    const { ready } = emu;
    assert.equal(ready.event, 'ready');
    assert.match(ready.authority, /^https:\/\/localhost:\d+$/);
    assert.equal(ready.graph, ready.authority);
    assert.match(ready.pages, /^http:\/\/localhost:\d+$/);
    assert.equal(ready.control, `${ready.pages}/_emulator`);
    assert.ok(ready.controlToken.length >= 16);
    assert.equal(ready.caCertPath, join(dataDir, 'ca.pem'));
    assert.match(await readFile(ready.caCertPath!, 'utf8'), /BEGIN CERTIFICATE/);
    assert.equal(ready.dataDir, dataDir);
    assert.match(ready.app.clientId, /^[0-9a-f-]{36}$/);
    assert.ok(ready.app.clientSecret.length >= 30);
    assert.deepEqual(ready.app.redirectUris, ['http://localhost:3000/auth/callback', 'http://localhost:3000/signup/callback']);
    assert.deepEqual(
      ready.tenants.map((t) => [t.displayName, t.domain, t.users, t.consented, t.admin]),
      [
        ['Contoso', 'contoso.com', 50, true, { username: 'admin@contoso.com', password: 'pw-for-all' }],
        ['Fabrikam', 'fabrikam.com', 50, false, { username: 'admin@fabrikam.com', password: 'pw-for-all' }],
      ],
    );
    await emu.waitForStderr(/Roster emulator ready/);

    const controlPath = join(dataDir, 'control.json');
    const control = JSON.parse(await readFile(controlPath, 'utf8')) as { url: string; token: string; pid: number };
    assert.deepEqual(control, { url: ready.control, token: ready.controlToken, pid: emu.child.pid });
    assert.equal((await stat(controlPath)).mode & 0o777, 0o600);

    // The control API refuses requests without the token.
    assert.equal((await fetch(`${ready.control}/state`)).status, 401);
    assert.equal((await fetch(`${ready.control}/state`, { headers: { authorization: `Bearer ${ready.controlToken}` } })).status, 200);

    assert.equal(await emu.stop(), 0);
    assert.equal(existsSync(controlPath), false, 'control.json is removed at exit');
    assert.ok(existsSync(join(dataDir, 'state.json')), 'state saved on SIGTERM');
  });

  test('the same --seed gives the same tenants and first users', async () => {
    const runs = [];
    for (let i = 0; i < 2; i++) {
      const emu = await start(['emulator', '--memory', ...FREE_PORTS, '--tenants', '3', '--users', '20', '--seed', '1234']);
      const headers = { authorization: `Bearer ${emu.ready.controlToken}` };
      const firstUsers = [];
      for (const t of emu.ready.tenants) {
        const res = await fetch(`${emu.ready.control}/tenants/${t.id}/changes?limit=3`, { headers });
        firstUsers.push(((await res.json()) as { changes: { userId: string }[] }).changes.map((c) => c.userId));
      }
      runs.push({ tenants: emu.ready.tenants, firstUsers, caCertPem: emu.ready.caCertPem });
      assert.equal(await emu.stop(), 0);
    }
    assert.equal(runs[0]!.tenants.length, 3);
    assert.deepEqual(runs[0]!.tenants, runs[1]!.tenants);
    assert.deepEqual(runs[0]!.firstUsers, runs[1]!.firstUsers);
    assert.equal(runs[0]!.firstUsers[0]!.length, 3);
    assert.match(runs[0]!.caCertPem!, /BEGIN CERTIFICATE/, 'an in-memory emulator hands out its CA in the ready line');
    const other = await start(['emulator', '--memory', ...FREE_PORTS, '--tenants', '3', '--users', '20', '--seed', '1235']);
    assert.notDeepEqual(other.ready.tenants.map((t) => t.id), runs[0]!.tenants.map((t) => t.id));
    assert.equal(await other.stop(), 0);
  });

  test('state saved at SIGTERM comes back on restart, change log included, and wins over seeding flags', async () => {
    const dataDir = join(tmp, 'restart');
    const first = await start(['emulator', '--data-dir', dataDir, ...FREE_PORTS, '--tenants', '1', '--users', '10']);
    const added = await verb<{ id: string }>(dataDir, ['user', 'add', '--tenant', 'contoso.com', '--upn', 'kept.person@contoso.com', '--name', "Kept O'Person", '--job-title', 'R&D']);
    const before = await verb<{ seq: number; changes: { seq: number; userId: string }[] }>(dataDir, ['tenant', 'changes', 'contoso.com', '--since-seq', '10']);
    assert.deepEqual(before.changes, [{ seq: 11, userId: added.id }]);
    assert.equal(await first.stop(), 0);

    const second = await start(['emulator', '--data-dir', dataDir, ...FREE_PORTS, '--tenants', '4', '--users', '3']);
    try {
      await second.waitForStderr(/saved state wins/);
      assert.equal(second.ready.tenants.length, 1);
      assert.equal(second.ready.app.clientId, first.ready.app.clientId);
      const shown = await verb<{ id: string; displayName: string; deleted: boolean }>(dataDir, ['user', 'show', 'kept.person@contoso.com', '--tenant', 'contoso.com']);
      assert.deepEqual([shown.id, shown.displayName, shown.deleted], [added.id, "Kept O'Person", false]);
      const after = await verb<{ seq: number; changes: { seq: number; userId: string }[] }>(dataDir, ['tenant', 'changes', 'contoso.com', '--since-seq', '10']);
      assert.deepEqual(after.changes, before.changes);
    } finally {
      assert.equal(await second.stop(), 0);
    }
  });

  test('bad flags exit 2 with a message', async () => {
    const cases: [string[], RegExp][] = [
      [['emulator', '--bogus'], /Unknown option '--bogus'/],
      [['emulator', '--https-port', 'abc'], /--https-port must be a whole number, not "abc"/],
      [['emulator', '--http-port', '70000'], /--http-port must be between 0 and 65535/],
      [['emulator', '--tenants', '2', '--demo'], /choose one way to seed/],
      [['emulator', '--memory', '--data-dir', 'x'], /exclude each other/],
      [['emulator', 'tenant', 'frobnicate'], /unknown sub-command "frobnicate"/],
      [['emulator', 'user', 'delete', '--tenant', 'x'], /missing USER/],
      [['emulator', 'fault', 'add', '--target', 'graph', '--kind', 'throttle', '--share', '2'], /--share must be between 0 and 1/],
    ];
    for (const [args, message] of cases) {
      const result = await run(args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, '');
    }
  });

  test('a bad fixture exits 2 and names the file and field', async () => {
    const invalid = join(tmp, 'invalid.json');
    await writeFile(invalid, '{"tenants": [}');
    const schema = join(tmp, 'schema.json');
    await writeFile(schema, JSON.stringify({ tenants: [{ displayName: 'X', domains: ['x.com'], users: [{ userPrincipalName: 'a@x.com' }, { userPrincipalName: 'b@x.com', accountEnabled: 'no' }] }] }));
    const cases: [string, RegExp][] = [
      [invalid, /fixture .*invalid\.json: not valid JSON/],
      [schema, /fixture .*schema\.json tenants\[0\]\.users\[1\]\.accountEnabled: /],
      [join(tmp, 'missing.json'), /fixture .*missing\.json: cannot read the file \(ENOENT\)/],
    ];
    for (const [path, message] of cases) {
      const result = await run(['emulator', '--memory', ...FREE_PORTS, '--fixture', path]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, '');
    }
  });

  test('the example fixture starts; SIGINT stops it cleanly', async () => {
    const emu = await start(['emulator', '--memory', ...FREE_PORTS, '--fixture', 'docs/examples/emulator-fixture.json']);
    assert.deepEqual(
      emu.ready.tenants.map((t) => [t.displayName, t.users, t.consented, t.admin?.username]),
      [
        ['Contoso', 5, true, 'admin@contoso.com'],
        ['Fabrikam', 3, false, 'admin@fabrikam.com'],
      ],
    );
    assert.equal(await emu.stop('SIGINT'), 0);
  });
});

describe('roster emulator verbs', () => {
  let dataDir: string;
  let emu: Running;
  before(async () => {
    dataDir = join(tmp, 'verbs');
    emu = await start(['emulator', '--data-dir', dataDir, ...FREE_PORTS, '--tenants', '2', '--users', '30', '--consented', '1']);
  });
  after(async () => {
    await emu.stop();
  });

  test('tenants, users and consent', async () => {
    const tenant = await verb<{ id: string; userCount: number; domains: string[] }>(dataDir, ['tenant', 'add', '--name', 'Blue Yonder', '--domain', 'blueyonder.onmicrosoft.com', '--domain', 'blueyonder.com', '--users', '12']);
    assert.equal(tenant.userCount, 12);
    await verb(dataDir, ['tenant', 'edit', 'blueyonder.com', '--name', 'Blue Yonder Airlines']);
    const user = await verb<{ id: string; admin: boolean; accountEnabled: boolean }>(dataDir, ['user', 'add', '--tenant', tenant.id, '--upn', 'pilot@blueyonder.com', '--admin', '--disabled']);
    assert.equal(user.admin, true);
    assert.equal(user.accountEnabled, false);
    const edited = await verb<{ jobTitle: string; admin: boolean }>(dataDir, ['user', 'edit', 'pilot@blueyonder.com', '--tenant', 'blueyonder.com', '--job-title', 'Captain', '--no-admin']);
    assert.deepEqual([edited.jobTitle, edited.admin], ['Captain', false]);
    await verb(dataDir, ['user', 'delete', 'pilot@blueyonder.com', '--tenant', 'blueyonder.com']);
    await verb(dataDir, ['user', 'restore', user.id, '--tenant', 'blueyonder.com']);
    await verb(dataDir, ['user', 'purge', user.id, '--tenant', 'blueyonder.com']);
    const shown = await run(['emulator', 'user', 'show', user.id, '--tenant', 'blueyonder.com', '--data-dir', dataDir]);
    assert.equal(shown.code, 1);
    assert.match(shown.stderr, /404/);

    await verb(dataDir, ['consent', 'grant', '--tenant', 'blueyonder.com']);
    let state = await verb<{ tenants: { id: string; displayName: string; consentedApps: unknown[] }[] }>(dataDir, ['state']);
    const blue = state.tenants.find((t) => t.id === tenant.id)!;
    assert.equal(blue.displayName, 'Blue Yonder Airlines');
    assert.equal(blue.consentedApps.length, 1);
    await verb(dataDir, ['consent', 'revoke', '--tenant', 'blueyonder.com']);
    await verb(dataDir, ['tenant', 'remove', 'blueyonder.com']);
    state = await verb(dataDir, ['state']);
    assert.equal(state.tenants.length, 2);
  });

  test('user delete-many deletes a share of a tenant; a missing or doubled amount is a usage error', async () => {
    await verb(dataDir, ['tenant', 'add', '--name', 'Trey Research', '--users', '20']);
    const deleted = await verb<{ deleted: string; count: number; remaining: number; users: string[] }>(dataDir, ['user', 'delete-many', '--tenant', 'treyresearch.com', '--share', '0.4', '--permanent']);
    assert.deepEqual([deleted.deleted, deleted.count, deleted.remaining, deleted.users.length], ['permanent', 8, 12, 8]);
    const shown = await verb<{ userCount: number; purgedCount: number }>(dataDir, ['tenant', 'show', 'treyresearch.com']);
    assert.deepEqual([shown.userCount, shown.purgedCount], [12, 8]);
    for (const args of [[], ['--share', '0.1', '--count', '2'], ['--share', 'lots']]) {
      const bad = await run(['emulator', 'user', 'delete-many', '--tenant', 'treyresearch.com', ...args, '--data-dir', dataDir]);
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
    }
    const tooMany = await run(['emulator', 'user', 'delete-many', '--tenant', 'treyresearch.com', '--count', '12', '--data-dir', dataDir]);
    assert.equal(tooMany.code, 1);
    assert.match(tooMany.stderr, /11 users who are not administrators, fewer than 12/);
    await verb(dataDir, ['tenant', 'remove', 'treyresearch.com']);
  });

  test('groups and memberships: add, list, show, edit, member add|remove, delete, restore, purge; consent with exact roles', async () => {
    type Group = { id: string; displayName: string; kind: string; mail: string | null; description: string | null; members?: string[]; memberCount: number; deleted?: boolean };
    const tenant = await verb<{ id: string; groupCount: number }>(dataDir, ['tenant', 'add', '--name', 'Alpine Ski House', '--users', '12', '--groups', '4', '--seed', '9']);
    assert.equal(tenant.groupCount, 4);
    const listed = await verb<{ groups: Group[] }>(dataDir, ['group', 'list', '--tenant', 'alpineskihouse.com']);
    assert.equal(listed.groups[0]!.displayName, 'All Company');
    const admin = await verb<{ id: string }>(dataDir, ['user', 'show', 'admin@alpineskihouse.com', '--tenant', 'alpineskihouse.com']);

    const team = await verb<Group>(dataDir, ['group', 'add', '--tenant', tenant.id, '--name', 'Project Falcon', '--kind', 'microsoft365', '--member', 'admin@alpineskihouse.com']);
    assert.deepEqual([team.kind, team.mail, team.members], ['microsoft365', 'projectfalcon@alpineskihouse.com', [admin.id]]);
    const dynamic = await verb<Group & { membershipRule: string }>(dataDir, ['group', 'add', '--tenant', tenant.id, '--name', 'Sales', '--kind', 'dynamic', '--rule', 'user.department -eq "Sales"']);
    assert.deepEqual([dynamic.kind, dynamic.membershipRule], ['dynamic', 'user.department -eq "Sales"']);
    const leads = await verb<Group>(dataDir, ['group', 'add', '--tenant', tenant.id, '--name', 'Leads', '--description', 'People who lead']);
    assert.equal(leads.kind, 'security');
    await verb(dataDir, ['group', 'member', 'add', 'leads', 'admin@alpineskihouse.com', '--tenant', tenant.id]);
    const nested = await verb<Group>(dataDir, ['group', 'member', 'add', 'allcompany', 'leads', '--tenant', tenant.id]);
    assert.equal(nested.memberCount, listed.groups[0]!.memberCount + 1);
    const refused = await run(['emulator', 'group', 'member', 'add', 'allcompany', 'projectfalcon', '--tenant', tenant.id, '--data-dir', dataDir]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /Microsoft 365 group and cannot be nested/);
    await verb(dataDir, ['group', 'member', 'remove', 'allcompany', leads.id, '--tenant', tenant.id]);
    const edited = await verb<Group>(dataDir, ['group', 'edit', 'leads', '--tenant', tenant.id, '--name', 'Team leads']);
    assert.deepEqual([edited.displayName, edited.description], ['Team leads', 'People who lead']);

    assert.deepEqual(await verb(dataDir, ['group', 'delete', 'projectfalcon', '--tenant', tenant.id]), { id: team.id, deleted: 'soft' });
    assert.equal((await verb<Group>(dataDir, ['group', 'show', 'projectfalcon', '--tenant', tenant.id])).deleted, true);
    assert.deepEqual((await verb<Group>(dataDir, ['group', 'restore', team.id, '--tenant', tenant.id])).members, [admin.id]);
    assert.deepEqual(await verb(dataDir, ['group', 'purge', 'projectfalcon', '--tenant', tenant.id]), { id: team.id, deleted: 'permanent' });
    assert.deepEqual(await verb(dataDir, ['group', 'delete', 'leads', '--tenant', tenant.id]), { id: leads.id, deleted: 'permanent' });
    const restore = await run(['emulator', 'group', 'restore', leads.id, '--tenant', tenant.id, '--data-dir', dataDir]);
    assert.equal(restore.code, 1);
    assert.match(restore.stderr, /only Microsoft 365 groups can be restored/);

    const consent = await verb<{ appRoles: string[] }>(dataDir, ['consent', 'grant', '--tenant', tenant.id, '--role', 'User.Read.All']);
    assert.deepEqual(consent.appRoles, ['User.Read.All']);
    assert.deepEqual((await verb<{ appRoles: string[] }>(dataDir, ['consent', 'grant', '--tenant', tenant.id])).appRoles, ['User.Read.All', 'GroupMember.Read.All']);
    await verb(dataDir, ['tenant', 'remove', tenant.id]);

    const usage: [string[], RegExp][] = [
      [['group', 'add', '--tenant', 'x'], /--name is required/],
      [['group', 'add', '--tenant', 'x', '--name', 'y', '--kind', 'club'], /--kind must be security, microsoft365, distribution, dynamic, not "club"/],
      [['group', 'frob'], /roster emulator group: unknown sub-command "frob"; one of: add, list, show, edit, delete, purge, restore, member/],
      [['group', 'member', 'frob'], /roster emulator group member: unknown sub-command "frob"; one of: add, remove/],
      [['group', 'member', 'add', 'g', '--tenant', 'x'], /missing MEMBER/],
      [['group', 'edit', 'g', '--tenant', 'x'], /give at least one property/],
    ];
    for (const [args, message] of usage) {
      const result = await run(['emulator', ...args, '--data-dir', dataDir]);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });

  test('keys, delta, app, clock, settings', async () => {
    const rotated = await verb<{ kid: string; kids: string[]; saved: boolean }>(dataDir, ['keys', 'rotate', '--drop-previous']);
    assert.deepEqual(rotated.kids, [rotated.kid]);
    assert.equal(rotated.saved, true);
    const stored = JSON.parse(await readFile(join(dataDir, 'signing-keys.json'), 'utf8')) as unknown[];
    assert.equal(stored.length, 1, 'the rotated keyring is on disk');
    const expired = await verb<{ deltaFloor: number }>(dataDir, ['delta', 'expire', '--tenant', 'contoso.com']);
    assert.equal(expired.deltaFloor, 31);
    assert.equal((await verb<{ disabled: boolean }>(dataDir, ['app', 'disable'])).disabled, true);
    assert.equal((await verb<{ disabled: boolean }>(dataDir, ['app', 'enable'])).disabled, false);
    assert.equal((await verb<{ offsetSeconds: number }>(dataDir, ['clock', 'advance', '--seconds', '120'])).offsetSeconds, 120);
    assert.equal((await verb<{ missingServicePrincipalError: number }>(dataDir, ['settings', '--missing-sp-error', '7000229'])).missingServicePrincipalError, 7000229);
  });

  test('faults, requests and stats', async () => {
    const fault = await verb<{ id: string; retryAfter: string; count: number }>(dataDir, ['fault', 'add', '--target', 'token', '--kind', 'throttle', '--retry-after', '2', '--count', '1', '--tenant', 'contoso.com']);
    assert.deepEqual([fault.retryAfter, fault.count], ['2', 1]);
    assert.equal((await verb<{ faults: unknown[] }>(dataDir, ['fault', 'list'])).faults.length, 1);
    await verb(dataDir, ['requests', 'clear']);
    // The back channel answers the throttled request over the emulator's own CA; the status is what counts here.
    const tenantId = emu.ready.tenants[0]!.id;
    const { Agent, fetch: undiciFetch } = await import('undici');
    const dispatcher = new Agent({ connect: { ca: await readFile(emu.ready.caCertPath!, 'utf8') } });
    try {
      const res = await undiciFetch(`${emu.ready.authority}/${tenantId}/oauth2/v2.0/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials' }), dispatcher });
      assert.equal(res.status, 429);
      assert.equal(res.headers.get('retry-after'), '2');
    } finally {
      await dispatcher.close();
    }
    const requests = await verb<{ count: number; entries: { tenant: string; fault?: string }[] }>(dataDir, ['requests', '--tenant', 'contoso.com']);
    assert.equal(requests.count, 1);
    assert.equal(requests.entries[0]!.fault, 'throttle');
    const stats = await verb<{ total: number }>(dataDir, ['stats']);
    assert.equal(stats.total, 1);
    assert.deepEqual(await verb(dataDir, ['fault', 'clear']), { removed: 1 });
    const saved = await verb<{ saved: boolean }>(dataDir, ['save']);
    assert.equal(saved.saved, true);
  });

  test('verbs without a running emulator, or with a wrong token, fail with exit 1', async () => {
    const nowhere = await run(['emulator', 'state', '--data-dir', join(tmp, 'no-such-dir')]);
    assert.equal(nowhere.code, 1);
    assert.match(nowhere.stderr, /no emulator is running with this data folder/);
    const wrong = await run(['emulator', 'state', '--control-url', emu.ready.control, '--control-token', 'not-the-token']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /401/);
  });
});

describe('roster', () => {
  test('--help lists the commands that exist', async () => {
    const result = await run(['--help']);
    assert.equal(result.code, 0);
    for (const command of ['serve', 'demo', 'migrate', 'setup', 'doctor', 'sync', 'worker', 'tenants', 'held', 'api-keys', 'webhooks', 'emulator']) {
      assert.match(result.stdout, new RegExp(`^ {2}${command}\\b`, 'm'));
    }
  });

  test('an unknown command exits 2 with the list of commands', async () => {
    const unknown = await run(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    assert.match(unknown.stderr, /^ {2}tenants\b/m);
    assert.equal(unknown.stdout, '');
  });

  test('roster emulator --demo seeds the demo tenants and prints their accounts', async () => {
    const emu = await start(['emulator', '--demo', '--memory', ...FREE_PORTS]);
    assert.deepEqual(
      emu.ready.tenants.map((t) => [t.displayName, t.users, t.groups, t.consented, t.admin?.username, t.admin?.password]),
      [
        ['Contoso', 300, 8, true, 'admin@contoso.com', 'roster-demo'],
        ['Fabrikam', 60, 4, false, 'admin@fabrikam.com', 'roster-demo'],
        ['Northwind Traders', 25_000, 300, true, 'admin@northwindtraders.com', 'roster-demo'],
      ],
    );
    assert.equal(await emu.stop(), 0);
    const conflicting = await run(['emulator', '--demo', '--tenants', '2']);
    assert.equal(conflicting.code, 2);
  });
});
