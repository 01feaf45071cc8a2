import type { FastifyInstance } from 'fastify';
import { buildWebApp, type WebDependencies } from '../web/app.ts';
import type { RosterConfig } from '../config/config.ts';
import { bootstrap, identityProviderFromConfig, type Roster } from './bootstrap.ts';
import { readSettings, stderrLogger, stopOnSignals, type Command } from './run.ts';

export interface WebServer {
  app: FastifyInstance;
  url: string;
  /** Stops taking connections and sync work, drains requests and the runs in hand, then closes everything. */
  close(): Promise<void>;
}

/** Serves the web app on the configured host and port, with this process's sync behind its pages. */
export async function startWebServer(roster: Roster, extra: Pick<WebDependencies, 'plugins' | 'streamCheckMs'> = {}): Promise<WebServer> {
  const { config } = roster;
  const app = await buildWebApp({
    publicUrl: config.publicUrl,
    session: config.session,
    store: roster.store,
    entra: roster.entra,
    validator: roster.validator,
    onboarding: roster.onboarding,
    logger: roster.logger,
    now: roster.now,
    sync: roster.syncControl,
    webhooks: roster.webhooks,
    operators: config.operators,
    metricsToken: config.metricsToken,
    trustProxy: config.trustProxy,
    apiRateLimitPerMinute: config.apiRateLimitPerMinute,
    ...(roster.notifications ? { notifications: roster.notifications.receiver } : {}),
    ...extra,
  });
  await app.listen({ host: config.host, port: config.port });
  if (roster.notifications) {
    const { subscriptions } = roster.notifications;
    void subscriptions.release().catch((err: unknown) => roster.logger.warn({ err }, 'keeping Graph subscriptions failed; the next tick tries again'));
  }
  return {
    app,
    url: config.publicUrl.origin,
    close: async () => {
      // New connections and new sync work stop together; the store closes only after both have drained.
      await Promise.all([app.close(), roster.stopWork()]);
      await roster.close();
    },
  };
}

/**
 * What start-up warns about in settings that work but leave a hole: `/metrics`
 * open to anyone, and an https PUBLIC_URL (so a TLS proxy in front) whose
 * clients would all share the proxy's address in the rate limits.
 */
export function startupWarnings(config: Pick<RosterConfig, 'metricsToken' | 'publicUrl' | 'trustProxy'>): string[] {
  const warnings: string[] = [];
  if (!config.metricsToken) {
    warnings.push(
      'METRICS_TOKEN is not set: /metrics answers anyone who can reach this server. Set METRICS_TOKEN to a random value of at least 16 characters (e.g. openssl rand -hex 32) and have the scraper send Authorization: Bearer <token>.',
    );
  }
  if (config.publicUrl.protocol === 'https:' && config.trustProxy === false) {
    warnings.push(
      `PUBLIC_URL is ${config.publicUrl.origin} but TRUST_PROXY is not set: every client behind the TLS proxy shares its address, so one of them can use up the sign-in rate limit for all. Set TRUST_PROXY to the number of proxies in front of Roster (e.g. 1) or their addresses.`,
    );
  }
  return warnings;
}

export const serve: Command = {
  name: 'serve',
  usage: 'Usage: roster serve\n  Serves Roster with the settings from the environment (see the README); without Entra settings it runs the demo.\n',
  async run() {
    const { config, env } = readSettings();
    if (config.demo) {
      const { startDemoCommand } = await import('./demo.ts');
      return startDemoCommand(config, env, { explicit: false });
    }
    const logger = stderrLogger(config.logLevel);
    const roster = await bootstrap(config, { provider: await identityProviderFromConfig(config), logger, jobs: 'scheduled' });
    let server: WebServer;
    try {
      server = await startWebServer(roster);
    } catch (err) {
      await roster.close();
      throw err;
    }
    for (const warning of startupWarnings(roster.config)) logger.warn(warning);
    logger.info({ url: server.url, database: roster.store.location }, 'Roster is serving');
    stopOnSignals('serve', server.close, config.shutdownSeconds);
    return 'running';
  },
};
