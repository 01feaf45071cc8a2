import { parseArgs } from 'node:util';
import pino from 'pino';
import { ConfigError, environmentWithDotEnv, loadConfig, type RosterConfig } from './config/config.ts';
import { AuthorityUnavailableError } from './identity/metadata.ts';
import { migrateToLatest, openStore, StoreUnavailableError } from './store/database.ts';
import { createLogger } from './web/logger.ts';

type Outcome = number | 'running';

function readConfig(): RosterConfig {
  return loadConfig(environmentWithDotEnv(process.env, process.cwd()));
}

/** Turns start-up failures into one clear paragraph and an exit code. */
function startupFailure(command: string, err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`roster ${command}: ${err.message}\nSee the README for every setting.\n`);
    return 2;
  }
  if (err instanceof StoreUnavailableError || err instanceof AuthorityUnavailableError) {
    process.stderr.write(`roster ${command}: ${err.message}\n`);
    return 1;
  }
  if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    process.stderr.write(`roster ${command}: ${(err as Error).message}: another program uses that port; set PORT to a free one.\n`);
    return 1;
  }
  throw err;
}

function noOptions(command: string, args: string[]): { help?: boolean } | null {
  try {
    return parseArgs({ args, options: { help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    process.stderr.write(`roster ${command}: ${(err as Error).message}\n`);
    return null;
  }
}

function onSignals(close: () => Promise<void>): void {
  let closing = false;
  const stop = (signal: string) => {
    if (closing) process.exit(1);
    closing = true;
    process.stderr.write(`\n${signal}: stopping Roster…\n`);
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`could not stop cleanly: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** `roster serve`: the web app against Entra ID, or the demo when no Entra settings are given. */
export async function serveCommand(args: string[], mode: 'serve' | 'demo'): Promise<Outcome> {
  const values = noOptions(mode, args);
  if (!values) return 2;
  if (values.help) {
    process.stdout.write(
      mode === 'demo'
        ? 'Usage: roster demo\n  Runs the Entra ID + Graph emulator with demo organisations and Roster on SQLite, in one process.\n'
        : 'Usage: roster serve\n  Serves Roster with the settings from the environment (see the README); without Entra settings it runs the demo.\n',
    );
    return 0;
  }
  try {
    const env = environmentWithDotEnv(process.env, process.cwd());
    const config = loadConfig(env);
    const runDemo = mode === 'demo' || config.demo;
    // Request logs would drown the demo's instructions; ask for them with LOG_LEVEL.
    const logger = createLogger(runDemo && env.LOG_LEVEL === undefined ? 'warn' : config.logLevel, pino.destination(2));
    if (runDemo) {
      if (mode === 'demo' && !config.demo) process.stderr.write('roster demo: ignoring the Entra settings of the environment; the demo uses its own emulator.\n');
      const { startDemo, demoSummary } = await import('./demo.ts');
      const demo = await startDemo({ ...config, demo: true, entra: null }, logger);
      process.stdout.write(`${await demoSummary(demo)}\n`);
      onSignals(demo.close);
      return 'running';
    }
    const { identityProviderFromConfig, startRoster } = await import('./roster.ts');
    const roster = await startRoster(config, await identityProviderFromConfig(config), logger);
    logger.info({ url: roster.url, database: roster.store.location }, 'Roster is serving');
    onSignals(roster.close);
    return 'running';
  } catch (err) {
    return startupFailure(mode, err);
  }
}

/** `roster migrate`: applies pending database migrations and says which. */
export async function migrateCommand(args: string[]): Promise<Outcome> {
  const values = noOptions('migrate', args);
  if (!values) return 2;
  if (values.help) {
    process.stdout.write('Usage: roster migrate\n  Applies pending migrations to the database of DATABASE_URL (or the SQLite file under DATA_DIR).\n');
    return 0;
  }
  try {
    const config = readConfig();
    const store = await openStore(config.database);
    try {
      const applied = await migrateToLatest(store);
      process.stdout.write(applied.length === 0 ? `Database ${store.location} is up to date.\n` : `Applied to ${store.location}: ${applied.map((m) => m.migrationName).join(', ')}\n`);
    } finally {
      await store.close();
    }
    return 0;
  } catch (err) {
    return startupFailure('migrate', err);
  }
}

/** `roster doctor`: checks the configuration, the database and the identity provider, and says what to fix. */
export async function doctorCommand(args: string[]): Promise<Outcome> {
  const values = noOptions('doctor', args);
  if (!values) return 2;
  if (values.help) {
    process.stdout.write('Usage: roster doctor\n  Checks the configuration, the database and that the identity provider answers.\n');
    return 0;
  }
  const report = (ok: boolean, what: string, detail: string) => process.stdout.write(`${ok ? 'ok  ' : 'FAIL'}  ${what}: ${detail}\n`);
  let config: RosterConfig;
  try {
    config = readConfig();
    report(true, 'configuration', config.demo ? 'demo mode (no Entra settings): Roster uses its own emulator' : `Entra app ${config.entra!.clientId} at ${config.entra!.authorityHost.origin}`);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const problem of err.problems) report(false, 'configuration', problem);
    return 1;
  }
  let healthy = true;
  try {
    const store = await openStore(config.database);
    try {
      const { Migrator } = await import('kysely');
      const { migrationProvider } = await import('./store/migrations.ts');
      const pending = (await new Migrator({ db: store.db, provider: migrationProvider }).getMigrations()).filter((m) => !m.executedAt);
      report(pending.length === 0, 'database', `${store.engine} at ${store.location}${pending.length ? `; ${pending.length} migration(s) pending: run roster migrate` : ', migrations applied'}`);
      healthy &&= pending.length === 0;
    } finally {
      await store.close();
    }
  } catch (err) {
    report(false, 'database', (err as Error).message);
    healthy = false;
  }
  if (config.demo) {
    report(true, 'identity provider', 'the emulator starts with roster serve or roster demo');
  } else {
    const { OutboundHttp } = await import('./identity/http.ts');
    const { loadAuthorityMetadata } = await import('./identity/metadata.ts');
    const { identityProviderFromConfig } = await import('./roster.ts');
    const http = new OutboundHttp();
    try {
      await identityProviderFromConfig(config);
      const metadata = await loadAuthorityMetadata(http, config.entra!.authorityHost);
      report(true, 'identity provider', `discovery answered; issuer ${metadata.issuerTemplate}`);
    } catch (err) {
      report(false, 'identity provider', (err as Error).message);
      healthy = false;
    } finally {
      await http.close();
    }
  }
  return healthy ? 0 : 1;
}

/** `roster sync [--tenant ID] [--full]`: syncs in the foreground, with a progress bar on a terminal. */
export async function syncCommand(args: string[]): Promise<Outcome> {
  let values: { help?: boolean; tenant?: string; full?: boolean };
  try {
    values = parseArgs({ args, options: { help: { type: 'boolean', short: 'h' }, tenant: { type: 'string' }, full: { type: 'boolean' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    process.stderr.write(`roster sync: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write('Usage: roster sync [--tenant TENANT_ID] [--full]\n  Syncs every active tenant (or one) now: incremental from the saved delta link, or a full listing with --full.\n');
    return 0;
  }
  try {
    const config = readConfig();
    if (config.demo) {
      process.stderr.write('roster sync: needs Entra settings (ENTRA_CLIENT_ID and a secret or certificate); in demo mode, roster demo syncs its organisations itself.\n');
      return 2;
    }
    const { runSync } = await import('./directory/sync-command.ts');
    return await runSync(config, { tenant: values.tenant ?? null, full: values.full ?? false });
  } catch (err) {
    return startupFailure('sync', err);
  }
}

/** `roster worker`: syncs tenants from the shared queue, next to any number of other workers. */
export async function workerCommand(args: string[]): Promise<Outcome> {
  const values = noOptions('worker', args);
  if (!values) return 2;
  if (values.help) {
    process.stdout.write('Usage: roster worker\n  Works the directory sync queue on the PostgreSQL of DATABASE_URL; run as many as you like, on any machines.\n');
    return 0;
  }
  try {
    const config = readConfig();
    if (config.demo) {
      process.stderr.write('roster worker: needs Entra settings (ENTRA_CLIENT_ID and a secret or certificate); the demo syncs inside roster demo.\n');
      return 2;
    }
    if (config.database.engine !== 'postgres') {
      process.stderr.write('roster worker: workers share the sync work through PostgreSQL: set DATABASE_URL. On SQLite, roster serve syncs by itself.\n');
      return 2;
    }
    const logger = createLogger(config.logLevel, pino.destination(2));
    const { identityProviderFromConfig, startWorker } = await import('./roster.ts');
    const worker = await startWorker(config, await identityProviderFromConfig(config), logger);
    logger.info({ database: config.database.url.replace(/:[^:@/]*@/, ':***@') }, 'worker started');
    onSignals(worker.close);
    return 'running';
  } catch (err) {
    return startupFailure('worker', err);
  }
}
