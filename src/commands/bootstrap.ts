import pLimit from 'p-limit';
import type { Logger } from 'pino';
import type { RosterConfig } from '../config/config.ts';
import { GraphReader } from '../directory/graph-reader.ts';
import { DeliveryWorker } from '../events/delivery.ts';
import { WebhookEndpoints } from '../events/endpoints.ts';
import { DirectorySync } from '../directory/sync.ts';
import { GraphSubscriptions } from '../directory/subscriptions.ts';
import { NotificationCounters } from '../web/graph-notifications.ts';
import { loadCertificateCredential, type AppCredentials } from '../identity/credentials.ts';
import { EntraApp } from '../identity/entra-app.ts';
import { OutboundHttp } from '../identity/http.ts';
import { IdTokenValidator } from '../identity/id-token.ts';
import { loadAuthorityMetadata, type AuthorityMetadata } from '../identity/metadata.ts';
import { SyncQueue } from '../jobs/queue.ts';
import { SyncScheduler } from '../jobs/scheduler.ts';
import { migrateToLatest, openStore, type Store } from '../store/database.ts';
import { JobsRepository } from '../store/jobs.ts';
import { repositoriesOf, type Repositories } from '../store/repositories.ts';
import { TenantLifecycle } from '../tenants/lifecycle.ts';
import { TenantOnboarding } from '../tenants/onboarding.ts';
import type { SyncControl } from '../web/context.ts';

/** Graph requests in flight at once, across all tenants (Graph throttles per app). */
const GRAPH_CONCURRENCY = 8;

/** Where Roster finds its identity provider: Entra ID from configuration, or the demo's emulator. */
export interface IdentityProvider {
  credentials: AppCredentials;
  authorityHost: URL;
  graphBaseUrl: URL;
  /** Only for the emulator: its local certificate authority, trusted for it alone. */
  trustedCaPem?: string;
  /** Reads the credentials again (the certificate file after a rotation). */
  reloadCredentials?: () => Promise<AppCredentials>;
}

export interface BootstrapOptions {
  provider: IdentityProvider;
  logger: Logger;
  /**
   * `scheduled`: the scheduler ticks and, on PostgreSQL, this process works the
   * pg-boss queue; `on-demand`: syncs run only when asked (`roster sync`, tests).
   */
  jobs: 'scheduled' | 'on-demand';
  /** An open, migrated store to use instead of `config.database` (tests); `close()` leaves it open. */
  store?: Store;
  now?: () => number;
  /** See `DirectorySyncOptions.consentGraceMs`. */
  consentGraceMs?: number;
  /** Called while a Graph request waits out throttling or a retry (for `roster sync`'s log). */
  onGraphWait?: (ms: number, reason: string) => void;
}

/** Everything a command needs, built once; `close()` tears it down in order. */
export interface Roster {
  config: RosterConfig;
  logger: Logger;
  store: Store;
  repositories: Repositories;
  /** The schedule of active tenants and the purge of expired rows. */
  jobs: JobsRepository;
  http: OutboundHttp;
  metadata: AuthorityMetadata;
  entra: EntraApp;
  validator: IdTokenValidator;
  sync: DirectorySync;
  onboarding: TenantOnboarding;
  lifecycle: TenantLifecycle;
  scheduler: SyncScheduler;
  /** The shared pg-boss queue, when this process works it. */
  queue: SyncQueue | null;
  /** Webhook endpoints: create, rotate, enable, replay (console, CLI and API). */
  webhooks: WebhookEndpoints;
  /** The webhook sender, when this process works jobs (`scheduled`). */
  deliveries: DeliveryWorker | null;
  /** What the pages may ask of this process's sync. */
  syncControl: SyncControl;
  /** Graph change notifications, when NOTIFICATIONS is on: the subscriptions, and what the receiving endpoints may do. */
  notifications: {
    subscriptions: GraphSubscriptions;
    receiver: { syncSoon(tenantId: string): void; reauthorize(subscriptionId: string): void; counters: NotificationCounters };
  } | null;
  /** Aborted when shutdown begins: runs under way stop after the page in hand commits. */
  shutdown: AbortSignal;
  now: () => number;
  /** Stops taking sync work, stops the runs under way at a page boundary and waits for them (their leases are released). */
  stopWork(): Promise<void>;
  /** `stopWork()`, then closes the outbound HTTP client and the store. */
  close(): Promise<void>;
}

