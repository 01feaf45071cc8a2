import { bootstrap, identityProviderFromConfig } from './bootstrap.ts';
import { needsEntra, readSettings, stderrLogger, stopOnSignals, type Command } from './run.ts';

export const worker: Command = {
  name: 'worker',
  usage: 'Usage: roster worker\n  Works the directory sync queue on the PostgreSQL of DATABASE_URL; run as many as you like, on any machines.\n',
  async run() {
    const { config } = readSettings();
    const refused = needsEntra('worker', config, 'the demo syncs inside roster demo.');
    if (refused !== null) return refused;
    if (config.database.engine !== 'postgres') {
      process.stderr.write('roster worker: workers share the sync work through PostgreSQL: set DATABASE_URL. On SQLite, roster serve syncs by itself.\n');
      return 2;
    }
    const logger = stderrLogger(config.logLevel);
    const roster = await bootstrap(config, { provider: await identityProviderFromConfig(config), logger, jobs: 'scheduled' });
    logger.info({ database: roster.store.location }, 'worker started');
    // Its notification URL is served by `roster serve` elsewhere.
    void roster.notifications?.subscriptions.release().catch((err: unknown) => logger.warn({ err }, 'keeping Graph subscriptions failed; the next tick tries again'));
    stopOnSignals('worker', roster.close, config.shutdownSeconds);
    return 'running';
  },
};
