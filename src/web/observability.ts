import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type GaugeConfiguration } from 'prom-client';
import type { MetricsRepository } from '../store/metrics.ts';
import { latestMigration } from '../store/migrations.ts';
import type { GraphSubscriptionsTable, SyncRunsTable, SyncStateTable, TenantsTable } from '../store/schema.ts';
import type { GraphSubscriptionRepository } from '../store/graph-subscriptions.ts';
import { DROP_REASONS, type NotificationCounters } from './graph-notifications.ts';

export interface ObservabilityOptions {
  /** The database's figures and readiness. */
  metrics: MetricsRepository;
  /** When set, `/metrics` asks for `Authorization: Bearer <token>`. */
  metricsToken?: string | null;
  now?: () => number;
  /** When NOTIFICATIONS is on: Graph change notifications received by this process, and the subscriptions' states. */
  notifications?: { counters: NotificationCounters; subscriptions: GraphSubscriptionRepository };
}

const METRICS_PATH = '/metrics';
/** Probes give up long before this; an answer that slow means "not ready". */
const READY_TIMEOUT_MS = 3000;
const RECENT_FAILURE_WINDOW_MS = 24 * 3_600_000;

// Known values are always exported (as 0 when none), so alerts and rates see a series instead of a gap.
// Written as records so that a value added to the schema fails the type check here until it is listed.
const TENANT_STATES = keysOf({ pending: 0, active: 0, disconnected: 0, suspended: 0, offboarded: 0 } satisfies Record<TenantsTable['state'], 0>);
const SYNC_HEALTHS = keysOf({ ok: 0, failing: 0, disconnected: 0, missing_permission: 0, held: 0 } satisfies Record<SyncStateTable['health'], 0>);
const RUN_KINDS = keysOf({ full: 0, delta: 0 } satisfies Record<SyncRunsTable['kind'], 0>);
const RUN_STATUSES = keysOf({ running: 0, succeeded: 0, failed: 0, held: 0 } satisfies Record<SyncRunsTable['status'], 0>);
const SUBSCRIPTION_STATES = keysOf({ creating: 0, active: 0, reauthorizing: 0, failing: 0 } satisfies Record<GraphSubscriptionsTable['state'], 0>);

function keysOf<K extends string>(record: Record<K, 0>): K[] {
  return Object.keys(record) as K[];
}

/**
 * `/healthz`, `/readyz` and `/metrics`. Hooks and routes go straight onto the
 * given instance (no encapsulation), so call it on the root app: the request
 * timing hook then sees every route, including ones registered earlier.
 */
