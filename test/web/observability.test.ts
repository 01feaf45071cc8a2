import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { DEFAULT_MIGRATION_LOCK_TABLE, DEFAULT_MIGRATION_TABLE, Migrator, NO_MIGRATIONS, sql } from 'kysely';
import { migrateToLatest, openStore, type Engine, type Store } from '../../src/store/database.ts';
import { latestMigration, migrationProvider } from '../../src/store/migrations.ts';
import { MetricsRepository } from '../../src/store/metrics.ts';
import { registerObservability } from '../../src/web/observability.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);
const HOUR = 3_600_000;
const TOKEN = 'metrics-token-0123456789abcdef';

type Labels = Record<string, string>;
interface Sample { name: string; labels: Labels; value: number }

/** Parses the Prometheus text format into samples, so assertions do not depend on label order. */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `unparsable metrics line: ${line}`);
    const labels: Labels = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the one sample with exactly these labels, or undefined. */
function sample(samples: Sample[], name: string, labels: Labels = {}): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  const found = samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
  assert.ok(found.length <= 1, `${name} ${want} appears ${found.length} times`);
  return found[0]?.value;
}

async function buildApp(store: Store, metricsToken?: string): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  // Registered before the plugin, as buildWebApp's routes will be: the timing hook must still see it.
  app.get('/things/:id', async (request) => ({ id: (request.params as { id: string }).id }));
  await registerObservability(app, { metrics: new MetricsRepository(store), metricsToken, now: () => NOW });
  app.get('/late', async () => 'registered after the plugin');
  await app.ready();
  return app;
}

async function scrape(app: FastifyInstance): Promise<Sample[]> {
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  assert.equal(res.statusCode, 200, res.body);
  return parseMetrics(res.body);
}

function tenantRow(id: string, state: 'active' | 'disconnected') {
  return { id, display_name: id, domains: '[]', state, state_reason: null, signup_context: null, signed_up_by_oid: null, created_at: NOW - 30 * 24 * HOUR, updated_at: NOW };
}

function userRow(tenantId: string, id: string, deletedAt: number | null = null) {
  return { tenant_id: tenantId, id, display_name: id, account_enabled: 1, deleted_at: deletedAt, roster_role: 'member' as const, updated_at: NOW };
}

function runRow(id: string, tenantId: string, kind: 'full' | 'delta', status: 'succeeded' | 'failed', startedAt: number) {
  return { id, tenant_id: tenantId, kind, status, pages: 1, created: 0, updated: 0, deleted: 0, error: status === 'failed' ? 'boom' : null, started_at: startedAt, finished_at: startedAt + 1000 };
}

function syncStateRow(tenantId: string, health: 'ok' | 'failing' | 'disconnected', lastSuccessAt: number | null) {
  return { tenant_id: tenantId, health, last_success_at: lastSuccessAt, updated_at: NOW };
}

/** A second connection to the same database, for tests that break it without touching the shared one. */
function openSameDatabase(engine: Engine, target: string): Promise<Store> {
  return engine === 'sqlite' ? openStore({ engine, path: target }) : openStore({ engine, url: target });
}

/**
 * pg's Pool.end() resolves before its clients have hung up; dropping the database
 * `with (force)` then kills those backends and the dying clients throw uncaught.
 * Several scrape queries run in parallel here, so wait for the hang-ups first.
 */
