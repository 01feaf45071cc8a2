import { WebhookInputError, WebhookNotFoundError } from '../events/errors.ts';
import { WebhookEndpoints, type EndpointView } from '../events/endpoints.ts';
import { migrateToLatest, openStore } from '../store/database.ts';
import { cliActor } from './operator-cli.ts';
import { readSettings, runCommand, type Command, type Outcome } from './run.ts';

const VERBS = ['list', 'create', 'rotate-secret', 'disable', 'enable', 'delete'] as const;
type Verb = (typeof VERBS)[number];

const USAGE = `Usage: roster webhooks <verb> [options]
  list                                   every endpoint (never its secret)
  create --url URL [--types T1,T2] [--tenant ID] [--description TEXT]
                                         a new endpoint; prints its signing secret once
  rotate-secret --id ID                  a new secret, printed once; the old one keeps signing
                                         for WEBHOOK_SECRET_ROTATION_HOURS (default 24)
  disable --id ID | enable --id ID | delete --id ID
`;

interface Values {
  url?: string;
  types?: string;
  tenant?: string;
  description?: string;
  id?: string;
}

function describe(endpoint: EndpointView): string {
  const state = endpoint.enabled ? 'enabled' : `disabled${endpoint.disabledReason ? ` (${endpoint.disabledReason})` : ''}`;
  return `${endpoint.id}  ${endpoint.url}  events: ${endpoint.eventTypes.join(',') || 'all'}  tenant: ${endpoint.tenantId ?? 'all'}  ${state}`;
}

function webhooksCommand(verb: Verb): Command<Values> {
  return {
    name: `webhooks ${verb}`,
    usage: USAGE,
    options: { url: { type: 'string' }, types: { type: 'string' }, tenant: { type: 'string' }, description: { type: 'string' }, id: { type: 'string' } },
    async run(values) {
      const { config } = readSettings();
      const store = await openStore(config.database);
      try {
        await migrateToLatest(store);
        const endpoints = new WebhookEndpoints({ store, rotationWindowMs: config.webhooks.rotationWindowHours * 3_600_000, addressPolicy: config.webhooks.addressPolicy });
        const id = () => {
          if (!values.id) throw new WebhookInputError('id', '--id is required: the endpoint id (roster webhooks list shows them)');
          return values.id;
        };
        const out = (line: string) => process.stdout.write(`${line}\n`);
        const showSecret = (secret: string) => out(`secret: ${secret}\nKeep it now: Roster never shows it again.`);
        switch (verb) {
          case 'list':
            for (const endpoint of await endpoints.list()) out(describe(endpoint));
            break;
          case 'create': {
            if (!values.url) throw new WebhookInputError('url', '--url is required');
            const types = values.types?.split(',').map((t) => t.trim()).filter(Boolean) ?? [];
            const { endpoint, secret } = await endpoints.create({ url: values.url, eventTypes: types, tenantId: values.tenant ?? null, description: values.description ?? null }, cliActor());
            out(describe(endpoint));
            showSecret(secret);
            break;
          }
          case 'rotate-secret': {
            const { endpoint, secret } = await endpoints.rotateSecret(id(), cliActor());
            out(describe(endpoint));
            showSecret(secret);
            break;
          }
          case 'disable':
          case 'enable':
            out(describe(await endpoints.setEnabled(id(), verb === 'enable', cliActor())));
            break;
          case 'delete':
            await endpoints.delete(id(), cliActor());
            out(`deleted ${id()}`);
            break;
        }
        return 0;
      } catch (err) {
        if (err instanceof WebhookInputError || err instanceof WebhookNotFoundError) {
          process.stderr.write(`roster webhooks ${verb}: ${err.message}\n`);
          return err instanceof WebhookInputError ? 2 : 1;
        }
        throw err;
      } finally {
        await store.close();
      }
    },
  };
}

/** `roster webhooks <verb> [options]`: the console's endpoint actions from a terminal. */
export async function webhooksMain(args: string[]): Promise<Outcome> {
  const [verb, ...rest] = args;
  if (verb === undefined || verb === 'help' || verb === '--help' || verb === '-h') {
    (verb === undefined ? process.stderr : process.stdout).write(USAGE);
    return verb === undefined ? 2 : 0;
  }
  if (!(VERBS as readonly string[]).includes(verb)) {
    process.stderr.write(`roster webhooks: unknown verb "${verb}"\n\n${USAGE}`);
    return 2;
  }
  return runCommand(webhooksCommand(verb as Verb), rest);
}