export async function registerObservability(app: FastifyInstance, options: ObservabilityOptions): Promise<void> {
  const { metrics } = options;
  const now = options.now ?? Date.now;
  const token = options.metricsToken ?? null;
  if (token === '') throw new Error('metricsToken must not be empty; leave it unset to serve /metrics openly');
  const tokenDigest = token === null ? null : sha256(token);

  // One registry per app: several apps in one process must not share series.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'roster_' });

  const requestDuration = new Histogram({
    name: 'roster_http_request_duration_seconds',
    help: 'Time to answer HTTP requests, by route pattern.',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [registry],
  });

  const dbGauge = databaseGauges(registry, app.log);
  registerDirectoryMetrics(dbGauge, metrics, now);
  if (options.notifications) registerNotificationMetrics(registry, dbGauge, options.notifications.subscriptions, options.notifications.counters);

  app.addHook('onResponse', async (request, reply) => {
    const route = routePattern(request);
    if (route === METRICS_PATH) return;
    // elapsedTime starts when Fastify takes the request, before any onRequest hook (session lookup included).
    requestDuration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  app.addHook('onClose', async () => registry.clear());

  // Probes every few seconds would drown the request log.
  const quiet = { logLevel: 'warn' as const };

  app.get('/healthz', quiet, async (_request, reply) => {
    return reply.header('cache-control', 'no-store').send({ status: 'ok' });
  });

  app.get('/readyz', quiet, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    const reason = await notReadyReason(metrics, request);
    if (reason) return reply.code(503).send({ status: 'not ready', reason });
    return reply.send({ status: 'ready' });
  });

  app.get(METRICS_PATH, quiet, async (request, reply) => {
    reply.header('cache-control', 'no-store');
    if (tokenDigest && !presentsToken(request, tokenDigest)) {
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="metrics"')
        .type('text/plain; charset=utf-8')
        .send('Metrics need a bearer token.');
    }
    const body = await registry.metrics();
    return reply.type(registry.contentType).send(body);
  });
}

type DatabaseGauge = <L extends string>(config: GaugeConfiguration<L> & { collect: (this: Gauge<L>) => Promise<void> }) => void;

/** Gauges read from the database at scrape time, so runs made by other processes count too. */
function databaseGauges(registry: Registry, log: FastifyBaseLogger): DatabaseGauge {
  // A database outage must not fail the whole scrape: keep process and HTTP figures, drop the stale ones.
  return (config) => {
    const query = config.collect;
    new Gauge({
      ...config,
      registers: [registry],
      async collect() {
        try {
          await query.call(this);
        } catch (err) {
          this.reset();
          log.warn({ err, metric: config.name }, 'could not read a metric from the database');
        }
      },
    });
  };
}

/**
 * A gauge of counts by label: every known combination is exported (as 0 when
 * none). It queries first and only then resets and sets, so a concurrent
 * scrape never sees it half-filled.
 */
function countsGauge<L extends string>(
  dbGauge: DatabaseGauge,
  config: { name: string; help: string; labelNames: readonly L[]; known: Array<Record<L, string>>; read: () => Promise<Array<Record<L, string> & { n: number }>> },
): void {
  const { known, read, labelNames } = config;
  dbGauge({
    name: config.name,
    help: config.help,
    labelNames,
    async collect() {
      const rows = await read();
      this.reset();
      for (const labels of known) this.set(labels, 0);
      for (const row of rows) this.set(labelsOf(row, labelNames), row.n);
    },
  });
}

function labelsOf<L extends string>(row: Record<L, string>, names: readonly L[]): Record<L, string> {
  const labels = {} as Record<L, string>;
  for (const name of names) labels[name] = row[name];
  return labels;
}

function registerDirectoryMetrics(dbGauge: DatabaseGauge, metrics: MetricsRepository, now: () => number): void {
  countsGauge(dbGauge, { name: 'roster_tenants', help: 'Tenants, by state.', labelNames: ['state'], known: TENANT_STATES.map((state) => ({ state })), read: () => metrics.tenantsByState() });
  dbGauge({
    name: 'roster_directory_users',
    help: 'Directory users not soft-deleted, across all tenants.',
    async collect() {
      this.set(await metrics.presentUsers());
    },
  });
  countsGauge(dbGauge, {
    name: 'roster_sync_runs',
    help: 'Recorded directory sync runs, by kind and status.',
    labelNames: ['kind', 'status'],
    known: RUN_KINDS.flatMap((kind) => RUN_STATUSES.map((status) => ({ kind, status }))),
    read: () => metrics.runsByKindAndStatus(),
  });
  dbGauge({
    name: 'roster_sync_failures_recent',
    help: 'Directory sync runs that failed and started in the last 24 hours.',
    async collect() {
      this.set(await metrics.failedRunsSince(now() - RECENT_FAILURE_WINDOW_MS));
    },
  });
  countsGauge(dbGauge, { name: 'roster_tenants_sync_health', help: 'Tenants by directory sync health.', labelNames: ['health'], known: SYNC_HEALTHS.map((health) => ({ health })), read: () => metrics.tenantsByHealth() });
  dbGauge({
    name: 'roster_sync_last_success_age_seconds',
    help: 'Seconds since the oldest last successful sync among active tenants (0 when none has succeeded yet).',
    async collect() {
      // Tenants that never finished a sync are left out: there is no success to age.
      const oldest = await metrics.oldestLastSuccessOfActiveTenants();
      this.set(oldest === null ? 0 : Math.max(0, (now() - oldest) / 1000));
    },
  });
}

function registerNotificationMetrics(registry: Registry, dbGauge: DatabaseGauge, subscriptions: GraphSubscriptionRepository, counters: NotificationCounters): void {
  countsGauge(dbGauge, {
    name: 'roster_graph_subscriptions',
    help: 'Graph change-notification subscriptions, by state.',
    labelNames: ['state'],
    known: SUBSCRIPTION_STATES.map((state) => ({ state })),
    read: () => subscriptions.countByState(),
  });
  // Counted in this process, as Prometheus counters are: a scrape of every process sums them.
  new Counter({
    name: 'roster_graph_notifications_received_total',
    help: 'Items received at the Graph notification and lifecycle endpoints by this process, accepted or not.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(counters.received);
    },
  });
  new Counter({
    name: 'roster_graph_notifications_accepted_total',
    help: 'Graph change notifications that passed every check and scheduled a delta round.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(counters.accepted);
    },
  });
  new Counter({
    name: 'roster_graph_notifications_dropped_total',
    help: 'Graph notification items dropped, by reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const reason of DROP_REASONS) this.inc({ reason }, counters.dropped.get(reason) ?? 0);
    },
  });
}

/** What stops this process from serving, in words safe to show to anyone; null when ready. */
async function notReadyReason(metrics: MetricsRepository, request: FastifyRequest): Promise<string | null> {
  const check = async (): Promise<string | null> => {
    const readiness = await metrics.readiness();
    if (!readiness.reachable) {
      request.log.warn({ err: readiness.error }, 'readiness: database query failed');
      return 'the database is not reachable';
    }
    const { migrations } = readiness;
    if ('error' in migrations) {
      request.log.warn({ err: migrations.error }, 'readiness: migration records could not be read');
      return 'the database has not been migrated';
    }
    if (migrations.applied.length === 0) return 'the database has not been migrated';
    return migrations.pending.length === 0 ? null : `the database schema is out of date (migration ${latestMigration} has not been applied)`;
  };

  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`the database did not answer within ${READY_TIMEOUT_MS / 1000} seconds`), READY_TIMEOUT_MS);
  });
  try {
    return await Promise.race([check(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The route pattern, never the raw URL, so label cardinality stays bounded. */
function routePattern(request: FastifyRequest): string {
  return request.is404 ? 'unmatched' : (request.routeOptions.url ?? 'unmatched');
}

function presentsToken(request: FastifyRequest, expected: Buffer): boolean {
  const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(request.headers.authorization ?? '');
  if (!match) return false;
  // Equal-length digests make the comparison constant-time whatever the token length.
  return timingSafeEqual(sha256(match[1]!), expected);
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
