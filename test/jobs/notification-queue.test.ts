import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { SYNC_QUEUE, SyncQueue } from '../../src/jobs/queue.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';

/** On PostgreSQL a notification's round is a deferred pg-boss job: the one-queued-job-per-tenant policy coalesces a burst across processes. */
describe('notification rounds on the PostgreSQL queue', () => {
  let db: TestStore;
  let queues: SyncQueue[];

  before(async () => {
    db = await openTestStore('postgres');
    // Two processes' queues over one database.
    queues = [await SyncQueue.start(db.target, pino({ level: 'silent' })), await SyncQueue.start(db.target, pino({ level: 'silent' }))];
  });
  after(async () => {
    for (const queue of queues) await queue.stop();
    await db.drop();
  });

  test('rule 3: 1,000 wishes for one tenant from two processes queue one round; another tenant gets its own', async () => {
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => queues[i % 2]!.enqueue('tenant-a', { startAfterSeconds: 1 })));
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal(await queues[0]!.enqueue('tenant-b', { startAfterSeconds: 1 }), true);
    const jobs = await db.store.db
      .selectFrom('pgboss.job' as never)
      .select(['singleton_key as key', 'start_after as startAfter', 'created_on as createdOn'] as never)
      // Only the sync queue: pg-boss's own schedule may have queued the purge job meanwhile.
      .where('name' as never, '=', SYNC_QUEUE as never)
      .execute() as unknown as { key: string; startAfter: Date; createdOn: Date }[];
    assert.deepEqual(jobs.map((j) => j.key).sort(), ['tenant-a', 'tenant-b']);
    for (const job of jobs) assert.ok(job.startAfter.getTime() > job.createdOn.getTime(), 'deferred, so the rest of the burst joins it');
  });
});
