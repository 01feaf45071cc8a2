import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { DirectorySync } from '../../src/directory/sync.ts';
import { PURGE_QUEUE, SyncQueue } from '../../src/jobs/queue.ts';
import { SyncScheduler } from '../../src/jobs/scheduler.ts';
import { AuthRequestRepository } from '../../src/store/auth-requests.ts';
import { JobsRepository } from '../../src/store/jobs.ts';
import { SessionRepository } from '../../src/store/sessions.ts';
import { createLogger } from '../../src/web/logger.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const MINUTE = 60_000;
const NOW = Date.UTC(2026, 0, 15, 12);
const TENANT = '11111111-2222-4333-8444-555555555555';

/** Two sign-in requests and three sessions around `NOW`: one of each kind still live, the rest expired. */
async function seed(db: TestStore): Promise<void> {
  const requests = new AuthRequestRepository(db.store.db, 10 * MINUTE);
  const request = { kind: 'signin' as const, browserBinding: 'b'.repeat(43), nonce: 'n', codeVerifier: 'v', returnTo: null, context: null };
  await requests.create({ ...request, nonce: 'expired' }, NOW - 11 * MINUTE);
  await requests.create({ ...request, nonce: 'live' }, NOW - MINUTE);
  const sessions = new SessionRepository(db.store.db, { idleMs: 60 * MINUTE, absoluteMs: 12 * 60 * MINUTE });
  await sessions.create(TENANT, 'past-absolute-end', NOW - 13 * 60 * MINUTE);
  await sessions.create(TENANT, 'idle-too-long', NOW - 61 * MINUTE);
  await sessions.create(TENANT, 'live', NOW - 5 * MINUTE);
}

async function remaining(db: TestStore): Promise<{ requests: string[]; sessions: string[] }> {
  const requests = await db.store.db.selectFrom('auth_requests').select('nonce').execute();
  const sessions = await db.store.db.selectFrom('sessions').select('user_id').execute();
  return { requests: requests.map((r) => r.nonce), sessions: sessions.map((s) => s.user_id) };
}

const LIVE_ONLY = { requests: ['live'], sessions: ['live'] };
const stores: TestStore[] = [];
after(async () => {
  for (const db of stores) await db.drop();
});

describe('purging expired sign-in requests and sessions', () => {
  it('hardening 9: expired rows are gone after a tick, live ones stay (SQLite: the scheduler purges)', async () => {
    const db = await openTestStore('sqlite');
    stores.push(db);
    await seed(db);
    assert.equal((await remaining(db)).sessions.length, 3);
    const scheduler = new SyncScheduler({ store: db.store, sync: {} as DirectorySync, logger: createLogger('silent'), intervalMinutes: 15, sessionIdleMinutes: 60, now: () => NOW });
    await scheduler.tick();
    assert.deepEqual(await remaining(db), LIVE_ONLY);
    await scheduler.stop();
  });

  it('hardening 9: expired rows are gone after the scheduled purge job, live ones stay (PostgreSQL: one worker per minute through pg-boss)', async () => {
    const db = await openTestStore('postgres');
    stores.push(db);
    await seed(db);
    const queue = await SyncQueue.start(db.target, createLogger('silent'));
    try {
      const schedules = await sql<{ name: string; cron: string }>`select name, cron from pgboss.schedule`.execute(db.store.db);
      assert.deepEqual(schedules.rows.map((r) => [r.name, r.cron]), [[PURGE_QUEUE, '* * * * *']]);
      const scheduler = new SyncScheduler({ store: db.store, sync: {} as DirectorySync, logger: createLogger('silent'), intervalMinutes: 15, queue, now: () => NOW });
      await scheduler.tick();
      assert.equal((await remaining(db)).sessions.length, 3, 'with a queue, ticks leave the purge to the scheduled job');
      await queue.work({ sync: {} as DirectorySync, jobs: new JobsRepository(db.store, { sessionIdleMs: 60 * MINUTE }), concurrency: 1, now: () => NOW });
      await queue.enqueuePurge();
      for (let waited = 0; (await remaining(db)).sessions.length !== 1; waited += 100) {
        if (waited > 30_000) assert.fail(`the purge job never ran: ${JSON.stringify(await remaining(db))}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.deepEqual(await remaining(db), LIVE_ONLY);
    } finally {
      await queue.stop();
    }
  });

  for (const engine of ENGINES) {
    it(`hardening 11: the purge keeps a session used within the idle window, whatever last_seen_at lags behind (${engine})`, async () => {
      const db = await openTestStore(engine);
      stores.push(db);
      const limits = { idleMs: 60 * MINUTE, absoluteMs: 12 * 60 * MINUTE };
      const sessions = new SessionRepository(db.store.db, limits);
      const jobs = new JobsRepository(db.store, { sessionIdleMs: limits.idleMs });
      const { id } = await sessions.create(TENANT, 'active', NOW);
      // Used 59 s after sign-in: within last_seen_at's precision, so nothing is written; then idle for just under the window.
      assert.ok(await sessions.resume(id, NOW + 59_000));
      const lastUse = NOW + 59_000;
      assert.equal((await jobs.purgeExpired(lastUse + limits.idleMs - 1000)).sessions, 0, 'a purge inside the idle window ended a session in use');
      assert.ok(await sessions.resume(id, lastUse + limits.idleMs - 1000), 'the session survives the purge');
      // Idle for longer than the window and its minute of precision: the purge takes it.
      assert.equal((await jobs.purgeExpired(lastUse + limits.idleMs - 1000 + limits.idleMs + MINUTE)).sessions, 1);
    });
  }
});
