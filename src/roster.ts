import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { RosterConfig } from './config/config.ts';
import { loadCertificateCredential, type AppCredentials } from './identity/credentials.ts';
import { EntraApp } from './identity/entra-app.ts';
import { OutboundHttp } from './identity/http.ts';
import { IdTokenValidator } from './identity/id-token.ts';
import { loadAuthorityMetadata } from './identity/metadata.ts';
import { migrateToLatest, openStore, type Store } from './store/database.ts';
import { TenantRepository } from './store/tenants.ts';
import { TenantOnboarding } from './tenants/onboarding.ts';
import pLimit from 'p-limit';
import { GraphReader } from './directory/graph-reader.ts';
import { DirectorySync } from './directory/sync.ts';
import { SyncQueue } from './jobs/queue.ts';
import { SyncScheduler } from './jobs/scheduler.ts';
import { buildWebApp } from './web/app.ts';
import type { SyncControl } from './web/context.ts';

/** Graph requests in flight at once, across all tenants (Graph throttles per app). */
const GRAPH_CONCURRENCY = 8;

/** Where Roster finds its identity provider: Entra ID from configuration, or the demo's emulator. */
export interface IdentityProvider {
  credentials: AppCredentials;
  authorityHost: URL;
  graphBaseUrl: URL;
  /** Only for the emulator: its local certificate authority, trusted for it alone. */
  trustedCaPem?: string;
}

export interface RunningRoster {
  app: FastifyInstance;
  store: Store;
  onboarding: TenantOnboarding;
  scheduler: SyncScheduler;
  operators: RosterConfig['operators'];
  url: string;
  close(): Promise<void>;
}

export async function identityProviderFromConfig(config: RosterConfig): Promise<IdentityProvider> {
  if (!config.entra) throw new Error('no Entra settings: Roster runs in demo mode against its emulator');
  const { entra } = config;
  return {
    credentials: {
      clientId: entra.clientId,
      clientSecret: entra.clientSecret,
      certificate: entra.clientCertificatePath ? await loadCertificateCredential(entra.clientCertificatePath) : null,
    },
    authorityHost: entra.authorityHost,
    graphBaseUrl: entra.graphBaseUrl,
  };
}

/** Opens the database, checks the identity provider answers, and serves the web app. */
export async function startRoster(config: RosterConfig, provider: IdentityProvider, logger: Logger): Promise<RunningRoster> {
  const store = await openStore(config.database, { logger });
  const http = new OutboundHttp(provider.trustedCaPem ? { trustedCaPem: provider.trustedCaPem } : {});
  let syncing: Syncing | undefined;
  try {
    const applied = await migrateToLatest(store);
    if (applied.length > 0) logger.info({ migrations: applied.map((m) => m.migrationName) }, 'database migrated');
    const metadata = await loadAuthorityMetadata(http, provider.authorityHost);
    const entra = new EntraApp({ credentials: provider.credentials, metadata, http, graphBaseUrl: provider.graphBaseUrl });
    const onboarding = new TenantOnboarding({ tenants: new TenantRepository(store.db), entra, http, graphBaseUrl: provider.graphBaseUrl });
    syncing = await startSyncing(config, store, entra, http, provider.graphBaseUrl, logger);
    const { scheduler, sync } = syncing;
    const app = await buildWebApp({
      publicUrl: config.publicUrl,
      session: config.session,
      store,
      entra,
      validator: new IdTokenValidator(http, metadata, entra.clientId),
      onboarding,
      logger,
      sync: syncControl(scheduler, sync),
      operators: config.operators,
      metricsToken: config.metricsToken,
    });
    await app.listen({ host: config.host, port: config.port });
    return {
      app,
      store,
      onboarding,
      scheduler,
      operators: config.operators,
      url: config.publicUrl.origin,
      close: async () => {
        await app.close();
        await syncing!.stop();
        await http.close();
        await store.close();
      },
    };
  } catch (err) {
    await syncing?.stop();
    await http.close();
    await store.close();
    throw err;
  }
}

/** `roster worker`: works the sync queue (PostgreSQL) and queues due tenants; no web server. */
export async function startWorker(config: RosterConfig, provider: IdentityProvider, logger: Logger): Promise<{ close(): Promise<void> }> {
  const store = await openStore(config.database, { logger });
  const http = new OutboundHttp(provider.trustedCaPem ? { trustedCaPem: provider.trustedCaPem } : {});
  try {
    await migrateToLatest(store);
    const metadata = await loadAuthorityMetadata(http, provider.authorityHost);
    const entra = new EntraApp({ credentials: provider.credentials, metadata, http, graphBaseUrl: provider.graphBaseUrl });
    const syncing = await startSyncing(config, store, entra, http, provider.graphBaseUrl, logger);
    return {
      close: async () => {
        await syncing.stop();
        await http.close();
        await store.close();
      },
    };
  } catch (err) {
    await http.close();
    await store.close();
    throw err;
  }
}

/** What the pages may ask of this process's sync: "Sync now" goes through the scheduler (or its queue), held deletions to the sync itself. */
export function syncControl(scheduler: SyncScheduler, sync: DirectorySync): SyncControl {
  return {
    requestSync: (tenantId, options) => void scheduler.syncNow(tenantId, options),
    confirmHeldDeletion: (tenantId) => sync.confirmHeldDeletion(tenantId),
    discardHeldDeletion: (tenantId) => sync.discardHeldDeletion(tenantId),
  };
}

export function emulatorDataDir(config: RosterConfig): string {
  return join(config.dataDir, 'emulator');
}

export interface Syncing {
  scheduler: SyncScheduler;
  sync: DirectorySync;
  stop(): Promise<void>;
}

/**
 * Directory sync for this process. On SQLite the scheduler runs syncs here; on
 * PostgreSQL it queues them in pg-boss and this process works the queue next
 * to any number of `roster worker` processes.
 */
export async function startSyncing(config: RosterConfig, store: Store, entra: EntraApp, http: OutboundHttp, graphBaseUrl: URL, logger: Logger): Promise<Syncing> {
  const budget = pLimit(GRAPH_CONCURRENCY);
  const sync = new DirectorySync({ store, entra, reader: new GraphReader({ http, budget: (request) => budget(request) }), graphBaseUrl });
  const queue = config.database.engine === 'postgres' ? await SyncQueue.start(config.database.url, logger) : undefined;
  const scheduler = new SyncScheduler({ store, sync, logger, intervalMinutes: config.sync.intervalMinutes, tickMs: config.sync.tickSeconds * 1000, ...(queue ? { queue } : {}) });
  if (queue) await queue.work(sync, config.sync.concurrency);
  scheduler.start();
  return {
    scheduler,
    sync,
    stop: async () => {
      await scheduler.stop();
      await queue?.stop();
    },
  };
}
