import cliProgress from 'cli-progress';
import { describeOutcome, settleRun } from '../directory/outcome.ts';
import type { SyncProgress } from '../directory/sync.ts';
import { runOptions } from '../jobs/scheduler.ts';
import type { TenantRecord } from '../store/tenants.ts';
import { bootstrap, identityProviderFromConfig, type Roster } from './bootstrap.ts';
import { needsEntra, readSettings, stderrLogger, stopOnSignals, type Command } from './run.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface SyncValues {
  tenant?: string;
  full?: boolean;
}

/** `roster sync [--tenant ID] [--full]`: syncs in the foreground, with a progress bar on a terminal; exit 1 when a run failed. */
export const sync: Command<SyncValues> = {
  name: 'sync',
  usage: 'Usage: roster sync [--tenant TENANT_ID] [--full]\n  Syncs every active tenant (or one) now: incremental from the saved delta link, or a full listing with --full.\n  SIGTERM or Ctrl+C stops after the page in hand is saved; the next run resumes from there.\n',
  options: { tenant: { type: 'string' }, full: { type: 'boolean' } },
  async run(values) {
    if (values.tenant !== undefined && !GUID.test(values.tenant)) {
      process.stderr.write(`roster sync: --tenant must be a tenant id (a GUID), not "${values.tenant}".\n`);
      return 2;
    }
    const { config, env } = readSettings();
    const refused = needsEntra('sync', config, 'in demo mode, roster demo syncs its organisations itself.');
    if (refused !== null) return refused;
    const interactive = process.stderr.isTTY === true;
    let current = '';
    const roster = await bootstrap(config, {
      provider: await identityProviderFromConfig(config),
      // Progress goes to the terminal; structured logs only when asked for.
      logger: stderrLogger(env.LOG_LEVEL === undefined ? 'warn' : config.logLevel),
      jobs: 'on-demand',
      onGraphWait: (ms, reason) => log(interactive ? null : `${current}: waiting ${(ms / 1000).toFixed(1)} s (${reason})`),
    });
    const done = syncTenants(roster, values, interactive, (name) => (current = name)).finally(() => roster.close());
    stopOnSignals(
      'sync',
      async () => {
        await Promise.allSettled([roster.stopWork(), done]);
      },
      config.shutdownSeconds,
    );
    return done;
  },
};

async function syncTenants(roster: Roster, values: SyncValues, interactive: boolean, onTenant: (name: string) => void): Promise<number> {
  // Tenant ids come from the registry only, never from outside it.
  const active = (await roster.repositories.tenants.list()).filter((t) => t.state === 'active');
  const chosen = values.tenant ? active.filter((t) => t.id === values.tenant!.toLowerCase()) : active;
  if (values.tenant && chosen.length === 0) {
    process.stderr.write(`roster sync: ${values.tenant} is not an active tenant of Roster.\n`);
    return 2;
  }
  if (chosen.length === 0) process.stdout.write('No active tenants to sync.\n');
  let failed = 0;
  for (const tenant of chosen) {
    if (roster.shutdown.aborted) break;
    onTenant(tenant.displayName);
    const known = await roster.repositories.users.countInTenant(tenant.id);
    const progress = progressReporter(tenant, known, interactive);
    const result = await settleRun(roster.sync.run(tenant.id, runOptions({ full: values.full ?? false, onProgress: progress.update }, roster.shutdown))).finally(progress.stop);
    const description = describeOutcome(tenant, result);
    process.stdout.write(`${description.line}\n`);
    if (roster.shutdown.aborted) break;
    // Failed and crashed runs are warnings and errors; skipped tenants are not failures.
    if (description.level !== 'info') failed += 1;
  }
  if (roster.shutdown.aborted) {
    process.stdout.write('Stopped: the pages synced so far are saved, and the next roster sync resumes from there.\n');
    return 0;
  }
  return failed > 0 ? 1 : 0;
}

/** A progress bar on a terminal, a log line per page otherwise. */
function progressReporter(tenant: TenantRecord, known: number, interactive: boolean): { update: (p: SyncProgress) => void; stop: () => void } {
  let bar: cliProgress.SingleBar | null = null;
  return {
    update: (p) => {
      // The bar counts users; the groups that follow them get a line per page off a terminal.
      if (p.objects === 'groups') {
        if (!interactive && p.phase !== 'done') log(`${tenant.displayName}: groups ${p.kind} sync, page ${p.pages}, ${p.users} groups (${p.created} new, ${p.updated} updated, ${p.deleted} removed)`);
        return;
      }
      if (!interactive) {
        if (p.phase !== 'done') log(`${tenant.displayName}: ${p.kind} sync, page ${p.pages}, ${p.users} users (${p.created} new, ${p.updated} updated, ${p.deleted} removed)`);
        return;
      }
      // Graph does not say how many users a first listing holds: a bar needs the count of the last sync.
      const format = known > 0 ? '|{bar}| {value}/{total} users' : '{value} users';
      bar ??= new cliProgress.SingleBar({ format: `${tenant.displayName.slice(0, 24).padEnd(24)} ${format}  {pages} pages  {phase}`, hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic);
      if (!bar.isActive) bar.start(Math.max(known, p.users, 1), 0, { pages: 0, phase: p.phase });
      bar.setTotal(Math.max(known, p.users, 1));
      bar.update(p.users, { pages: p.pages, phase: p.phase });
    },
    stop: () => bar?.stop(),
  };
}

function log(line: string | null): void {
  if (line) process.stderr.write(`${new Date().toISOString()} ${line}\n`);
}
