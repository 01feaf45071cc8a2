import assert from 'node:assert/strict';
import { before, beforeEach, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { GraphReader } from '../../src/directory/graph-reader.ts';
import { DirectorySync, STOPPED_REASON } from '../../src/directory/sync.ts';
import { LOCK_LEASE_MS } from '../../src/directory/tenant-lock.ts';
import type { Tenant } from '../../src/emulator/model.ts';
import type { Store } from '../../src/store/database.ts';
import type { TestEmulator } from '../helpers/emulator.ts';
import type { EmulatorConnection } from '../helpers/entra.ts';
import { addSignedUpTenant, assertMirrors, useSyncTestbed } from '../helpers/mirror.ts';
import { ENGINES, storeDyingAfterCommit, type TestStore } from '../helpers/stores.ts';

const USERS = 2500;

/** Polls a condition the test waits for (never deciding the outcome by the time waited). */
async function until(condition: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 10_000; !condition() && Date.now() < deadline; ) await delay(10);
}
/** Pages of 999: 2,500 users make three. */
const PAGES = 3;

for (const engine of ENGINES) {
  describe(`a sync interrupted between pages resumes exactly where it stopped (${engine})`, () => {
    let emulator: TestEmulator;
    let connection: EmulatorConnection;
    let db: TestStore;
    let tenant: Tenant;

    function makeSync(options: { store?: Store; reader?: GraphReader; now?: () => number } = {}): DirectorySync {
      return new DirectorySync({
        store: options.store ?? db.store,
        entra: connection.app(),
        reader: options.reader ?? new GraphReader({ http: connection.http, maxAttempts: 2 }),
        graphBaseUrl: connection.graphBaseUrl,
        pageSize: 999,
        consentGraceMs: 0,
        ...(options.now ? { now: options.now } : {}),
      });
    }

    const state = () => db.store.db.selectFrom('sync_state').selectAll().where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
    const listingRequests = () => emulator.ctx.requestLog.entries({ tenant: tenant.id }).filter((e) => e.route.includes('/v1.0/users/delta')).length;

    const bed = useSyncTestbed(engine);
    before(() => ({ emulator, connection, db } = bed));

    beforeEach(async () => {
      tenant = await addSignedUpTenant(emulator, db.store, USERS, (i, domain) => ({ userPrincipalName: `user${i}@${domain}`, displayName: `User ${i}`, department: i % 2 ? 'R&D' : null }));
    });

    it('a stop signal mid-listing commits the page in hand, records the stop, frees the tenant at once; the next run completes the round', async () => {
      const stop = new AbortController();
      const stopped = await makeSync().run(tenant.id, { signal: stop.signal, onProgress: (p) => p.pages === 1 && stop.abort() });
      assert.deepEqual([stopped.status, stopped.error, stopped.pages, stopped.created], ['failed', STOPPED_REASON, 1, 999]);
      const midway = await state();
      assert.equal(midway.lock_owner, null, 'the lease is released at once, not left to lapse');
      assert.ok(midway.next_link, 'the cursor of the next page is kept');
      assert.equal(midway.run_id, stopped.id);
      assert.equal(midway.health, 'ok', 'a shutdown is no failure of the tenant');

      // Another process (its own lock owner) takes the tenant over without waiting.
      const resumed = await makeSync().run(tenant.id);
      assert.equal(resumed.id, stopped.id, 'the stopped run is resumed, not started over');
      assert.deepEqual([resumed.status, resumed.error, resumed.pages, resumed.listed, resumed.created], ['succeeded', null, PAGES, USERS, USERS]);
      await assertMirrors(db.store, tenant);
    });

    it('a stop signal before the run starts is refused without touching the tenant', async () => {
      const stop = new AbortController();
      stop.abort();
      await assert.rejects(makeSync().run(tenant.id, { signal: stop.signal }), (err: Error & { code?: string }) => err.code === 'sync_stopped');
      assert.equal((await db.store.db.selectFrom('sync_runs').select('id').where('tenant_id', '=', tenant.id).execute()).length, 0);
    });

    it('a stop while a page is still being read ends the run without waiting for it', async () => {
      const stall = emulator.ctx.faults.add({ target: 'graph', kind: 'delay', delayMs: 5000, tenant: tenant.id, count: 1 });
      try {
        const stop = new AbortController();
        const running = makeSync().run(tenant.id, { signal: stop.signal });
        await until(() => stall.hits === 1);
        assert.equal(stall.hits, 1, 'the first page is being read');
        stop.abort();
        const outcome = await running;
        assert.deepEqual([outcome.status, outcome.error, outcome.pages], ['failed', STOPPED_REASON, 0]);
        const first = emulator.ctx.requestLog.entries({ tenant: tenant.id }).find((e) => e.route.includes('/v1.0/users/delta'));
        assert.equal(first?.status, undefined, 'Graph has not answered the page the run was waiting for');
        assert.equal((await state()).lock_owner, null);
      } finally {
        emulator.ctx.faults.remove(stall.id);
      }
      const next = await makeSync().run(tenant.id);
      assert.deepEqual([next.status, next.pages, next.created], ['succeeded', PAGES, USERS]);
      await assertMirrors(db.store, tenant);
    });

    it('dying right after a page commits loses nothing: the page and its cursor committed together, so each page is read once', async () => {
      const dying = storeDyingAfterCommit(db.store, 1);
      // A dead process asks Graph for nothing more either.
      const reader = new GraphReader({ http: connection.http, maxAttempts: 2 });
      const getPage = reader.getPage.bind(reader);
      reader.getPage = (...args) => (dying.dead() ? Promise.reject(new Error('the process died')) : getPage(...args));
      await assert.rejects(makeSync({ store: dying.store, reader }).run(tenant.id), /died right after a commit/);
      const midway = await state();
      assert.ok(midway.run_id && midway.next_link, 'the first page left its cursor');

      // The dead run had asked for the first page and, while writing it, for the second: wait until Graph has answered both.
      await until(() => listingRequests() === 2 && emulator.ctx.requestLog.entries({ tenant: tenant.id }).every((e) => e.status !== undefined));
      assert.equal(listingRequests(), 2);
      // The dead process's lease lapses; a later process resumes from the saved cursor.
      emulator.ctx.requestLog.reset();
      const resumed = await makeSync({ now: () => Date.now() + LOCK_LEASE_MS + 60_000 }).run(tenant.id);
      assert.equal(listingRequests(), PAGES - 1, 'only the pages not committed yet are read again');
      assert.deepEqual([resumed.status, resumed.pages, resumed.listed, resumed.created], ['succeeded', PAGES, USERS, USERS], 'each page counted once');
      assert.equal(resumed.id, midway.run_id, 'the same run resumed');
      await assertMirrors(db.store, tenant);
    });
  });
}
