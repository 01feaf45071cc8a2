import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Tenant } from '../../src/emulator/model.ts';
import { SYNC_QUEUE } from '../../src/jobs/queue.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { rosterSettingsFor, startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { demoApp } from '../helpers/fixtures.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';

const BIN = fileURLToPath(new URL('../../bin/roster.js', import.meta.url));
const TENANTS = 20;

/** Scale-out on PostgreSQL: two `roster worker` processes share the tenants through pg-boss. */
describe('two roster worker processes and 20 tenants', () => {
  let emulator: TestEmulator;
  let db: TestStore;
  let dir: string;
  const tenants: Tenant[] = [];
  const workers: { child: ChildProcess; log: () => string }[] = [];

  before(async () => {
    emulator = await startTestEmulator();
    db = await openTestStore('postgres');
    dir = await mkdtemp(join(tmpdir(), 'roster-workers-'));
    await writeFile(join(dir, 'ca.pem'), emulator.caCertPem);
    const registry = new TenantRepository(db.store.db);
    for (let t = 0; t < TENANTS; t++) {
      const tenant = emulator.ctx.directory.addTenant({ displayName: `Scale ${t}`, domains: [`scale${t}.onmicrosoft.com`, `scale${t}.com`] });
      emulator.ctx.directory.addUsersUnchecked(tenant, Array.from({ length: 300 + t * 50 }, (_, i) => ({ userPrincipalName: `u${i}@scale${t}.com` })));
      emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
      await registry.activate({ id: tenant.id, displayName: tenant.displayName, domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
      tenants.push(tenant);
    }
    const env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DATABASE_URL: db.target,
      ...rosterSettingsFor(emulator, join(dir, 'ca.pem')),
      SYNC_TICK_SECONDS: '1',
      SYNC_CONCURRENCY: '3',
      LOG_LEVEL: 'info',
    };
    for (let w = 0; w < 2; w++) {
      const child = spawn(process.execPath, [BIN, 'worker'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      child.stderr!.setEncoding('utf8').on('data', (c: string) => (log += c));
      workers.push({ child, log: () => log });
    }
  });

  after(async () => {
    for (const { child } of workers) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((resolve) => child.once('exit', resolve));
      }
    }
    await db.drop();
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function waitForRound(since: number): Promise<void> {
    for (let waited = 0; ; waited += 250) {
      const done = await db.store.db.selectFrom('sync_state').select('tenant_id').where('last_success_at', '>=', since).execute();
      if (done.length === TENANTS) return;
      if (waited > 90_000) assert.fail(`only ${done.length} of ${TENANTS} tenants synced; worker logs:\n${workers.map((w) => w.log().slice(-1500)).join('\n---\n')}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Until no sync is queued or under way: a run still in flight would write its success over the reset that starts the next round. */
  async function waitForQuiet(): Promise<void> {
    for (let waited = 0; ; waited += 250) {
      const queued = await db.store.db.selectFrom('pgboss.job' as never).select('id' as never).where('name' as never, '=', SYNC_QUEUE as never).where('state' as never, 'in', ['created', 'retry', 'active'] as never).execute();
      const locked = await db.store.db.selectFrom('sync_state').select('tenant_id').where('lock_owner', 'is not', null).execute();
      if (queued.length === 0 && locked.length === 0) return;
      if (waited > 90_000) assert.fail(`${queued.length} sync jobs still queued or active, ${locked.length} tenants locked`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  it('every tenant is synced in each round, and no tenant ever has two runs at once', async () => {
    const start = Date.now();
    await waitForRound(start);
    // Runs queued while round one was under way may still be going: the reset must not meet them.
    await waitForQuiet();
    // A second round: every tenant is due again.
    for (const tenant of tenants.slice(0, 5)) emulator.ctx.directory.addUser(tenant, { userPrincipalName: `late@${tenant.defaultDomain}` });
    const second = Date.now();
    await db.store.db.updateTable('sync_state').set({ last_success_at: 1 }).execute();
    await waitForRound(second);

    const runs = await db.store.db.selectFrom('sync_runs').selectAll().orderBy('started_at').execute();
    for (const tenant of tenants) {
      const own = runs.filter((r) => r.tenant_id === tenant.id);
      assert.ok(own.filter((r) => r.status === 'succeeded').length >= 2, `${tenant.displayName} was synced in both rounds`);
      for (let i = 1; i < own.length; i++) {
        assert.ok(own[i]!.started_at >= (own[i - 1]!.finished_at ?? Infinity), `${tenant.displayName}: two runs overlapped`);
      }
      const users = await db.store.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.equal(Number(users.n), tenant.users.length);
    }
    const finishedBy = workers.map((w) => (w.log().match(/sync run finished/g) ?? []).length);
    assert.ok(finishedBy.every((n) => n > 0), `both workers took work: ${finishedBy.join(' and ')} runs`);
  });
});
