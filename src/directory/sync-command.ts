import cliProgress from 'cli-progress';
import type { RosterConfig } from '../config/config.ts';
import { EntraApp } from '../identity/entra-app.ts';
import { OutboundHttp } from '../identity/http.ts';
import { loadAuthorityMetadata } from '../identity/metadata.ts';
import { identityProviderFromConfig } from '../roster.ts';
import { migrateToLatest, openStore } from '../store/database.ts';
import { TenantRepository } from '../store/tenants.ts';
import { GraphReader } from './graph-reader.ts';
import { DirectorySync, HeldDeletionError, TenantBusyError, type SyncProgress } from './sync.ts';

/** Syncs in the foreground; exit code 1 when any tenant's run failed. */
export async function runSync(config: RosterConfig, options: { tenant: string | null; full: boolean }): Promise<number> {
  const provider = await identityProviderFromConfig(config);
  const store = await openStore(config.database);
  const http = new OutboundHttp(provider.trustedCaPem ? { trustedCaPem: provider.trustedCaPem } : {});
  const interactive = process.stderr.isTTY === true;
  try {
    await migrateToLatest(store);
    const metadata = await loadAuthorityMetadata(http, provider.authorityHost);
    const entra = new EntraApp({ credentials: provider.credentials, metadata, http, graphBaseUrl: provider.graphBaseUrl });
    const tenants = new TenantRepository(store.db);
    // Tenant ids come from the registry only, never from outside it.
    const active = (await tenants.list()).filter((t) => t.state === 'active');
    const chosen = options.tenant ? active.filter((t) => t.id === options.tenant!.toLowerCase()) : active;
    if (options.tenant && chosen.length === 0) {
      process.stderr.write(`roster sync: ${options.tenant} is not an active tenant of Roster.\n`);
      return 2;
    }
    let failed = 0;
    for (const tenant of chosen) {
      let bar: cliProgress.SingleBar | null = null;
      const known = Number((await store.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).n);
      const reader = new GraphReader({
        http,
        onWait: (ms, reason) => log(interactive ? null : `${tenant.displayName}: waiting ${(ms / 1000).toFixed(1)} s (${reason})`),
      });
      const sync = new DirectorySync({ store, entra, reader, graphBaseUrl: provider.graphBaseUrl });
      const onProgress = (p: SyncProgress) => {
        if (interactive) {
          // Graph does not say how many users a first listing holds: a bar needs the count of the last sync.
          const format = known > 0 ? '|{bar}| {value}/{total} users' : '{value} users';
          bar ??= new cliProgress.SingleBar(
            { format: `${tenant.displayName.slice(0, 24).padEnd(24)} ${format}  {pages} pages  {phase}`, hideCursor: true, stream: process.stderr },
            cliProgress.Presets.shades_classic,
          );
          if (!bar.isActive) bar.start(Math.max(known, p.users, 1), 0, { pages: 0, phase: p.phase });
          bar.setTotal(Math.max(known, p.users, 1));
          bar.update(p.users, { pages: p.pages, phase: p.phase });
        } else if (p.phase !== 'done') {
          log(`${tenant.displayName}: ${p.kind} sync, page ${p.pages}, ${p.users} users (${p.created} new, ${p.updated} updated, ${p.deleted} removed)`);
        }
      };
      let outcome;
      try {
        outcome = await sync.run(tenant.id, { full: options.full, onProgress });
      } catch (err) {
        if (err instanceof HeldDeletionError) {
          process.stdout.write(`${tenant.displayName}: skipped, its last sync would remove many users and waits for a decision on the sync page or the operator console\n`);
          continue;
        }
        if (!(err instanceof TenantBusyError)) throw err;
        process.stdout.write(`${tenant.displayName}: skipped, another process is syncing it right now\n`);
        continue;
      } finally {
        (bar as cliProgress.SingleBar | null)?.stop();
      }
      const summary = `${tenant.displayName}: ${outcome.kind} sync ${outcome.status}: ${outcome.pages} pages, ${outcome.created} created, ${outcome.updated} updated, ${outcome.deleted} removed${outcome.error ? ` (${outcome.error})` : ''}`;
      process.stdout.write(`${summary}\n`);
      if (outcome.status === 'failed') failed += 1;
    }
    if (chosen.length === 0) process.stdout.write('No active tenants to sync.\n');
    return failed > 0 ? 1 : 0;
  } finally {
    await http.close();
    await store.close();
  }
}

function log(line: string | null): void {
  if (line) process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}
