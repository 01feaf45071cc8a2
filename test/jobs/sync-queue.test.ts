import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PgBoss } from 'pg-boss';
import { pino } from 'pino';
import type { DirectorySync, SyncOutcome } from '../../src/directory/sync.ts';
import { reportQueueEvents, SYNC_QUEUE, SyncQueue } from '../../src/jobs/queue.ts';
import type { JobsRepository } from '../../src/store/jobs.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';

/** A sync engine that records when each tenant's run starts and holds the first run until told. */
function heldSync() {
  const started: { tenantId: string; at: number }[] = [];
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const sync = {
    async run(tenantId: string): Promise<SyncOutcome> {
      started.push({ tenantId, at: Date.now() });
      if (started.length === 1) await held;
      return { id: `run-${started.length}`, tenantId, kind: 'delta', status: 'succeeded', pages: 1, listed: 0, created: 0, updated: 0, deleted: 0, error: null, started_at: 0, finished_at: 0 } as unknown as SyncOutcome;
    },
  } as unknown as DirectorySync;
  return { sync, started, release };
}

const noPurge = { purgeExpired: async () => ({ authRequests: 0, sessions: 0, events: 0 }) } as unknown as JobsRepository;

async function waitFor(what: string, check: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** pg-boss's fetch skips the tenants its last check saw with an active job: that list must not outlive their runs by long. */
describe('the sync queue after a tenant was seen active', () => {
  let db: TestStore;
  const queues: SyncQueue[] = [];
  let inspector: PgBoss;

  before(async () => {
    db = await openTestStore('postgres');
  });
  after(async () => {
    for (const queue of queues) await queue.stop();
    await inspector?.stop({ graceful: false });
    await db.drop();
  });

  it('a tenant queued again once its run has ended is synced within seconds, not after pg-boss next rereads its queue (a minute)', async () => {
    const { sync, started, release } = heldSync();
    const first = await SyncQueue.start(db.target, pino({ level: 'silent' }));
    queues.push(first);
    await first.work({ sync, jobs: noPurge, concurrency: 1 });
    assert.equal(await first.enqueue('tenant-a'), true);
    await waitFor('the first run starts', () => started.length === 1, 10_000);

    // A check while the run is under way lists the tenant as active...
    inspector = new PgBoss({ connectionString: db.target, schema: 'pgboss', supervise: false, schedule: false });
    await inspector.start();
    await inspector.supervise(SYNC_QUEUE);
    const [queue] = await db.store.db.selectFrom('pgboss.queue' as never).select('singletons_active as active' as never).where('name' as never, '=', SYNC_QUEUE as never).execute() as unknown as { active: string[] | null }[];
    assert.deepEqual(queue?.active, ['tenant-a']);
    // ...and a process that reads the queue now keeps that list.
    const second = await SyncQueue.start(db.target, pino({ level: 'silent' }));
    queues.push(second);
    await second.work({ sync, jobs: noPurge, concurrency: 1 });

    // The run ends; only the second process takes work from here on.
    release();
    await first.stopWorking();
    assert.equal(await first.enqueue('tenant-a'), true);
    const queuedAt = Date.now();
    await waitFor('the tenant queued again is synced', () => started.length === 2, 30_000);
    assert.ok(started[1]!.at - queuedAt < 30_000);
  });
});

/** Every line a logger writes, parsed. */
function recordingLogger() {
  const lines: { level: number; msg: string; pgBoss?: Record<string, unknown> }[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

describe("pg-boss's warnings", () => {
  let db: TestStore;
  let boss: PgBoss;

  before(async () => {
    db = await openTestStore('postgres');
  });
  after(async () => {
    await boss?.stop({ graceful: false });
    await db.drop();
  });

  it('reach the log as warnings, each message once a minute, and a slow query without its parameters', async () => {
    const { logger, lines } = recordingLogger();
    // pg-boss's own switch that reports every query as slow, so the slow-query warning can be seen without a slow database.
    boss = new PgBoss({ connectionString: db.target, schema: 'pgboss', supervise: false, schedule: false, __test__warn_slow_query: true } as ConstructorParameters<typeof PgBoss>[0]);
    reportQueueEvents(boss, logger);
    await boss.start();
    await boss.createQueue('backlog', { warningQueueSize: 1 });
    await boss.send('backlog', { secret: 'job data' });
    await boss.send('backlog', { secret: 'job data' });
    // Twice: the second finds the same backlog, which is not logged again within the minute.
    await boss.supervise('backlog');
    await boss.supervise('backlog');

    const warnings = lines.filter((line) => line.msg.startsWith('job queue: '));
    assert.ok(warnings.every((line) => line.level === 40), 'logged at the warn level');
    const backlog = warnings.filter((line) => line.msg.includes('large queue backlog'));
    assert.equal(backlog.length, 1, backlog.map((line) => line.msg).join('\n'));
    assert.match(backlog[0]!.msg, /queue "backlog" has 2 jobs/);
    const slow = warnings.filter((line) => line.msg.includes('slow query'));
    assert.equal(slow.length, 1, 'many slow queries, one line');
    assert.equal(typeof slow[0]!.pgBoss?.sql, 'string');
    assert.ok(!JSON.stringify(lines).includes('job data'), "a query's parameters never reach the log");
  });
});
