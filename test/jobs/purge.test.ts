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
import { openTestStore, type TestStore } from '../helpers/stores.ts';

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
});
