import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { IdTokenValidator } from '../../src/identity/id-token.ts';
import type { Engine } from '../../src/store/database.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { TenantOnboarding } from '../../src/tenants/onboarding.ts';
import { buildWebApp, type WebDependencies } from '../../src/web/app.ts';
import { syncControl } from '../../src/roster.ts';
import type { OperatorIdentity } from '../../src/config/config.ts';
import { GraphReader } from '../../src/directory/graph-reader.ts';
import { DirectorySync } from '../../src/directory/sync.ts';
import { SyncScheduler } from '../../src/jobs/scheduler.ts';
import { createLogger } from '../../src/web/logger.ts';
import { startTestEmulator, type TestEmulator } from './emulator.ts';
import { connectToEmulator } from './entra.ts';
import { demoApp } from './fixtures.ts';
import { openTestStore, type TestStore } from './stores.ts';

export interface TestRoster {
  emulator: TestEmulator;
  db: TestStore;
  app: FastifyInstance;
  url: string;
  /** Every log line Roster wrote. */
  logs: string[];
  /** Runs syncs in this process; `settle()` waits for the ones under way. */
  scheduler: SyncScheduler;
  /** Moves Roster's clock and the emulator's together (sessions, sign-in lifetimes, token times). */
  advance(ms: number): void;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Roster's web app on a real port, against a fresh database and an in-memory emulator; `web` passes the web app's optional settings through (trusted proxies, extra page plugins, stream checks). */
export async function startTestRoster(
  options: { engine?: Engine; emulator?: TestEmulator; operators?: OperatorIdentity[]; metricsToken?: string; web?: Pick<WebDependencies, 'trustProxy' | 'plugins' | 'streamCheckMs'> } = {},
): Promise<TestRoster> {
  const emulator = options.emulator ?? (await startTestEmulator());
  const db = await openTestStore(options.engine ?? 'sqlite');
  const port = await freePort();
  const url = `http://localhost:${port}`;
  const app0 = demoApp(emulator.ctx);
  app0.redirectUris.push(`${url}/auth/callback`, `${url}/signup/callback`);
  app0.postLogoutRedirectUris.push(`${url}/`);

  const connection = await connectToEmulator(emulator);
  const { http, metadata, graphBaseUrl } = connection;
  const entra = connection.app();
  let offset = 0;
  const now = () => Date.now() + offset;
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(String(chunk));
      callback();
    },
  });
  const logger = createLogger('debug', sink);
  const sync = new DirectorySync({ store: db.store, entra, reader: new GraphReader({ http }), graphBaseUrl, now, consentGraceMs: 0 });
  // Scheduled rounds are left to the scheduler's own tests; here syncs run when a page or a test asks.
  const scheduler = new SyncScheduler({ store: db.store, sync, logger, intervalMinutes: 15, now });
  const app = await buildWebApp({
    publicUrl: new URL(url),
    session: { idleMinutes: 60, absoluteHours: 12 },
    store: db.store,
    entra,
    validator: new IdTokenValidator(http, metadata, entra.clientId, now),
    onboarding: new TenantOnboarding({ tenants: new TenantRepository(db.store.db), entra, http, graphBaseUrl, now }),
    logger,
    now,
    sync: syncControl(scheduler, sync),
    operators: options.operators ?? [],
    metricsToken: options.metricsToken ?? null,
    ...options.web,
  });
  await app.listen({ host: '127.0.0.1', port });
  return {
    emulator,
    db,
    app,
    url,
    logs,
    scheduler,
    advance: (ms) => {
      offset += ms;
      emulator.ctx.clock.advance(ms / 1000);
    },
    close: async () => {
      await app.close();
      await scheduler.stop();
      await http.close();
      await db.drop();
      if (!options.emulator) await emulator.close();
    },
  };
}
