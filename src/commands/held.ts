import { OperatorActions, type HeldDecision } from '../tenants/operator-actions.ts';
import { bootstrap, identityProviderFromConfig } from './bootstrap.ts';
import type { RosterConfig } from '../config/config.ts';
import { TenantLifecycle } from '../tenants/lifecycle.ts';
import { cliActor, isoOrDash, reportFailure, table, tenantIdArgument, UsageError, withStore, NO_SYNC_HERE } from './operator-cli.ts';
import { needsEntra, readSettings, stderrLogger, type Command } from './run.ts';

interface HeldValues {
  tenant?: string;
}

/** Listing needs only the database (no Entra settings, so it works in demo mode too). */
async function list(config: RosterConfig, tenantId: string | null): Promise<number> {
  const all = await withStore(config, (store) => new OperatorActions({ store, lifecycle: new TenantLifecycle(store), sync: NO_SYNC_HERE }).heldDeletions(tenantId));
  if (all.length === 0) process.stdout.write('No sync is waiting for a decision.\n');
  else process.stdout.write(table([['TENANT', 'NAME', 'RUN', 'KIND', 'STARTED'], ...all.map((h) => [h.tenant.id, h.tenant.displayName, h.run.id, h.run.kind, isoOrDash(h.run.startedAt)])]));
  return 0;
}

const USAGE = `Usage: roster held <list | confirm --tenant ID | discard --tenant ID>
  list                  tenants whose sync holds a mass deletion for a decision
  confirm --tenant ID   remove the users the held run did not find (their sessions end)
  discard --tenant ID   keep them; the next full resync asks again if they are still missing
confirm and discard need Entra settings, like roster sync. Each decision is written to the audit log as done from the command line.
`;

/** `roster held list|confirm|discard`: held mass deletions, decided as in the operator console. */
export const held: Command<HeldValues> = {
  name: 'held',
  usage: USAGE,
  positionals: true,
  options: { tenant: { type: 'string' } },
  async run(values, positionals) {
    const [verb, ...extra] = positionals;
    try {
      if (extra.length > 0) throw new UsageError(`unexpected "${extra.join(' ')}".`);
      if (verb !== 'list' && verb !== 'confirm' && verb !== 'discard') throw new UsageError(verb === undefined ? 'needs an action: list, confirm or discard.' : `unknown action "${verb}".`);
      const tenantId = verb === 'list' ? (values.tenant === undefined ? null : tenantIdArgument(values.tenant)) : tenantIdArgument(values.tenant, '--tenant ID');
      const { config, env } = readSettings();
      if (verb === 'list') return await list(config, tenantId);
      const refused = needsEntra('held', config, 'in demo mode, decide held deletions in the operator console.');
      if (refused !== null) return refused;
      const roster = await bootstrap(config, { provider: await identityProviderFromConfig(config), logger: stderrLogger(env.LOG_LEVEL === undefined ? 'warn' : config.logLevel), jobs: 'on-demand' });
      try {
        const actions = new OperatorActions({ store: roster.store, lifecycle: roster.lifecycle, sync: roster.syncControl, now: roster.now });
        const { removed } = await actions.decideHeld(tenantId!, verb satisfies HeldDecision, cliActor());
        process.stdout.write(removed === null ? 'Discarded: the users stay; the next full resync asks again if they are still missing.\n' : `Confirmed: ${removed} users removed.\n`);
        return 0;
      } finally {
        await roster.close();
      }
    } catch (err) {
      return reportFailure('held', USAGE, err);
    }
  },
};
