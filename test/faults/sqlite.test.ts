import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { assertMirrors } from '../helpers/mirror.ts';
import { assertCleanLog, get, makeEveryTenantDue, spawnServe, startFaultRig, waitForRound, type FaultRig, type RosterProcess } from './rig.ts';

/** `roster serve` on SQLite when its database file cannot be written for a while. */
describe('roster serve on SQLite when the database file is locked', () => {
  let rig: FaultRig<null>;
  let serve: RosterProcess;
  let url: string;
  const logs = () => serve.output().slice(-3000);

  before(async () => {
    rig = await startFaultRig({ engine: 'sqlite', users: [400], env: { SYNC_TICK_SECONDS: '1', SYNC_INTERVAL_MINUTES: '60' } });
    ({ serve, url } = await spawnServe(rig));
    await waitForRound(rig, 0, logs);
  });
  after(async () => {
    await serve?.stop();
    await rig?.close();
  });

  it('another process holding the write lock: writes wait, then answer 503 in words; nothing crashes, and the next sync is exact', async () => {
    const [tenant] = rig.tenants;
    rig.emulator.ctx.directory.addUser(tenant!, { userPrincipalName: `locked@${tenant!.defaultDomain}`, displayName: 'Locked Out' });
    const since = await makeEveryTenantDue(rig);
    const holder = new DatabaseSync(rig.db.target);
    holder.exec('BEGIN IMMEDIATE');
    try {
      // A sign-in stores its request: a write, which waits for the lock and then gives up.
      const page = await get(`${url}/signin`);
      assert.equal(page.status, 503, page.body.slice(0, 400));
      assert.match(page.body, /database/i);
      assert.match(page.body, /try again/i);
      assert.ok(serve.alive(), logs());
    } finally {
      holder.exec('COMMIT');
      holder.close();
    }
    const signin = await get(`${url}/signin`);
    assert.equal(signin.status, 303, signin.body.slice(0, 400));
    await waitForRound(rig, since, logs);
    await assertMirrors(rig.db.store, tenant!);
    assert.ok(serve.alive(), logs());
    assert.match(serve.output(), /locked by another process/);
    assertCleanLog(serve.output(), rig.env.DATABASE_URL);
  });

  it('a full disk', (t) => {
    const reason = 'a tiny filesystem to fill cannot be mounted here without privileges';
    process.stdout.write(`# skipped: ${reason}\n`);
    t.skip(reason);
  });
});
