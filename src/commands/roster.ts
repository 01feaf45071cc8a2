import { runCommand, type Command, type Outcome } from './run.ts';

interface Entry {
  name: string;
  /** One or two lines for `roster help`. */
  summary: string;
  run(args: string[]): Promise<Outcome>;
}

/** Each command loads only when asked for, so `roster migrate` never loads the web server or the emulator. */
function command(name: string, summary: string, load: () => Promise<Command<never>>): Entry {
  return { name, summary, run: async (args) => runCommand(await load(), args) };
}

const COMMANDS: Entry[] = [
  command('serve', 'serve the Roster web app with the settings of the environment (see the README);\nwithout Entra settings it runs the demo', async () => (await import('./serve.ts')).serve),
  command('demo', 'the emulator with demo organisations and Roster on SQLite, in one process', async () => (await import('./demo.ts')).demo),
  command('migrate', 'apply pending database migrations', async () => (await import('./migrate.ts')).migrate),
  command('setup', 'create or update the Entra app registration through Microsoft Graph and write .env\n(device code sign-in; --rotate-credential, --drop-old, --secret)', async () => (await import('./setup.ts')).setup as Command<never>),
  command('doctor', 'check the configuration, the database and the identity provider;\n--registration checks the app registration through Graph', async () => (await import('./doctor.ts')).doctor as Command<never>),
  command('sync', 'sync the user directories of active tenants now ([--tenant ID] [--full])', async () => (await import('./sync.ts')).sync as Command<never>),
  command('worker', 'work the directory sync queue (PostgreSQL); run any number, on any machines', async () => (await import('./worker.ts')).worker),
  command('tenants', 'list, show, suspend, resume or sync a tenant (roster tenants --help)', async () => (await import('./tenants.ts')).tenants as Command<never>),
  command('held', 'list, confirm or discard held mass deletions (roster held --help)', async () => (await import('./held.ts')).held as Command<never>),
  command('api-keys', 'create, list or revoke API keys for /api/v1 (roster api-keys --help)', async () => (await import('./api-keys.ts')).apiKeys as Command<never>),
  {
    name: 'webhooks',
    summary: 'manage webhook endpoints: list, create, rotate-secret, disable, enable, delete\n(roster webhooks --help)',
    run: async (args) => (await import('./webhooks.ts')).webhooksMain(args),
  },
  {
    name: 'emulator',
    summary: 'run the offline Entra ID + Graph emulator, or drive a running one\n(roster emulator --help)',
    // The emulator parses its own options and verbs.
    run: async (args) => (await import('../emulator/cli.ts')).emulatorCommand(args),
  },
];

export function helpText(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length), 'help'.length) + 4;
  const rows = [...COMMANDS.map((c) => [c.name, c.summary] as const), ['help', 'show this text'] as const].map(([name, summary]) =>
    summary
      .split('\n')
      .map((line, i) => `  ${(i === 0 ? name : '').padEnd(width)}${line}`)
      .join('\n'),
  );
  return `Usage: roster <command> [options]\n\nCommands:\n${rows.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<Outcome> {
  const [name, ...rest] = argv;
  if (name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(helpText());
    return 0;
  }
  if (name === undefined) {
    process.stderr.write(helpText());
    return 2;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (entry) return entry.run(rest);
  process.stderr.write(`roster: unknown command "${name}"\n\n${helpText()}`);
  return 2;
}
