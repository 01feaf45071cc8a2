import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { STOPPED_REASON } from '../../src/directory/sync.ts';
import type { Tenant } from '../../src/emulator/model.ts';
import { migrateToLatest, openStore, type Store } from '../../src/store/database.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { rosterSettingsFor, startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { demoApp } from '../helpers/fixtures.ts';
import { assertMirrors } from '../helpers/mirror.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';
import { freePort, rosterRunner, type RosterProcess } from './spawn.ts';

const USERS = 20_000;

let tmp: string;
let emulator: TestEmulator;
const { spawnRoster, runRoster, killAll } = rosterRunner(() => tmp);

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'roster-shutdown-'));
  emulator = await startTestEmulator();
  await writeFile(join(tmp, 'ca.pem'), emulator.caCertPem);
});
after(async () => {
  killAll();
  await emulator.close();
  await rm(tmp, { recursive: true, force: true });
});

/** A consenting tenant of 20,000 users, registered in Roster's database; Graph answers it slowly so that a signal finds its sync mid-way. */
async function slowTenant(store: Store, name: string): Promise<{ tenant: Tenant; slow: () => void }> {
  const slug = name.toLowerCase();
  const tenant = emulator.ctx.directory.addTenant({ displayName: name, domains: [`${slug}.onmicrosoft.com`, `${slug}.com`] });
  emulator.ctx.directory.addUsersUnchecked(tenant, Array.from({ length: USERS }, (_, i) => ({ userPrincipalName: `u${i}@${slug}.com` })));
  emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
  await new TenantRepository(store.db).activate({ id: tenant.id, displayName: name, domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
  const fault = emulator.ctx.faults.add({ target: 'graph', kind: 'delay', tenant: tenant.id, delayMs: 250 });
  return { tenant, slow: () => emulator.ctx.faults.remove(fault.id) };
}

function settings(database: Record<string, string>): Record<string, string> {
  return {
    ...database,
    ...rosterSettingsFor(emulator, join(tmp, 'ca.pem')),
    SYNC_TICK_SECONDS: '1',
    SHUTDOWN_TIMEOUT_SECONDS: '60',
    LOG_LEVEL: 'info',
  };
}

/** Waits (on the database, not the clock) until the tenant's run has committed a few pages. */
async function pagesCommitted(store: Store, tenantId: string, roster: RosterProcess): Promise<void> {
  for (let waited = 0; ; waited += 100) {
    const run = await store.db.selectFrom('sync_runs').select(['pages', 'status']).where('tenant_id', '=', tenantId).executeTakeFirst();
    if (run && run.pages >= 2) return;
    if (waited > 120_000 || roster.child.exitCode !== null) assert.fail(`the sync never got going: ${JSON.stringify(run)}\n${roster.err().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Sends SIGTERM (or Ctrl+C's SIGINT) mid-sync and checks the graceful stop: exit 0, the run
 * recorded as stopped part-way, the lease free at once, and a new
 * `roster sync` that starts at once and leaves the copy equal to the directory.
 */
async function stopMidSync(args: string[], store: Store, database: Record<string, string>, name: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const { tenant, slow } = await slowTenant(store, name);
  const env = settings(database);
  const roster = spawnRoster(args, env);
  await pagesCommitted(store, tenant.id, roster);
  roster.child.kill(signal);
  assert.equal(await roster.exited, 0, roster.err().slice(-3000));
  assert.match(roster.err(), new RegExp(`${signal}: roster ${args[0]} is stopping`));

  const runs = await store.db.selectFrom('sync_runs').selectAll().where('tenant_id', '=', tenant.id).execute();
  assert.equal(runs.length, 1);
  assert.equal(runs[0]!.status, 'failed', 'a stopped run is closed, so nothing shows it as running');
  assert.equal(runs[0]!.error, STOPPED_REASON);
  assert.ok(runs[0]!.pages >= 2 && runs[0]!.listed < USERS, `stopped part-way: ${runs[0]!.pages} pages, ${runs[0]!.listed} users`);
  const state = await store.db.selectFrom('sync_state').select(['lock_owner', 'lock_expires_at', 'next_link']).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
  assert.deepEqual([state.lock_owner, state.lock_expires_at], [null, null], 'the lease is released, not left to expire');
  assert.ok(state.next_link, 'the cursor of the last committed page is kept');

  slow();
  const next = await runRoster(['sync', '--tenant', tenant.id], env);
  assert.equal(next.code, 0, next.stdout + next.stderr);
  assert.match(next.stdout, new RegExp(`${name}: full sync succeeded`));
  const resumed = await store.db.selectFrom('sync_runs').select(['id', 'status']).where('tenant_id', '=', tenant.id).execute();
  assert.deepEqual(resumed.map((r) => [r.id, r.status]), [[runs[0]!.id, 'succeeded']], 'the next run resumed the stopped one');
  await assertMirrors(store, tenant);
}

describe('graceful shutdown mid-sync of 20,000 users', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`roster sync on SQLite: ${signal} stops after the page in hand, exits 0 and frees the lease; the next sync resumes and mirrors the directory`, async () => {
      const dataDir = join(tmp, `sqlite-${signal}`);
      const store = await openStore({ engine: 'sqlite', path: join(dataDir, 'roster.db') });
      try {
        await migrateToLatest(store);
        await stopMidSync(['sync'], store, { DATA_DIR: dataDir }, `Sqlite${signal}`, signal);
      } finally {
        await store.close();
      }
    });
  }

  it('roster sync on SQLite: a stop that cannot finish (the file locked by another process) exits 1 once SHUTDOWN_TIMEOUT_SECONDS has passed, saying so', async () => {
    const dataDir = join(tmp, 'sqlite-bound');
    const path = join(dataDir, 'roster.db');
    const store = await openStore({ engine: 'sqlite', path });
    await migrateToLatest(store);
    const { tenant, slow } = await slowTenant(store, 'Bounded');
    try {
      const roster = spawnRoster(['sync'], { ...settings({ DATA_DIR: dataDir }), SHUTDOWN_TIMEOUT_SECONDS: '1' });
      await pagesCommitted(store, tenant.id, roster);
      // Every write of the stop (the page in hand, the run's record, the lease) waits on this lock.
      const holder = new DatabaseSync(path);
      holder.exec('BEGIN IMMEDIATE');
      try {
        roster.child.kill('SIGTERM');
        assert.equal(await roster.exited, 1, roster.err().slice(-3000));
      } finally {
        holder.exec('ROLLBACK');
        holder.close();
      }
      assert.match(roster.err(), /roster sync did not stop within 1 s \(SHUTDOWN_TIMEOUT_SECONDS\); exiting/);
    } finally {
      slow();
      await store.close();
    }
  });

  for (const command of ['serve', 'worker'] as const) {
    it(`roster ${command} on PostgreSQL: SIGTERM stops the queued sync after the page in hand, exits 0 and frees the lease; the next sync resumes and mirrors the directory`, async () => {
      const db: TestStore = await openTestStore('postgres');
      try {
        await stopMidSync([command], db.store, { DATABASE_URL: db.target, PORT: String(await freePort()) }, `Pg${command}`);
      } finally {
        await db.drop();
      }
    });
  }
});
