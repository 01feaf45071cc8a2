import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pLimit from 'p-limit';
import { GraphReader } from '../../src/directory/graph-reader.ts';
import { DirectorySync } from '../../src/directory/sync.ts';
import type { Tenant } from '../../src/emulator/model.ts';
import { SyncScheduler } from '../../src/jobs/scheduler.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { createLogger } from '../../src/web/logger.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { connectToEmulator, type EmulatorConnection } from '../helpers/entra.ts';
import { demoApp } from '../helpers/fixtures.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';

describe('scheduling and shared throttling', () => {
  let emulator: TestEmulator;
  let connection: EmulatorConnection;
  let db: TestStore;
  const tenants: Tenant[] = [];

  async function addTenant(name: string, users: number): Promise<Tenant> {
    const slug = name.toLowerCase();
    const tenant = emulator.ctx.directory.addTenant({ displayName: name, domains: [`${slug}.onmicrosoft.com`, `${slug}.com`] });
    emulator.ctx.directory.addUsersUnchecked(tenant, Array.from({ length: users }, (_, i) => ({ userPrincipalName: `u${i}@${slug}.com` })));
    emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
    await new TenantRepository(db.store.db).activate({ id: tenant.id, displayName: name, domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
    tenants.push(tenant);
    return tenant;
  }

  function scheduler(concurrency: number, onWait?: () => void): SyncScheduler {
    const budget = pLimit(concurrency);
    const sync = new DirectorySync({
      store: db.store,
      entra: connection.app(),
      reader: new GraphReader({ http: connection.http, budget: (request) => budget(request), maxAttempts: 20, ...(onWait ? { onWait } : {}) }),
      graphBaseUrl: connection.graphBaseUrl,
      pageSize: 200,
    });
    return new SyncScheduler({ store: db.store, sync, logger: createLogger('silent'), intervalMinutes: 15, tickMs: 3_600_000 });
  }

  before(async () => {
    emulator = await startTestEmulator();
    connection = await connectToEmulator(emulator);
    db = await openTestStore('sqlite');
  });
  after(async () => {
    await db.drop();
    await connection.close();
    await emulator.close();
  });

  it('rules 18 and 19: every due tenant is synced once per interval; a failing tenant does not stop the others', async () => {
    const a = await addTenant('Alpha', 500);
    const b = await addTenant('Bravo', 300);
    const broken = await addTenant('Broken', 10);
    broken.servicePrincipals.get(emulator.ctx.demoAppId)!.appRoles = [];
    const s = scheduler(4);
    const started = await s.tick();
    assert.deepEqual(new Set(started), new Set([a.id, b.id, broken.id]));
    assert.deepEqual(await s.tick(), [], 'a running tenant is not started twice');
    await s.stop();
    const states = await db.store.db.selectFrom('sync_state').select(['tenant_id', 'health']).execute();
    const health = new Map(states.map((r) => [r.tenant_id, r.health]));
    assert.equal(health.get(a.id), 'ok');
    assert.equal(health.get(b.id), 'ok');
    assert.equal(health.get(broken.id), 'missing_permission');
    const again = scheduler(4);
    assert.deepEqual(await again.tick(), [], 'synced tenants are not due again within the interval');
    await again.stop();
  });

  it('sync now runs at once and joins a run already under way', async () => {
    const s = scheduler(4);
    const first = s.syncNow(tenants[0]!.id);
    const second = s.syncNow(tenants[0]!.id);
    assert.equal(first, second);
    const outcome = await first;
    assert.equal(outcome?.kind, 'delta');
    assert.equal(outcome?.status, 'succeeded');
    await s.stop();
  });

  it('rules 11 and 16: with 30% of Graph requests throttled, every sync completes and no tenant is asked again before its Retry-After', async () => {
    const c = await addTenant('Charlie', 2000);
    const d = await addTenant('Delta', 2000);
    emulator.ctx.requestLog.reset();
    const fault = emulator.ctx.faults.add({ target: 'graph', kind: 'throttle', retryAfter: '0.3', share: 0.3 });
    try {
      const s = scheduler(2);
      const outcomes = await Promise.all([s.syncNow(c.id, { full: true }), s.syncNow(d.id, { full: true })]);
      for (const outcome of outcomes) assert.equal(outcome?.status, 'succeeded');
      await s.stop();
    } finally {
      emulator.ctx.faults.remove(fault.id);
    }
    for (const tenant of [c, d]) {
      const log = emulator.ctx.requestLog.entries({ tenant: tenant.id }).filter((e) => e.route.includes('/v1.0/'));
      const throttled = log.filter((e) => e.status === 429).length;
      assert.ok(throttled > 0, 'some requests were throttled');
      for (let i = 1; i < log.length; i++) {
        if (log[i - 1]!.status === 429) assert.ok(log[i]!.atMs - log[i - 1]!.atMs >= 300, `${tenant.displayName}: request ${i} came ${log[i]!.atMs - log[i - 1]!.atMs} ms after a 429`);
      }
      const users = await db.store.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
      assert.equal(Number(users.n), 2000);
    }
  });

  it('rule 16: a tenant waiting out a long Retry-After does not hold up the others, even with one request slot', async () => {
    const slow = await addTenant('Echo', 100);
    const fast = await addTenant('Foxtrot', 100);
    emulator.ctx.faults.add({ target: 'graph', kind: 'throttle', tenant: slow.id, retryAfter: '2', count: 1 });
    // Only the slow tenant is throttled: its first wait is the moment it holds a Retry-After.
    const { promise: slowIsWaiting, resolve: waiting } = Promise.withResolvers<void>();
    const s = scheduler(1, waiting);
    const finished: string[] = [];
    const slowRun = s.syncNow(slow.id).then(() => finished.push('slow'));
    await slowIsWaiting;
    const fastRun = s.syncNow(fast.id).then(() => finished.push('fast'));
    await Promise.all([slowRun, fastRun]);
    assert.deepEqual(finished, ['fast', 'slow']);
    await s.stop();
  });
});