export async function identityProviderFromConfig(config: RosterConfig): Promise<IdentityProvider> {
  if (!config.entra) throw new Error('no Entra settings: Roster runs in demo mode against its emulator');
  const { entra } = config;
  const read = async (): Promise<AppCredentials> => ({
    clientId: entra.clientId,
    clientSecret: entra.clientSecret,
    certificate: entra.clientCertificatePath ? await loadCertificateCredential(entra.clientCertificatePath) : null,
  });
  return {
    credentials: await read(),
    authorityHost: entra.authorityHost,
    graphBaseUrl: entra.graphBaseUrl,
    ...(entra.clientCertificatePath ? { reloadCredentials: read } : {}),
  };
}

/**
 * Builds what every command needs: the store (migrated), the outbound HTTP
 * client, the identity provider's metadata, the Entra app, the ID-token
 * validator, the sync engine, onboarding, lifecycle and the scheduler (with
 * pg-boss on PostgreSQL). Fails with the store's or the authority's own error
 * when either cannot be reached, after releasing what it had opened.
 */
export async function bootstrap(config: RosterConfig, options: BootstrapOptions): Promise<Roster> {
  const { provider, logger } = options;
  const now = options.now ?? Date.now;
  const store = options.store ?? (await openStore(config.database, { logger: options.logger }));
  store.eventsEnabled ??= config.events.enabled;
  const http = new OutboundHttp(provider.trustedCaPem ? { trustedCaPem: provider.trustedCaPem } : {});
  const release = async () => {
    await http.close();
    if (!options.store) await store.close();
  };
  try {
    if (!options.store) {
      const applied = await migrateToLatest(store);
      if (applied.length > 0) logger.info({ migrations: applied.map((m) => m.migrationName) }, 'database migrated');
    }
    const metadata = await loadAuthorityMetadata(http, provider.authorityHost);
    const { graphBaseUrl } = provider;
    const entra = new EntraApp({ credentials: provider.credentials, metadata, http, graphBaseUrl, ...(provider.reloadCredentials ? { reloadCredentials: provider.reloadCredentials } : {}) });
    const repositories = repositoriesOf(store);
    const jobs = new JobsRepository(store, { sessionIdleMs: config.session.idleMinutes * 60_000, eventRetentionMs: config.events.retentionDays * 86_400_000 });
    const budget = pLimit(GRAPH_CONCURRENCY);
    const reader = new GraphReader({ http, budget: (request) => budget(request), ...(options.onGraphWait ? { onWait: options.onGraphWait } : {}) });
    const sync = new DirectorySync({ store, entra, reader, graphBaseUrl, now, ...(options.consentGraceMs === undefined ? {} : { consentGraceMs: options.consentGraceMs }) });
    const shutdown = new AbortController();
    const subscriptions = config.notifications.enabled
      ? new GraphSubscriptions({ store, entra, http, graphBaseUrl, notificationUrl: config.notifications.url, logger, now })
      : null;
    const { scheduler, queue } = await startJobs(config, { store, sync, jobs, logger, now, signal: shutdown.signal, scheduled: options.jobs === 'scheduled', subscriptions });
    // Webhooks are sent beside the syncs, never inside them; on PostgreSQL every worker process sends, each delivery leased to one.
    const deliveries = options.jobs === 'scheduled' ? new DeliveryWorker({ store, logger, now, perEndpoint: config.webhooks.concurrencyPerEndpoint, addressPolicy: config.webhooks.addressPolicy }) : null;
    deliveries?.start();

    const { syncControl, notifications } = syncWiring({ scheduler, sync, subscriptions, logger });
    let stopping: Promise<void> | undefined;
    const stopWork = () =>
      (stopping ??= (async () => {
        shutdown.abort();
        await Promise.all([scheduler.stop(), queue?.stop(), deliveries?.stop()]);
      })());
    let closing: Promise<void> | undefined;
    return {
      config,
      logger,
      store,
      repositories,
      jobs,
      http,
      metadata,
      entra,
      validator: new IdTokenValidator(http, metadata, entra.clientId, now),
      sync,
      onboarding: new TenantOnboarding({ store, entra, http, graphBaseUrl, now }),
      lifecycle: new TenantLifecycle(store, syncControl.tenantStateChanged ? { onChange: syncControl.tenantStateChanged } : {}),
      webhooks: new WebhookEndpoints({ store, now, rotationWindowMs: config.webhooks.rotationWindowHours * 3_600_000, addressPolicy: config.webhooks.addressPolicy }),
      deliveries,
      scheduler,
      queue,
      syncControl,
      notifications,
      shutdown: shutdown.signal,
      now,
      stopWork,
      close: () =>
        (closing ??= (async () => {
          await stopWork();
          await release();
        })()),
    };
  } catch (err) {
    await release();
    throw err;
  }
}