for (const engine of ENGINES) {
  describe(`observability on ${engine}`, () => {
    let test: TestStore;
    let app: FastifyInstance;

    before(async () => {
      test = await openTestStore(engine);
      app = await buildApp(test.store);
    });
    after(async () => {
      await app.close();
      await test.drop();
    });

    it('/healthz answers ok without setting cookies', async () => {
      const res = await app.inject({ method: 'GET', url: '/healthz' });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json(), { status: 'ok' });
      assert.equal(res.headers['set-cookie'], undefined);
    });

    it('/readyz is ready on a migrated database', async () => {
      const res = await app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { status: 'ready' });
      assert.equal(res.headers['set-cookie'], undefined);
    });

    it('/metrics reports tenants, users, runs and sync health from the database', async () => {
      const db = test.store.db;
      await db.insertInto('tenants').values([tenantRow('t1', 'active'), tenantRow('t2', 'active'), tenantRow('t3', 'disconnected')]).execute();
      await db
        .insertInto('users')
        .values([userRow('t1', 'u1'), userRow('t1', 'u2'), userRow('t1', 'u3', NOW - HOUR), userRow('t2', 'u4'), userRow('t3', 'u5')])
        .execute();
      await db
        .insertInto('sync_runs')
        .values([
          runRow('r1', 't1', 'full', 'succeeded', NOW - 3 * HOUR),
          runRow('r2', 't2', 'full', 'succeeded', NOW - 3 * HOUR),
          runRow('r3', 't1', 'delta', 'failed', NOW - HOUR),
        ])
        .execute();
      await db
        .insertInto('sync_state')
        .values([syncStateRow('t1', 'ok', NOW - 10 * 60_000), syncStateRow('t2', 'failing', NOW - 2 * HOUR), syncStateRow('t3', 'disconnected', NOW - 30 * 24 * HOUR)])
        .execute();

      const res = await app.inject({ method: 'GET', url: '/metrics' });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      assert.equal(res.headers['set-cookie'], undefined);
      assert.match(res.body, /^roster_tenants\{state="active"\} 2$/m);
      assert.match(res.body, /^roster_directory_users 4$/m);
      assert.match(res.body, /^roster_sync_runs\{kind="delta",status="failed"\} 1$/m);

      const m = parseMetrics(res.body);
      assert.equal(sample(m, 'roster_tenants', { state: 'active' }), 2);
      assert.equal(sample(m, 'roster_tenants', { state: 'disconnected' }), 1);
      assert.equal(sample(m, 'roster_tenants', { state: 'pending' }), 0);
      assert.equal(sample(m, 'roster_directory_users'), 4);
      assert.equal(sample(m, 'roster_sync_runs', { kind: 'full', status: 'succeeded' }), 2);
      assert.equal(sample(m, 'roster_sync_runs', { kind: 'delta', status: 'failed' }), 1);
      assert.equal(sample(m, 'roster_sync_runs', { kind: 'full', status: 'failed' }), 0);
      assert.equal(sample(m, 'roster_sync_failures_recent'), 1);
      assert.equal(sample(m, 'roster_tenants_sync_health', { health: 'ok' }), 1);
      assert.equal(sample(m, 'roster_tenants_sync_health', { health: 'failing' }), 1);
      assert.equal(sample(m, 'roster_tenants_sync_health', { health: 'disconnected' }), 1);
      // The disconnected tenant's month-old success does not count: only active tenants do.
      assert.equal(sample(m, 'roster_sync_last_success_age_seconds'), 2 * 3600);
    });

    it('/metrics figures follow the database at every scrape', async () => {
      const db = test.store.db;
      await db.insertInto('sync_runs').values(runRow('r4', 't2', 'full', 'failed', NOW - 25 * HOUR)).execute();
      await db.deleteFrom('tenants').where('id', '=', 't3').execute();
      await db.updateTable('sync_state').set({ health: 'ok', last_success_at: NOW - 60_000 }).where('tenant_id', '=', 't2').execute();

      const m = await scrape(app);
      assert.equal(sample(m, 'roster_tenants', { state: 'disconnected' }), 0);
      assert.equal(sample(m, 'roster_directory_users'), 3);
      assert.equal(sample(m, 'roster_sync_runs', { kind: 'full', status: 'failed' }), 1);
      // Started 25 hours ago: outside the recent window.
      assert.equal(sample(m, 'roster_sync_failures_recent'), 1);
      assert.equal(sample(m, 'roster_tenants_sync_health', { health: 'ok' }), 2);
      assert.equal(sample(m, 'roster_tenants_sync_health', { health: 'failing' }), 0);
      assert.equal(sample(m, 'roster_sync_last_success_age_seconds'), 10 * 60);
    });

    it('labels outside the known values disappear once their rows are gone', async () => {
      const db = test.store.db;
      // No check constraint stops a future state; it must still show, and go when no row has it.
      await db.insertInto('tenants').values({ ...tenantRow('t9', 'active'), state: 'archived' as 'active' }).execute();
      assert.equal(sample(await scrape(app), 'roster_tenants', { state: 'archived' }), 1);
      await db.deleteFrom('tenants').where('id', '=', 't9').execute();
      assert.equal(sample(await scrape(app), 'roster_tenants', { state: 'archived' }), undefined);
    });

    it('request durations are labelled by route pattern, never the raw URL', async () => {
      for (const id of ['abc123', 'xyz789']) assert.equal((await app.inject({ method: 'GET', url: `/things/${id}` })).statusCode, 200);
      assert.equal((await app.inject({ method: 'GET', url: '/no/such/page-secret' })).statusCode, 404);
      assert.equal((await app.inject({ method: 'GET', url: '/late' })).statusCode, 200);
      await scrape(app);

      const res = await app.inject({ method: 'GET', url: '/metrics' });
      const m = parseMetrics(res.body);
      const count = 'roster_http_request_duration_seconds_count';
      assert.equal(sample(m, count, { method: 'GET', route: '/things/:id', status_code: '200' }), 2);
      assert.equal(sample(m, count, { method: 'GET', route: 'unmatched', status_code: '404' }), 1);
      assert.equal(sample(m, count, { method: 'GET', route: '/late', status_code: '200' }), 1);
      assert.equal(sample(m, count, { method: 'GET', route: '/healthz', status_code: '200' }), 1);
      assert.ok((sample(m, 'roster_http_request_duration_seconds_bucket', { method: 'GET', route: '/things/:id', status_code: '200', le: '+Inf' }) ?? 0) === 2);
      assert.doesNotMatch(res.body, /abc123|xyz789|page-secret/);
      assert.ok(!m.some((s) => s.labels.route === '/metrics'), '/metrics must not time itself');
    });

    it('/metrics includes the default process metrics under the roster_ prefix', async () => {
      const m = await scrape(app);
      assert.ok(sample(m, 'roster_process_cpu_user_seconds_total') !== undefined);
      assert.ok(m.some((s) => s.name === 'roster_nodejs_heap_size_used_bytes'));
      assert.ok(!m.some((s) => s.name === 'process_cpu_user_seconds_total'));
    });

    it('with a token, /metrics needs it as a bearer token', async () => {
      // A second app in the same process also checks that registries do not collide.
      const guarded = await buildApp(test.store, TOKEN);
      try {
        for (const authorization of [undefined, 'Bearer wrong', `Bearer ${TOKEN}x`, `Basic ${TOKEN}`, TOKEN, 'Bearer ']) {
          const res = await guarded.inject({ method: 'GET', url: '/metrics', headers: authorization === undefined ? {} : { authorization } });
          assert.equal(res.statusCode, 401, `authorization: ${authorization}`);
          assert.match(String(res.headers['www-authenticate']), /^Bearer /);
          assert.doesNotMatch(res.body, /roster_/);
        }
        const ok = await guarded.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
        assert.equal(ok.statusCode, 200);
        assert.equal(sample(parseMetrics(ok.body), 'roster_tenants', { state: 'active' }), 2);
        // The probes stay open.
        assert.equal((await guarded.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
        assert.equal((await guarded.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
      } finally {
        await guarded.close();
      }
    });

    it('an empty token is refused rather than taken as "no token"', async () => {
      await assert.rejects(registerObservability(Fastify(), { metrics: new MetricsRepository(test.store), metricsToken: '' }), /must not be empty/);
    });

    it('/readyz is not ready until every migration is applied', async () => {
      const other = await openSameDatabase(engine, test.target);
      const probe = await buildApp(other);
      try {
        // Take the shared database back to nothing, as if never migrated.
        const migrator = new Migrator({ db: other.db, provider: migrationProvider });
        const down = await migrator.migrateTo(NO_MIGRATIONS);
        assert.equal(down.error, undefined);
        await sql`drop table ${sql.table(DEFAULT_MIGRATION_TABLE)}`.execute(other.db);
        await sql`drop table ${sql.table(DEFAULT_MIGRATION_LOCK_TABLE)}`.execute(other.db);

        let res = await probe.inject({ method: 'GET', url: '/readyz' });
        assert.equal(res.statusCode, 503);
        assert.deepEqual(res.json(), { status: 'not ready', reason: 'the database has not been migrated' });
        assert.equal((await probe.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
        // The database figures go, the process ones stay: one broken query does not fail the scrape.
        const m = await scrape(probe);
        assert.equal(m.filter((s) => s.name === 'roster_tenants').length, 0);
        assert.ok(sample(m, 'roster_process_cpu_user_seconds_total') !== undefined);

        const first = Object.keys(await migrationProvider.getMigrations())[0]!;
        assert.notEqual(first, latestMigration);
        assert.equal((await migrator.migrateTo(first)).error, undefined);
        res = await probe.inject({ method: 'GET', url: '/readyz' });
        assert.equal(res.statusCode, 503);
        assert.equal(res.json().reason, `the database schema is out of date (migration ${latestMigration} has not been applied)`);

        await migrateToLatest(other);
        res = await probe.inject({ method: 'GET', url: '/readyz' });
        assert.equal(res.statusCode, 200);
      } finally {
        await probe.close();
        await other.close();
      }
    });

    it('/readyz is not ready when the database cannot be reached, and says so without details', async () => {
      const other = await openSameDatabase(engine, test.target);
      const probe = await buildApp(other);
      try {
        // Used once first: Kysely's destroy() does nothing to a driver that never ran a query.
        assert.equal((await probe.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
        await other.close();
        const res = await probe.inject({ method: 'GET', url: '/readyz' });
        assert.equal(res.statusCode, 503);
        assert.deepEqual(res.json(), { status: 'not ready', reason: 'the database is not reachable' });
        assert.ok(!res.body.includes(test.target) && !res.body.includes(other.location));
        assert.equal((await probe.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
      } finally {
        await probe.close();
      }
    });
  });
}
