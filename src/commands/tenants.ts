import { describeOutcome, settleRun, type RunResult } from '../directory/outcome.ts';
import { runOptions } from '../jobs/scheduler.ts';
import { SyncStatusRepository } from '../store/sync-status.ts';
import { TenantRepository, type TenantRecord } from '../store/tenants.ts';
import { TenantNotFoundError } from '../tenants/errors.ts';
import { TenantLifecycle } from '../tenants/lifecycle.ts';
import { OperatorActions, type SyncRequests } from '../tenants/operator-actions.ts';
import { bootstrap, identityProviderFromConfig } from './bootstrap.ts';
import { cliActor, isoOrDash, NO_SYNC_HERE, reportFailure, table, tenantIdArgument, UsageError, withStore } from './operator-cli.ts';
import { needsEntra, readSettings, stderrLogger, type Command } from './run.ts';

interface TenantsValues {
  json?: boolean;
  full?: boolean;
}

const USAGE = `Usage: roster tenants <list | show ID | suspend ID | resume ID | sync ID> [options]
  list            every tenant: id, state, users, name (--json for JSON)
  show ID         one tenant with its sync state (--json for JSON)
  suspend ID      stop an active tenant: no syncs, no sign-ins, every session ends; its data stays
  resume ID       make a suspended tenant active again (the scheduler syncs it at its next round)
  sync ID         sync an active tenant now, in the foreground (--full for a full listing; needs Entra settings)
Each change is written to the audit log as done from the command line, like the console's actions.
`;

function tenantJson(t: TenantRecord) {
  return { id: t.id, display_name: t.displayName, domains: t.domains, state: t.state, state_reason: t.stateReason, user_count: t.userCount, created_at: isoOrDash(t.createdAt), updated_at: isoOrDash(t.updatedAt) };
}

/** `roster tenants list|show|suspend|resume|sync`: the operator console's tenant actions from a terminal. */
export const tenants: Command<TenantsValues> = {
  name: 'tenants',
  usage: USAGE,
  positionals: true,
  options: { json: { type: 'boolean' }, full: { type: 'boolean' } },
  async run(values, positionals) {
    const [verb, id, ...extra] = positionals;
    try {
      if (extra.length > 0) throw new UsageError(`unexpected "${extra.join(' ')}".`);
      if (values.full && verb !== 'sync') throw new UsageError('--full goes with "sync" only.');
      switch (verb) {
        case 'list':
          if (id !== undefined) throw new UsageError(`"list" takes no id.`);
          return await list(values);
        case 'show':
          return await show(tenantIdArgument(id), values);
        case 'suspend':
        case 'resume':
          return await change(verb, tenantIdArgument(id));
        case 'sync':
          return await syncNow(tenantIdArgument(id), values.full ?? false);
        case undefined:
          throw new UsageError('needs an action: list, show, suspend, resume or sync.');
        default:
          throw new UsageError(`unknown action "${verb}".`);
      }
    } catch (err) {
      return reportFailure('tenants', USAGE, err);
    }
  },
};

async function list(values: TenantsValues): Promise<number> {
  const { config } = readSettings();
  const all = await withStore(config, (store) => new TenantRepository(store.db).list());
  if (values.json) process.stdout.write(`${JSON.stringify(all.map(tenantJson), null, 2)}\n`);
  else if (all.length === 0) process.stdout.write('No tenants yet.\n');
  else process.stdout.write(table([['ID', 'STATE', 'USERS', 'NAME'], ...all.map((t) => [t.id, t.state, String(t.userCount), t.displayName])]));
  return 0;
}

async function show(tenantId: string, values: TenantsValues): Promise<number> {
  const { config } = readSettings();
  const found = await withStore(config, async (store) => {
    const tenant = await new TenantRepository(store.db).get(tenantId);
    return tenant ? { tenant, status: await new SyncStatusRepository(store.db).status(tenant.id) } : null;
  });
  if (!found) throw new TenantNotFoundError();
  const { tenant, status } = found;
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ...tenantJson(tenant), sync: { health: status.health, last_success_at: isoOrDash(status.lastSuccessAt), last_error: status.lastError, held: status.current?.status === 'held' } }, null, 2)}\n`);
    return 0;
  }
  const rows: [string, string][] = [
    ['Name', tenant.displayName],
    ['Id', tenant.id],
    ['State', tenant.state + (tenant.stateReason ? ` (${tenant.stateReason})` : '')],
    ['Domains', tenant.domains.join(', ') || '-'],
    ['Users', String(tenant.userCount)],
    ['Signed up', isoOrDash(tenant.createdAt)],
    ['Sync health', status.health],
    ['Last success', isoOrDash(status.lastSuccessAt)],
    ['Last error', status.lastError ?? '-'],
    ['Now', status.current ? (status.current.status === 'held' ? 'held: a mass deletion waits for a decision (roster held)' : 'running') : 'idle'],
  ];
  process.stdout.write(rows.map(([k, v]) => `${`${k}:`.padEnd(14)}${v}`).join('\n') + '\n');
  return 0;
}

async function change(verb: 'suspend' | 'resume', tenantId: string): Promise<number> {
  const { config } = readSettings();
  const tenant = await withStore(config, (store) => {
    const actions = new OperatorActions({ store, lifecycle: new TenantLifecycle(store), sync: NO_SYNC_HERE });
    return verb === 'suspend' ? actions.suspend(tenantId, cliActor()) : actions.resume(tenantId, cliActor());
  });
  process.stdout.write(
    verb === 'suspend'
      ? `${tenant.displayName} is suspended: no syncs, no sign-ins, and every session has ended. Its data stays.\n`
      : `${tenant.displayName} is active again; Roster's scheduler syncs it at its next round.\n`,
  );
  return 0;
}

/** Sync now, in this process: the same audited request as the console's, then the run itself, like `roster sync --tenant`. */
async function syncNow(tenantId: string, full: boolean): Promise<number> {
  const { config, env } = readSettings();
  const refused = needsEntra('tenants sync', config, 'in demo mode, use "Sync now" in the operator console.');
  if (refused !== null) return refused;
  const roster = await bootstrap(config, { provider: await identityProviderFromConfig(config), logger: stderrLogger(env.LOG_LEVEL === undefined ? 'warn' : config.logLevel), jobs: 'on-demand' });
  try {
    let run: Promise<RunResult> | undefined;
    const sync: SyncRequests = { ...roster.syncControl, requestSync: (id, options) => void (run = settleRun(roster.sync.run(id, runOptions(options ?? {}, roster.shutdown)))) };
    const actions = new OperatorActions({ store: roster.store, lifecycle: roster.lifecycle, sync, now: roster.now });
    await actions.requestSync(tenantId, cliActor(), { full });
    const tenant = (await roster.repositories.tenants.get(tenantId))!;
    const description = describeOutcome(tenant, await run!);
    process.stdout.write(`${description.line}\n`);
    return description.level === 'info' ? 0 : 1;
  } finally {
    await roster.close();
  }
}