/** How pages ask for syncs and decide held deletions, and how Graph's change notifications reach the scheduler. */
function syncWiring(parts: { scheduler: SyncScheduler; sync: DirectorySync; subscriptions: GraphSubscriptions | null; logger: Logger }): Pick<Roster, 'syncControl' | 'notifications'> {
  const { scheduler, sync, subscriptions, logger } = parts;
  const keepSubscriptions = (tenantId: string) => {
    void subscriptions?.maintain().catch((err: unknown) => logger.warn({ err, tenant: tenantId }, 'keeping Graph subscriptions failed; the next tick tries again'));
  };
  return {
    syncControl: {
      requestSync: (tenantId, runOptions) => {
        const ensure = () => void subscriptions?.ensure(tenantId).catch((err: unknown) => logger.warn({ err, tenant: tenantId }, 'could not create the Graph subscription; the next tick tries again'));
        // The first sync follows sign-up: the users' subscription is created with it, the groups' once that sync has read them.
        void scheduler.syncNow(tenantId, runOptions).then(ensure, () => undefined);
        ensure();
      },
      ...(subscriptions ? { tenantStateChanged: keepSubscriptions } : {}),
      confirmHeldDeletion: (tenantId) => sync.confirmHeldDeletion(tenantId),
      discardHeldDeletion: (tenantId) => sync.discardHeldDeletion(tenantId),
    },
    notifications: subscriptions
      ? {
          subscriptions,
          receiver: {
            syncSoon: (tenantId) => scheduler.syncSoon(tenantId),
            reauthorize: (subscriptionId) => void subscriptions.reauthorize(subscriptionId).catch((err: unknown) => logger.warn({ err }, 'reauthorizing a Graph subscription failed; the next tick tries again')),
            counters: new NotificationCounters(),
          },
        }
      : null,
  };
}

/**
 * The scheduler (ticking when `scheduled`) and, when scheduled on PostgreSQL,
 * the pg-boss queue this process works next to any number of others.
 */
async function startJobs(
  config: RosterConfig,
  parts: { store: Store; sync: DirectorySync; jobs: JobsRepository; logger: Logger; now: () => number; signal: AbortSignal; scheduled: boolean; subscriptions: GraphSubscriptions | null },
): Promise<{ scheduler: SyncScheduler; queue: SyncQueue | null }> {
  const { store, sync, jobs, logger, now, signal, scheduled, subscriptions } = parts;
  const queue = scheduled && config.database.engine === 'postgres' ? await SyncQueue.start(config.database.url, logger) : null;
  const scheduler = new SyncScheduler({
    store,
    sync,
    logger,
    intervalMinutes: config.sync.intervalMinutes,
    tickMs: config.sync.tickSeconds * 1000,
    sessionIdleMinutes: config.session.idleMinutes,
    signal,
    now,
    ...(queue ? { queue } : {}),
    ...(subscriptions && config.notifications.enabled ? { notifications: { subscriptions, healthyIntervalMinutes: config.notifications.healthyIntervalMinutes } } : {}),
  });
  try {
    if (queue) await queue.work({ sync, jobs, concurrency: config.sync.concurrency, signal, now });
  } catch (err) {
    await queue?.stop().catch(() => {});
    throw err;
  }
  if (scheduled) scheduler.start();
  return { scheduler, queue };
}
