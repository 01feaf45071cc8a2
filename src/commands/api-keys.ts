import { ApiKeys, API_KEY_SCOPES, type ApiKeyRecord } from '../tenants/api-keys.ts';
import { cliActor, isoOrDash, reportFailure, table, UsageError, withStore } from './operator-cli.ts';
import { readSettings, type Command } from './run.ts';

interface ApiKeyValues {
  name?: string;
  scope?: string[];
  tenant?: string;
  json?: boolean;
}

const USAGE = `Usage: roster api-keys <create | list | revoke KEY_ID> [options]
  create --name NAME --scope SCOPE [--scope SCOPE ...] [--tenant ID]
                  a new key for a program; printed once on stdout, then only its hash is kept
                  scopes: ${API_KEY_SCOPES.join(', ')}; --tenant limits the key to one tenant
  list            every key: id, name, prefix, scopes, tenant, created, last used, revoked (--json for JSON)
  revoke KEY_ID   the key stops working at once
Creating and revoking are written to the audit log as done from the command line.
`;

function keyJson(k: ApiKeyRecord) {
  return { id: k.id, name: k.name, prefix: k.prefix, scopes: k.scopes, tenant_id: k.tenantId, created_at: isoOrDash(k.createdAt), last_used_at: k.lastUsedAt === null ? null : isoOrDash(k.lastUsedAt), revoked_at: k.revokedAt === null ? null : isoOrDash(k.revokedAt) };
}

/** `roster api-keys create|list|revoke`: the console's API key page from a terminal. */
export const apiKeys: Command<ApiKeyValues> = {
  name: 'api-keys',
  usage: USAGE,
  positionals: true,
  options: { name: { type: 'string' }, scope: { type: 'string', multiple: true }, tenant: { type: 'string' }, json: { type: 'boolean' } },
  async run(values, positionals) {
    const [verb, id, ...extra] = positionals;
    try {
      if (extra.length > 0) throw new UsageError(`unexpected "${extra.join(' ')}".`);
      if (verb !== 'create' && (values.name !== undefined || values.scope !== undefined || values.tenant !== undefined)) throw new UsageError('--name, --scope and --tenant go with "create" only.');
      const { config } = readSettings();
      switch (verb) {
        case 'create': {
          if (id !== undefined) throw new UsageError('"create" takes options, not words: --name, --scope, --tenant.');
          if (values.name === undefined) throw new UsageError('create needs --name NAME.');
          if (values.scope === undefined) throw new UsageError(`create needs at least one --scope (${API_KEY_SCOPES.join(', ')}).`);
          const { key, secret } = await withStore(config, (store) => new ApiKeys(store).create({ name: values.name!, scopes: values.scope!, tenantId: values.tenant ?? null }, cliActor()));
          if (values.json) process.stdout.write(`${JSON.stringify({ ...keyJson(key), key: secret }, null, 2)}\n`);
          else {
            process.stderr.write(`Created API key ${key.id} "${key.name}" (${key.scopes.join(', ')}; ${key.tenantId ?? 'all tenants'}). Copy it now: Roster keeps only its hash and cannot show it again.\n`);
            process.stdout.write(`${secret}\n`);
          }
          return 0;
        }
        case 'list': {
          if (id !== undefined) throw new UsageError('"list" takes no id.');
          const all = await withStore(config, (store) => new ApiKeys(store).list());
          if (values.json) process.stdout.write(`${JSON.stringify(all.map(keyJson), null, 2)}\n`);
          else if (all.length === 0) process.stdout.write('No API keys yet.\n');
          else {
            const rows = all.map((k) => [k.id, k.name, `${k.prefix}…`, k.scopes.join(','), k.tenantId ?? 'all', isoOrDash(k.createdAt), isoOrDash(k.lastUsedAt), k.revokedAt === null ? '-' : isoOrDash(k.revokedAt)]);
            process.stdout.write(table([['ID', 'NAME', 'KEY', 'SCOPES', 'TENANT', 'CREATED', 'LAST USED', 'REVOKED'], ...rows]));
          }
          return 0;
        }
        case 'revoke': {
          if (id === undefined) throw new UsageError('revoke needs the key id (key_…, from roster api-keys list).');
          if (!/^key_[0-9a-f]{16}$/.test(id)) throw new UsageError(`"${id}" is not an API key id (key_ and 16 hex digits; the key itself is never needed).`);
          const outcome = await withStore(config, async (store) => {
            const keys = new ApiKeys(store);
            const key = await keys.get(id);
            if (!key) return 'unknown' as const;
            return (await keys.revoke(id, cliActor())) ? ('revoked' as const) : ('already' as const);
          });
          if (outcome === 'unknown') throw new UsageError(`there is no API key ${id}.`);
          process.stdout.write(outcome === 'revoked' ? `Revoked ${id}: it stops working at once.\n` : `${id} was already revoked.\n`);
          return 0;
        }
        case undefined:
          throw new UsageError('needs an action: create, list or revoke.');
        default:
          throw new UsageError(`unknown action "${verb}".`);
      }
    } catch (err) {
      return reportFailure('api-keys', USAGE, err);
    }
  },
};
