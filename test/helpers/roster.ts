import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { bootstrap, type Roster } from '../../src/commands/bootstrap.ts';
import { startWebServer } from '../../src/commands/serve.ts';
import { loadConfig, type OperatorIdentity } from '../../src/config/config.ts';
import type { SyncScheduler } from '../../src/jobs/scheduler.ts';
import type { Engine } from '../../src/store/database.ts';
import type { WebDependencies } from '../../src/web/app.ts';
import { createLogger } from '../../src/web/logger.ts';
import { startTestEmulator, type TestEmulator } from './emulator.ts';
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
  /** Everything `bootstrap()` built (subscriptions and notification counters among it). */
  roster: Roster;
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

/**
 * Roster's web app on a real port, against a fresh database and an in-memory
 * emulator, wired by the same `bootstrap()` as `roster serve`, with a clock
 * the test moves and syncs that run only when a page or the test asks.
 */
export async function startTestRoster(
  options: {
    engine?: Engine;
    emulator?: TestEmulator;
    operators?: OperatorIdentity[];
    metricsToken?: string;
    web?: Pick<WebDependencies, 'trustProxy' | 'plugins' | 'streamCheckMs'>;
    /** Graph change notifications on, with Roster's own URL as the one Graph calls. */
    notifications?: boolean;
    /** Scheduled rounds (benchmarks): the scheduler ticks with these times instead of syncing only when asked. */
    scheduled?: { intervalMinutes: number; tickSeconds: number };
    env?: Record<string, string>;
    /** `debug` unless set: benchmarks log as production does (`info`). */
    logLevel?: 'debug' | 'info';
  } = {},
): Promise<TestRoster> {
  const emulator = options.emulator ?? (await startTestEmulator());
  const db = await openTestStore(options.engine ?? 'sqlite');
  const port = await freePort();
  const url = `http://localhost:${port}`;
  const registration = demoApp(emulator.ctx);
  registration.redirectUris.push(`${url}/auth/callback`, `${url}/signup/callback`);
  registration.postLogoutRedirectUris.push(`${url}/`);

  let offset = 0;
  const now = () => Date.now() + offset;
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(String(chunk));
      callback();
    },
  });
  const config = {
    ...loadConfig({ ...options.env, PORT: String(port), PUBLIC_URL: url }),
    operators: options.operators ?? [],
    metricsToken: options.metricsToken ?? null,
    trustProxy: options.web?.trustProxy ?? false,
    ...(options.notifications ? { notifications: { enabled: true as const, url: new URL(url), healthyIntervalMinutes: 60 } } : {}),
  };
  if (options.scheduled) config.sync = { ...config.sync, ...options.scheduled };
  const roster = await bootstrap(config, {
    provider: {
      credentials: { clientId: emulator.demoApp.clientId, clientSecret: emulator.demoApp.clientSecret, certificate: null },
      authorityHost: new URL(emulator.urls.authority),
      graphBaseUrl: new URL(emulator.urls.graph),
      trustedCaPem: emulator.caCertPem,
    },
    logger: createLogger(options.logLevel ?? 'debug', sink),
    store: db.store,
    now,
    consentGraceMs: 0,
    // Scheduled rounds are left to the scheduler's own tests; here syncs run when a page or a test asks.
    jobs: options.scheduled ? 'scheduled' : 'on-demand',
  });
  const server = await startWebServer(roster, { plugins: options.web?.plugins, streamCheckMs: options.web?.streamCheckMs });
  return {
    emulator,
    db,
    app: server.app,
    url,
    logs,
    scheduler: roster.scheduler,
    roster,
    advance: (ms) => {
      offset += ms;
      emulator.ctx.clock.advance(ms / 1000);
    },
    close: async () => {
      await server.close();
      await db.drop();
      if (!options.emulator) await emulator.close();
    },
  };
}
