import { ConfigError, type RosterConfig } from '../config/config.ts';
import { OutboundHttp } from '../identity/http.ts';
import { loadAuthorityMetadata } from '../identity/metadata.ts';
import { openStore, pendingMigrations } from '../store/database.ts';
import { identityProviderFromConfig } from './bootstrap.ts';
import { readSettings, type Command } from './run.ts';

type Check = { ok: boolean; detail: string };

function report(what: string, check: Check): void {
  process.stdout.write(`${check.ok ? 'ok  ' : 'FAIL'}  ${what}: ${check.detail}\n`);
}

async function checkDatabase(config: RosterConfig): Promise<Check> {
  try {
    const store = await openStore(config.database);
    try {
      const pending = await pendingMigrations(store);
      return { ok: pending.length === 0, detail: `${store.engine} at ${store.location}${pending.length ? `; ${pending.length} migration(s) pending: run roster migrate` : ', migrations applied'}` };
    } finally {
      await store.close();
    }
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

async function checkIdentityProvider(config: RosterConfig): Promise<Check> {
  if (!config.entra) return { ok: true, detail: 'the emulator starts with roster serve or roster demo' };
  const http = new OutboundHttp();
  try {
    await identityProviderFromConfig(config);
    const metadata = await loadAuthorityMetadata(http, config.entra.authorityHost);
    return { ok: true, detail: `discovery answered; issuer ${metadata.issuerTemplate}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  } finally {
    await http.close();
  }
}

/** `roster doctor`: every check runs and reports, so one run lists everything to fix. */
export const doctor: Command = {
  name: 'doctor',
  usage: 'Usage: roster doctor\n  Checks the configuration, the database and that the identity provider answers.\n',
  async run() {
    let config: RosterConfig;
    try {
      config = readSettings().config;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const problem of err.problems) report('configuration', { ok: false, detail: problem });
      return 1;
    }
    report('configuration', { ok: true, detail: config.entra ? `Entra app ${config.entra.clientId} at ${config.entra.authorityHost.origin}` : 'demo mode (no Entra settings): Roster uses its own emulator' });
    const checks: [string, Check][] = [
      ['database', await checkDatabase(config)],
      ['identity provider', await checkIdentityProvider(config)],
    ];
    for (const [what, check] of checks) report(what, check);
    return checks.every(([, check]) => check.ok) ? 0 : 1;
  },
};
