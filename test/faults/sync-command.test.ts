import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertMirrors } from '../helpers/mirror.ts';
import { assertCleanLog, spawnRoster, startFaultRig, waitUntil, type FaultRig } from './rig.ts';

/** `roster sync` when PostgreSQL is cut away in the middle of a listing. */
describe('roster sync when PostgreSQL goes away mid-listing', () => {
  let rig: FaultRig;

  before(async () => {
    rig = await startFaultRig({ users: [5000] });
    await rig.emulator.control('POST', '/faults', { target: 'graph', kind: 'delay', delayMs: 100, tenant: rig.tenants[0]!.id });
  });
  after(async () => {
    await rig?.close();
  });

  it('exits 1 with the reason once the failure is recorded, and the next run syncs exactly', async () => {
    const tenant = rig.tenants[0]!;
    const sync = spawnRoster(['sync', '--tenant', tenant.id], rig.env);
    await waitUntil('the listing is two pages in', () => /page 2,/.test(sync.output()), { ms: 60_000, context: sync.output });
    rig.proxy.cut({ refuseMs: 3000 });
    const code = await sync.exited;
    assert.equal(code, 1, sync.output());
    assert.match(sync.output(), /full sync failed: .*the database connection was lost/);
    assertCleanLog(sync.output(), rig.env.DATABASE_URL!);
    const run = await rig.db.store.db.selectFrom('sync_runs').select(['status', 'error']).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
    assert.equal(run.status, 'failed');
    assert.match(run.error ?? '', /database connection was lost/);

    const again = spawnRoster(['sync', '--tenant', tenant.id], rig.env);
    assert.equal(await again.exited, 0, again.output());
    await assertMirrors(rig.db.store, tenant);
    const state = await rig.db.store.db.selectFrom('sync_state').select(['health', 'lock_owner']).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
    assert.equal(state.health, 'ok');
    assert.equal(state.lock_owner, null);
  });
});
