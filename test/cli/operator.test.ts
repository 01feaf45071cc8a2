import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Tenant } from '../../src/emulator/model.ts';
import { migrateToLatest, openStore, type Store } from '../../src/store/database.ts';
import { AuditRepository } from '../../src/store/audit.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { rosterSettingsFor, startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { demoApp } from '../helpers/fixtures.ts';
import { rosterRunner } from './spawn.ts';

let tmp: string;
const { runRoster, killAll } = rosterRunner(() => tmp);

/** `roster tenants`, `roster held` and `roster api-keys` against one SQLite database, with an emulator for the commands that sync. */
describe('operator commands', () => {
  let emulator: TestEmulator;
  let store: Store;
  let env: Record<string, string>;
  let entraEnv: Record<string, string>;
  let tenant: Tenant;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'roster-ops-'));
    env = { DATA_DIR: join(tmp, 'data'), LOG_LEVEL: 'warn' };
    emulator = await startTestEmulator();
    const caFile = join(tmp, 'ca.pem');
    await writeFile(caFile, emulator.caCertPem);
    entraEnv = { ...env, ...rosterSettingsFor(emulator, caFile) };
    tenant = emulator.ctx.directory.addTenant({ displayName: 'Northwind', domains: ['northwind.onmicrosoft.com'] });
    emulator.ctx.directory.addUsersUnchecked(tenant, Array.from({ length: 10 }, (_, i) => ({ userPrincipalName: `n${i}@northwind.onmicrosoft.com`, displayName: `N ${i}` })));
    emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
    store = await openStore({ engine: 'sqlite', path: join(env.DATA_DIR!, 'roster.db') });
    await migrateToLatest(store);
    await new TenantRepository(store.db).activate({ id: tenant.id, displayName: 'Northwind', domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
  });
  after(async () => {
    killAll();
    await store?.close();
    await emulator?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  const audit = () => new AuditRepository(store.db).page({ actorId: 'cli' }, { limit: 100 });

  it('roster api-keys: create prints the key once, list shows only its prefix, revoke stops it; each change audited', async () => {
    const created = await runRoster(['api-keys', 'create', '--name', 'billing', '--scope', 'directory:read', '--scope', 'tenants:manage', '--tenant', tenant.id], env);
    assert.equal(created.code, 0, created.stderr);
    const secret = created.stdout.trim();
    assert.match(secret, /^roster_sk_[A-Za-z0-9_-]{43}$/);
    assert.match(created.stderr, /Copy it now/);
    const id = /(key_[0-9a-f]{16})/.exec(created.stderr)![1]!;

    const listed = await runRoster(['api-keys', 'list'], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${id}\\s+billing\\s+${secret.slice(0, 16)}…\\s+directory:read,tenants:manage\\s+${tenant.id}`));
    assert.ok(!listed.stdout.includes(secret.slice(16)), 'the key is never shown again');
    const json = JSON.parse((await runRoster(['api-keys', 'list', '--json'], env)).stdout) as { id: string; revoked_at: string | null }[];
    assert.equal(json.find((k) => k.id === id)!.revoked_at, null);

    const revoked = await runRoster(['api-keys', 'revoke', id], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /stops working at once/);
    assert.match((await runRoster(['api-keys', 'revoke', id], env)).stdout, /already revoked/);
    const again = JSON.parse((await runRoster(['api-keys', 'list', '--json'], env)).stdout) as { id: string; revoked_at: string | null }[];
    assert.notEqual(again.find((k) => k.id === id)!.revoked_at, null);

    const entries = await audit();
    assert.ok(entries.some((e) => e.action === 'api_key.create' && e.target === id && e.tenantId === tenant.id && e.actor.source === 'cli'));
    assert.equal(entries.filter((e) => e.action === 'api_key.revoke' && e.target === id).length, 1, 'a second revoke changes nothing and is not audited');
  });

  it('roster api-keys: bad input exits 2 with what to fix, and creates nothing', async () => {
    const before = (await runRoster(['api-keys', 'list', '--json'], env)).stdout;
    const cases: [string[], RegExp][] = [
      [['api-keys', 'create', '--name', 'x'], /at least one --scope/],
      [['api-keys', 'create', '--scope', 'directory:read'], /needs --name/],
      [['api-keys', 'create', '--name', 'x', '--scope', 'everything'], /"everything", which is not one of/],
      [['api-keys', 'create', '--name', 'x', '--scope', 'directory:read', '--tenant', '00000000-0000-4000-8000-000000000000'], /not a tenant of Roster/],
      [['api-keys', 'create', '--name', '   ', '--scope', 'directory:read'], /"name" must be/],
      [['api-keys', 'revoke', 'roster_sk_abc'], /not an API key id/],
      [['api-keys', 'revoke', 'key_0000000000000000'], /no API key key_0000000000000000/],
      [['api-keys', 'rotate'], /unknown action "rotate"/],
      [['api-keys'], /needs an action/],
      [['api-keys', 'list', '--scope', 'x'], /go with "create" only/],
    ];
    for (const [args, message] of cases) {
      const result = await runRoster(args, env);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, '');
    }
    assert.equal((await runRoster(['api-keys', 'list', '--json'], env)).stdout, before);
  });

  it('roster tenants: list, show, suspend and resume with the console\'s outcome and audit entries; refusals exit 1 or 2', async () => {
    const listed = await runRoster(['tenants', 'list'], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${tenant.id}\\s+active\\s+0\\s+Northwind`));
    const shown = await runRoster(['tenants', 'show', tenant.id.toUpperCase()], env);
    assert.match(shown.stdout, /Name:\s+Northwind/);
    assert.match(shown.stdout, /State:\s+active/);

    const suspended = await runRoster(['tenants', 'suspend', tenant.id], env);
    assert.equal(suspended.code, 0, suspended.stderr);
    assert.match(suspended.stdout, /Northwind is suspended/);
    assert.equal((await new TenantRepository(store.db).get(tenant.id))!.state, 'suspended');
    const twice = await runRoster(['tenants', 'suspend', tenant.id], env);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /Only an active tenant can be suspended/);
    const syncSuspended = await runRoster(['tenants', 'sync', tenant.id], entraEnv);
    assert.equal(syncSuspended.code, 1);
    assert.match(syncSuspended.stderr, /Only an active tenant can be synced/);
    const resumed = await runRoster(['tenants', 'resume', tenant.id], env);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal((await new TenantRepository(store.db).get(tenant.id))!.state, 'active');

    for (const [args, code, message] of [
      [['tenants', 'show', '00000000-0000-4000-8000-000000000000'], 2, /no tenant with this id/],
      [['tenants', 'suspend', 'contoso'], 2, /"contoso" is not a tenant id/],
      [['tenants', 'resume'], 2, /needs a tenant id/],
      [['tenants', 'delete', tenant.id], 2, /unknown action "delete"/],
      [['tenants', 'list', '--full'], 2, /--full goes with "sync" only/],
      [['tenants', 'list', '--verbose'], 2, /Unknown option '--verbose'/],
    ] as const) {
      const result = await runRoster([...args], env);
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
    const actions = (await audit()).filter((e) => e.tenantId === tenant.id && e.action.startsWith('tenant.')).map((e) => e.action).reverse();
    assert.deepEqual(actions, ['tenant.suspend', 'tenant.resume'], 'refused commands leave no entry');
  });

  it('roster tenants sync and roster held: a sync in the foreground, a held mass deletion listed and confirmed, both audited', async () => {
    const first = await runRoster(['tenants', 'sync', tenant.id], entraEnv);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /Northwind/);
    assert.equal((await new TenantRepository(store.db).get(tenant.id))!.userCount, 10);

    for (const user of tenant.users.slice(0, 6)) emulator.ctx.directory.purgeUser(tenant, user.props.id);
    const held = await runRoster(['tenants', 'sync', tenant.id, '--full'], entraEnv);
    // As with roster sync, a held run is an outcome waiting for a person, not a failure of the command.
    assert.equal(held.code, 0, held.stderr);
    assert.match(held.stdout, /full sync held: .*would remove 6 of 10 users/);
    const listed = await runRoster(['held', 'list'], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`${tenant.id}\\s+Northwind\\s+\\S+\\s+full`));

    assert.equal((await runRoster(['held', 'confirm'], entraEnv)).code, 2, '--tenant is required');
    const demo = await runRoster(['held', 'confirm', '--tenant', tenant.id], env);
    assert.equal(demo.code, 2);
    assert.match(demo.stderr, /needs Entra settings/);
    const confirmed = await runRoster(['held', 'confirm', '--tenant', tenant.id], entraEnv);
    assert.equal(confirmed.code, 0, confirmed.stderr);
    assert.match(confirmed.stdout, /Confirmed: 6 users removed/);
    assert.equal((await new TenantRepository(store.db).get(tenant.id))!.userCount, 4);
    const nothing = await runRoster(['held', 'discard', '--tenant', tenant.id], entraEnv);
    assert.equal(nothing.code, 1);
    assert.match(nothing.stderr, /no sync waiting for a decision/);
    assert.match((await runRoster(['held', 'list'], env)).stdout, /No sync is waiting/);

    const entries = (await audit()).filter((e) => e.tenantId === tenant.id).map((e) => [e.action, e.detail] as const).reverse();
    assert.deepEqual(entries.slice(-3), [
      ['tenant.sync', { full: false }],
      ['tenant.sync', { full: true }],
      ['held.confirm', { objects: 'users', removed: 6 }],
    ]);
  });
});
