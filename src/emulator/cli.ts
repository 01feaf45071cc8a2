import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CONTROL_FILE, ControlClient, ControlError, type ControlFile } from './control-client.ts';
import type { FaultKind, FaultTarget } from './faults.ts';
import type { UserInput } from './model.ts';
import type { SeedSource } from './seed.ts';
import type { EmulatorOptions, RunningEmulator } from './server.ts';
// The server, seeding and persistence load lazily: verbs only need the control client, and start fast.

/** Wrong flags or arguments: exit code 2. */
export class UsageError extends Error {}

export const DEFAULT_DATA_DIR = './data/emulator';
const DEFAULT_HTTPS_PORT = 5443;
const DEFAULT_HTTP_PORT = 5080;
const DEFAULT_GENERATE = { tenants: 3, users: 100, seed: 42 };

const START_OPTIONS = {
  'data-dir': { type: 'string' },
  memory: { type: 'boolean' },
  'https-port': { type: 'string' },
  'http-port': { type: 'string' },
  tenants: { type: 'string' },
  users: { type: 'string' },
  seed: { type: 'string' },
  fixture: { type: 'string' },
  demo: { type: 'boolean' },
  consented: { type: 'string' },
  password: { type: 'string' },
  'redirect-uri': { type: 'string', multiple: true },
  'post-logout-redirect-uri': { type: 'string', multiple: true },
  'consent-delay': { type: 'string' },
  'control-token': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const EMULATOR_HELP = `Usage: roster emulator [options]          start the Entra ID + Graph emulator
       roster emulator <verb> ... [options]  drive a running emulator

Start options:
  --data-dir DIR            CA, signing keys and saved state (default ${DEFAULT_DATA_DIR})
  --memory                  keep everything in memory (no data folder)
  --https-port N            back channel: discovery, keys, token, Graph (default ${DEFAULT_HTTPS_PORT}; 0 = any)
  --http-port N             browser pages and the control API (default ${DEFAULT_HTTP_PORT}; 0 = any)
  --tenants N --users N --seed N
                            generate N tenants of N users (default ${DEFAULT_GENERATE.tenants} x ${DEFAULT_GENERATE.users}, seed ${DEFAULT_GENERATE.seed})
  --consented N             the first N generated tenants start consented to the demo app (default 0)
  --fixture FILE            seed from a JSON fixture (see docs/examples/emulator-fixture.json)
  --demo                    the demo directory: Contoso, Fabrikam, Northwind Traders
  --password PW             password of generated accounts (default roster-demo)
  --redirect-uri URI        redirect URI of the demo app (repeatable)
  --post-logout-redirect-uri URI  (repeatable)
  --consent-delay SECONDS   time between admin consent and tokens that carry it
  --control-token T         control API token (random by default)
Saved state in the data folder wins over the seeding options.
Prints one JSON line {"event":"ready",...} on stdout when ready; logs go to stderr.

Verbs (find the emulator by --data-dir's control.json, or --control-url and --control-token):
  state
  tenant add --name NAME [--domain D ...] [--id GUID] [--country CC] [--users N] [--seed N] [--consent]
  tenant list | tenant show|edit|remove TENANT   (edit: --name, --country, --add-domain D)
  tenant changes TENANT [--since-seq N] [--limit N]   (the change log that delta replays)
  user add --tenant T --upn UPN [--name ..] [--given-name ..] [--surname ..] [--job-title ..] [--department ..]
           [--mail ..] [--office ..] [--password ..] [--admin] [--disabled] [--guest] [--json '{...}']
  user show|edit|delete|restore|purge USER --tenant T   (edit takes the add options; --no-admin, --enabled)
  consent grant|revoke --tenant T [--app APPID]
  keys rotate [--drop-previous]
  delta expire --tenant T
  app show|disable|enable [--app APPID]   (default: the demo app)
  fault add --target graph|token|any --kind throttle|unavailable|delay|drop
            [--retry-after S] [--delay-ms N] [--share 0..1 | --count N] [--tenant T]
  fault list | fault clear | fault remove ID
  requests [--tenant T] [--route "GET /v1.0/users"] [--since-ms N] [--limit N]
  requests clear
  stats
  clock advance --seconds N
  settings [--consent-delay S] [--missing-sp-error 700016|7000229]
  save
Each verb prints its JSON result on stdout. Exit codes: 1 on errors, 2 on bad usage.
`;

// ---- numbers -------------------------------------------------------------------

function intFlag(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`--${name} must be a whole number, not "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, not ${n}`);
  return n;
}

function numberFlag(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, not "${value}"`);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, not ${n}`);
  return n;
}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, context: string) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: true, allowNegative: true });
  } catch (err) {
    throw new UsageError(`${context}: ${(err as Error).message.replace(/\. To specify a positional.*$/s, '')}`);
  }
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

// ---- start ---------------------------------------------------------------------

export interface StartPlan {
  options: EmulatorOptions;
  dataDir: string | null;
  seedFlagsGiven: boolean;
  consentDelay: number | undefined;
}

/** Turns start flags into emulator options; throws UsageError on anything wrong. */
export function planStart(args: string[]): StartPlan | 'help' {
  const { values, positionals } = parse(args, START_OPTIONS, 'roster emulator');
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`roster emulator: unexpected argument "${positionals[0]}"`);
  if (values.memory && values['data-dir'] !== undefined) throw new UsageError('--memory and --data-dir exclude each other');
  const httpsPort = intFlag('https-port', values['https-port'], 0, 65535) ?? DEFAULT_HTTPS_PORT;
  const httpPort = intFlag('http-port', values['http-port'], 0, 65535) ?? DEFAULT_HTTP_PORT;
  if (httpsPort !== 0 && httpsPort === httpPort) throw new UsageError('--https-port and --http-port must differ');
  const tenants = intFlag('tenants', values.tenants, 0, 10_000);
  const users = intFlag('users', values.users, 0, 5_000_000);
  const seed = intFlag('seed', values.seed, -2147483648, 4294967295);
  const consented = intFlag('consented', values.consented, 0, 10_000);
  const consentDelay = numberFlag('consent-delay', values['consent-delay'], 0, 86_400);
  const generateGiven = tenants !== undefined || users !== undefined || seed !== undefined || consented !== undefined;
  const demo = values.demo === true;
  const chosen = [generateGiven && '--tenants/--users/--seed/--consented', values.fixture !== undefined && '--fixture', demo && '--demo'].filter(Boolean);
  if (chosen.length > 1) throw new UsageError(`choose one way to seed: ${chosen.join(' or ')}`);
  if (values.password !== undefined && values.fixture !== undefined) throw new UsageError('--password applies to generated accounts; a fixture sets passwords per user');
  for (const uri of [...(values['redirect-uri'] ?? []), ...(values['post-logout-redirect-uri'] ?? [])]) {
    if (!URL.canParse(uri)) throw new UsageError(`not a URL: "${uri}"`);
  }
  if (values['control-token'] !== undefined && values['control-token'].length < 8) throw new UsageError('--control-token must be at least 8 characters');

  let source: SeedSource;
  if (values.fixture !== undefined) source = { kind: 'fixture', path: resolve(values.fixture) };
  else if (demo) source = { kind: 'demo', ...(values.password ? { password: values.password } : {}) };
  else {
    source = {
      kind: 'generate',
      tenants: tenants ?? DEFAULT_GENERATE.tenants,
      usersPerTenant: users ?? DEFAULT_GENERATE.users,
      seed: seed ?? DEFAULT_GENERATE.seed,
      consentedTenants: consented ?? 0,
      ...(values.password ? { password: values.password } : {}),
    };
  }
  const dataDir = values.memory ? null : resolve(values['data-dir'] ?? DEFAULT_DATA_DIR);
  const options: EmulatorOptions = { httpsPort, httpPort, dataDir, seed: source, logger: false };
  if (values['redirect-uri']) options.redirectUris = values['redirect-uri'];
  if (values['post-logout-redirect-uri']) options.postLogoutRedirectUris = values['post-logout-redirect-uri'];
  if (consentDelay !== undefined) options.consentPropagationSeconds = consentDelay;
  if (values['control-token'] !== undefined) options.controlToken = values['control-token'];
  const seedFlagsGiven = chosen.length > 0 || values.password !== undefined;
  return { options, dataDir, seedFlagsGiven, consentDelay };
}

export interface ReadyLine {
  event: 'ready';
  authority: string;
  graph: string;
  pages: string;
  control: string;
  controlToken: string;
  caCertPath: string | null;
  /** Only for `--memory`, where no CA file exists to point at. */
  caCertPem?: string;
  dataDir: string | null;
  app: { clientId: string; clientSecret: string; redirectUris: string[] };
  tenants: { id: string; displayName: string; domain: string; users: number; consented: boolean; admin: { username: string; password: string } | null }[];
}

export function readyLine(emulator: RunningEmulator): ReadyLine {
  const { ctx } = emulator;
  const app = ctx.directory.requireApp(ctx.demoAppId);
  const line: ReadyLine = {
    event: 'ready',
    authority: ctx.urls.authority,
    graph: ctx.urls.graph,
    pages: ctx.urls.pages,
    control: ctx.urls.control,
    controlToken: ctx.controlToken,
    caCertPath: emulator.caCertPath,
    dataDir: ctx.dataDir,
    app: { clientId: emulator.demoApp.clientId, clientSecret: emulator.demoApp.clientSecret, redirectUris: app.redirectUris },
    tenants: [...ctx.directory.tenants.values()].map((t) => {
      const admin = t.users.find((u) => u.admin);
      return {
        id: t.id,
        displayName: t.displayName,
        domain: t.defaultDomain,
        users: t.users.length,
        consented: t.servicePrincipals.has(ctx.demoAppId),
        admin: admin ? { username: admin.props.userPrincipalName, password: admin.password } : null,
      };
    }),
  };
  if (!emulator.caCertPath) line.caCertPem = emulator.caCertPem;
  return line;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Starts the emulator and keeps it running until SIGINT/SIGTERM. Resolves once it is ready. */
export async function startCommand(args: string[]): Promise<number | 'running'> {
  const mode = 'emulator';
  const plan = planStart(args);
  if (plan === 'help') {
    process.stdout.write(EMULATOR_HELP);
    return 0;
  }
  const { dataDir } = plan;
  const [{ startEmulator }, { FixtureError }, { StateFileError, hasSavedState, stateFilePath }] = await Promise.all([
    import('./server.ts'),
    import('./seed.ts'),
    import('./persistence.ts'),
  ]);
  const controlPath = dataDir ? join(dataDir, CONTROL_FILE) : null;
  if (controlPath && existsSync(controlPath)) {
    try {
      const other = JSON.parse(await readFile(controlPath, 'utf8')) as ControlFile;
      if (other.pid !== process.pid && pidAlive(other.pid)) {
        log(`roster ${mode}: another emulator (pid ${other.pid}) is using ${dataDir}; stop it, or pick another --data-dir. (If no such emulator runs, delete ${controlPath}.)`);
        return 1;
      }
    } catch {
      // An unreadable control file is a stale one: it is rewritten below.
    }
  }
  if (dataDir && hasSavedState(dataDir)) {
    const note = plan.seedFlagsGiven ? ' The seeding options were ignored: saved state wins.' : '';
    log(`Loading saved state from ${stateFilePath(dataDir)}.${note} (Delete that file, or use another --data-dir, to start from a fresh seed.)`);
  }

  const started = performance.now();
  let emulator: RunningEmulator;
  try {
    emulator = await startEmulator(plan.options);
  } catch (err) {
    if (err instanceof FixtureError) throw new UsageError(err.message);
    if (err instanceof StateFileError) {
      log(`roster ${mode}: ${err.message}`);
      return 1;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      log(`roster ${mode}: a port is already in use (${(err as Error).message}); pick others with --https-port and --http-port (0 picks free ones).`);
      return 1;
    }
    throw err;
  }
  // An explicit flag beats the setting restored from saved state.
  if (plan.consentDelay !== undefined) emulator.ctx.directory.consentPropagationSeconds = plan.consentDelay;

  if (controlPath) {
    const file: ControlFile = { url: emulator.urls.control, token: emulator.ctx.controlToken, pid: process.pid };
    await writeFile(controlPath, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  }

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) {
      log(`${signal} again: exiting without waiting.`);
      process.exit(1);
    }
    stopping = true;
    let code = 0;
    try {
      if (dataDir) {
        const t0 = performance.now();
        await emulator.save();
        log(`State saved to ${stateFilePath(dataDir)} in ${Math.round(performance.now() - t0)} ms.`);
      }
    } catch (err) {
      log(`Could not save state: ${(err as Error).message}`);
      code = 1;
    }
    await emulator.close();
    if (controlPath) await rm(controlPath, { force: true });
    process.exit(code);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  const ready = readyLine(emulator);
  const users = ready.tenants.reduce((n, t) => n + t.users, 0);
  log(
    `Roster emulator ready in ${Math.round(performance.now() - started)} ms: ${ready.tenants.length} tenants, ${users} users.\n` +
      `  authority/Graph (https): ${ready.authority}   CA: ${ready.caCertPath ?? '(in memory; caCertPem in the ready line)'}\n` +
      `  pages (http):            ${ready.pages}\n` +
      `  control API:             ${ready.control}   (token in the ready line${controlPath ? ` and ${controlPath}` : ''})`,
  );
  // Last: whoever waits for this line finds everything above already written.
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  return 'running';
}

// ---- verbs ---------------------------------------------------------------------

const CONNECTION_OPTIONS = {
  'data-dir': { type: 'string' },
  'control-url': { type: 'string' },
  'control-token': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const USER_OPTIONS = {
  tenant: { type: 'string' },
  upn: { type: 'string' },
  id: { type: 'string' },
  name: { type: 'string' },
  'given-name': { type: 'string' },
  surname: { type: 'string' },
  mail: { type: 'string' },
  'job-title': { type: 'string' },
  department: { type: 'string' },
  office: { type: 'string' },
  'employee-id': { type: 'string' },
  'mobile-phone': { type: 'string' },
  password: { type: 'string' },
  admin: { type: 'boolean' },
  disabled: { type: 'boolean' },
  enabled: { type: 'boolean' },
  guest: { type: 'boolean' },
  json: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

type Values = Record<string, string | boolean | string[] | undefined>;

interface Verb {
  options: NonNullable<ParseArgsConfig['options']>;
  /** Names of the required positional arguments. */
  positionals?: string[];
  required?: string[];
  run(client: ControlClient, values: Values, positionals: string[]): Promise<unknown>;
}

const str = (v: Values, k: string): string | undefined => v[k] as string | undefined;

function userInputFrom(values: Values): UserInput {
  let input: UserInput = {};
  const json = str(values, 'json');
  if (json !== undefined) {
    try {
      input = JSON.parse(json) as UserInput;
    } catch (err) {
      throw new UsageError(`--json is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new UsageError('--json must be a JSON object of user properties');
  }
  const map: [string, keyof UserInput][] = [
    ['upn', 'userPrincipalName'],
    ['id', 'id'],
    ['name', 'displayName'],
    ['given-name', 'givenName'],
    ['surname', 'surname'],
    ['mail', 'mail'],
    ['job-title', 'jobTitle'],
    ['department', 'department'],
    ['office', 'officeLocation'],
    ['employee-id', 'employeeId'],
    ['mobile-phone', 'mobilePhone'],
    ['password', 'password'],
  ];
  for (const [flag, key] of map) {
    const value = str(values, flag);
    if (value !== undefined) (input as Record<string, unknown>)[key] = value;
  }
  if (values.admin !== undefined) input.admin = values.admin as boolean;
  if (values.disabled !== undefined) input.accountEnabled = !(values.disabled as boolean);
  if (values.enabled !== undefined) input.accountEnabled = values.enabled as boolean;
  if (values.guest !== undefined) input.userType = values.guest ? 'Guest' : 'Member';
  return input;
}

const TENANT_ONLY = { tenant: { type: 'string' } } as const;

const VERBS: Record<string, Verb> = {
  state: { options: {}, run: (c) => c.state() },
  'tenant list': { options: {}, run: async (c) => (await c.state()).tenants },
  'tenant add': {
    options: { name: { type: 'string' }, domain: { type: 'string', multiple: true }, id: { type: 'string' }, country: { type: 'string' }, users: { type: 'string' }, seed: { type: 'string' }, password: { type: 'string' }, consent: { type: 'boolean' } },
    required: ['name'],
    run: (c, v) => {
      const users = intFlag('users', str(v, 'users'), 0, 2_000_000);
      const seed = intFlag('seed', str(v, 'seed'), -2147483648, 4294967295);
      return c.addTenant({
        displayName: str(v, 'name')!,
        ...(v.domain ? { domains: v.domain as string[] } : {}),
        ...(str(v, 'id') ? { id: str(v, 'id')! } : {}),
        ...(str(v, 'country') ? { countryLetterCode: str(v, 'country')! } : {}),
        ...(users !== undefined ? { generateUsers: users } : {}),
        ...(seed !== undefined ? { seed } : {}),
        ...(str(v, 'password') ? { password: str(v, 'password')! } : {}),
        ...(v.consent ? { consent: true } : {}),
      });
    },
  },
  'tenant show': { options: {}, positionals: ['TENANT'], run: (c, _v, p) => c.getTenant(p[0]!) },
  'tenant edit': {
    options: { name: { type: 'string' }, country: { type: 'string' }, 'add-domain': { type: 'string', multiple: true } },
    positionals: ['TENANT'],
    run: (c, v, p) =>
      c.editTenant(p[0]!, {
        ...(str(v, 'name') ? { displayName: str(v, 'name')! } : {}),
        ...(str(v, 'country') ? { countryLetterCode: str(v, 'country')! } : {}),
        ...(v['add-domain'] ? { addDomains: v['add-domain'] as string[] } : {}),
      }),
  },
  'tenant remove': { options: {}, positionals: ['TENANT'], run: (c, _v, p) => c.removeTenant(p[0]!) },
  'tenant changes': {
    options: { 'since-seq': { type: 'string' }, limit: { type: 'string' } },
    positionals: ['TENANT'],
    run: (c, v, p) => c.changes(p[0]!, intFlag('since-seq', str(v, 'since-seq'), 0, Number.MAX_SAFE_INTEGER) ?? 0, intFlag('limit', str(v, 'limit'), 1, 1_000_000) ?? 1000),
  },
  'user add': { options: USER_OPTIONS, required: ['tenant'], run: (c, v) => c.addUser(str(v, 'tenant')!, userInputFrom(v)) },
  'user show': { options: TENANT_ONLY, positionals: ['USER'], required: ['tenant'], run: (c, v, p) => c.getUser(str(v, 'tenant')!, p[0]!) },
  'user edit': {
    options: USER_OPTIONS,
    positionals: ['USER'],
    required: ['tenant'],
    run: (c, v, p) => {
      const { id: _id, createdDateTime: _c, ...patch } = userInputFrom(v);
      if (Object.keys(patch).length === 0) throw new UsageError('user edit: give at least one property to change (e.g. --job-title "Lead")');
      return c.editUser(str(v, 'tenant')!, p[0]!, patch);
    },
  },
  'user delete': { options: TENANT_ONLY, positionals: ['USER'], required: ['tenant'], run: (c, v, p) => c.deleteUser(str(v, 'tenant')!, p[0]!) },
  'user purge': { options: TENANT_ONLY, positionals: ['USER'], required: ['tenant'], run: (c, v, p) => c.purgeUser(str(v, 'tenant')!, p[0]!) },
  'user restore': { options: TENANT_ONLY, positionals: ['USER'], required: ['tenant'], run: (c, v, p) => c.restoreUser(str(v, 'tenant')!, p[0]!) },
  'consent grant': { options: { tenant: { type: 'string' }, app: { type: 'string' } }, required: ['tenant'], run: (c, v) => c.grantConsent(str(v, 'tenant')!, str(v, 'app')) },
  'consent revoke': { options: { tenant: { type: 'string' }, app: { type: 'string' } }, required: ['tenant'], run: (c, v) => c.revokeConsent(str(v, 'tenant')!, str(v, 'app') ?? 'demo') },
  'keys rotate': { options: { 'drop-previous': { type: 'boolean' } }, run: (c, v) => c.rotateKeys({ dropPrevious: v['drop-previous'] === true }) },
  'delta expire': { options: TENANT_ONLY, required: ['tenant'], run: (c, v) => c.expireDelta(str(v, 'tenant')!) },
  'app show': { options: { app: { type: 'string' } }, run: (c, v) => c.getApp(str(v, 'app') ?? 'demo') },
  'app disable': { options: { app: { type: 'string' } }, run: (c, v) => c.disableApp(str(v, 'app') ?? 'demo') },
  'app enable': { options: { app: { type: 'string' } }, run: (c, v) => c.enableApp(str(v, 'app') ?? 'demo') },
  'fault add': {
    options: { target: { type: 'string' }, kind: { type: 'string' }, 'retry-after': { type: 'string' }, 'delay-ms': { type: 'string' }, share: { type: 'string' }, count: { type: 'string' }, tenant: { type: 'string' } },
    required: ['target', 'kind'],
    run: (c, v) => {
      const target = str(v, 'target')!;
      const kind = str(v, 'kind')!;
      if (!['graph', 'token', 'any'].includes(target)) throw new UsageError(`--target must be graph, token or any, not "${target}"`);
      if (!['throttle', 'unavailable', 'delay', 'drop'].includes(kind)) throw new UsageError(`--kind must be throttle, unavailable, delay or drop, not "${kind}"`);
      const share = numberFlag('share', str(v, 'share'), 0, 1);
      const count = intFlag('count', str(v, 'count'), 1, 1_000_000_000);
      if (share !== undefined && count !== undefined) throw new UsageError('give --share or --count, not both');
      const delayMs = intFlag('delay-ms', str(v, 'delay-ms'), 0, 600_000);
      const retryAfter = str(v, 'retry-after');
      if (retryAfter !== undefined) numberFlag('retry-after', retryAfter, 0, 86_400);
      return c.addFault({
        target: target as FaultTarget,
        kind: kind as FaultKind,
        ...(str(v, 'tenant') ? { tenant: str(v, 'tenant')! } : {}),
        ...(retryAfter !== undefined ? { retryAfter } : {}),
        ...(delayMs !== undefined ? { delayMs } : {}),
        ...(share !== undefined ? { share } : {}),
        ...(count !== undefined ? { count } : {}),
      });
    },
  },
  'fault list': { options: {}, run: (c) => c.listFaults() },
  'fault clear': { options: {}, run: (c) => c.clearFaults() },
  'fault remove': { options: {}, positionals: ['ID'], run: (c, _v, p) => c.removeFault(p[0]!) },
  requests: {
    options: { tenant: { type: 'string' }, route: { type: 'string' }, 'since-ms': { type: 'string' }, limit: { type: 'string' } },
    run: (c, v) => {
      const sinceMs = intFlag('since-ms', str(v, 'since-ms'), 0, Number.MAX_SAFE_INTEGER);
      const limit = intFlag('limit', str(v, 'limit'), 1, 1_000_000);
      return c.requests({
        ...(str(v, 'tenant') ? { tenant: str(v, 'tenant')! } : {}),
        ...(str(v, 'route') ? { route: str(v, 'route')! } : {}),
        ...(sinceMs !== undefined ? { sinceMs } : {}),
        ...(limit !== undefined ? { limit } : {}),
      });
    },
  },
  'requests clear': { options: {}, run: (c) => c.resetRequests() },
  stats: { options: {}, run: (c) => c.stats() },
  'clock advance': { options: { seconds: { type: 'string' } }, required: ['seconds'], run: (c, v) => c.advanceClock(numberFlag('seconds', str(v, 'seconds'), -1e9, 1e9)!) },
  settings: {
    options: { 'consent-delay': { type: 'string' }, 'missing-sp-error': { type: 'string' } },
    run: (c, v) => {
      const delay = numberFlag('consent-delay', str(v, 'consent-delay'), 0, 86_400);
      const code = str(v, 'missing-sp-error');
      if (code !== undefined && code !== '700016' && code !== '7000229') throw new UsageError('--missing-sp-error must be 700016 or 7000229');
      if (delay === undefined && code === undefined) return c.settings();
      return c.updateSettings({
        ...(delay !== undefined ? { consentPropagationSeconds: delay } : {}),
        ...(code !== undefined ? { missingServicePrincipalError: Number(code) as 700016 | 7000229 } : {}),
      });
    },
  },
  save: { options: {}, run: (c) => c.save() },
};

/** Words that start a verb (anything else after `roster emulator` is a start option). */
const VERB_WORDS = new Set(Object.keys(VERBS).map((k) => k.split(' ')[0]!));

async function clientFor(values: Values): Promise<ControlClient> {
  const url = str(values, 'control-url');
  const token = str(values, 'control-token');
  if (url !== undefined || token !== undefined) {
    if (!url || !token) throw new UsageError('--control-url and --control-token go together');
    if (!URL.canParse(url)) throw new UsageError(`--control-url is not a URL: "${url}"`);
    return new ControlClient(url, token);
  }
  return ControlClient.fromDataDir(resolve(str(values, 'data-dir') ?? DEFAULT_DATA_DIR));
}

/** Connects on the first request, so a verb's own checks (exit 2) come before "no emulator running" (exit 1). */
class DeferredClient extends ControlClient {
  readonly #connect: () => Promise<ControlClient>;
  #client: ControlClient | undefined;
  constructor(connect: () => Promise<ControlClient>) {
    super('http://localhost', '');
    this.#connect = connect;
  }
  override async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    this.#client ??= await this.#connect();
    return this.#client.request<T>(method, path, body);
  }
}

/** Runs one verb (`["user", "add", "--tenant", ...]`) and returns its result; throws UsageError or ControlError. */
export async function executeVerb(args: string[]): Promise<unknown> {
  const [word, second] = args;
  const twoWord = `${word} ${second}`;
  const name = second !== undefined && VERBS[twoWord] ? twoWord : word!;
  const verb = VERBS[name];
  if (!verb) {
    const subs = Object.keys(VERBS).filter((k) => k.startsWith(`${word} `)).map((k) => k.split(' ')[1]);
    throw new UsageError(`roster emulator ${word}: ${second === undefined ? 'missing' : `unknown`} sub-command${second === undefined ? '' : ` "${second}"`}; one of: ${subs.join(', ')}`);
  }
  const rest = args.slice(name.split(' ').length);
  const { values, positionals } = parse(rest, { ...CONNECTION_OPTIONS, ...verb.options }, `roster emulator ${name}`);
  if (values.help) return { help: EMULATOR_HELP };
  const wanted = verb.positionals ?? [];
  if (positionals.length < wanted.length) throw new UsageError(`roster emulator ${name}: missing ${wanted.slice(positionals.length).join(' ')}`);
  if (positionals.length > wanted.length) throw new UsageError(`roster emulator ${name}: unexpected argument "${positionals[wanted.length]}"`);
  for (const flag of verb.required ?? []) {
    if ((values as Values)[flag] === undefined) throw new UsageError(`roster emulator ${name}: --${flag} is required`);
  }
  return verb.run(new DeferredClient(() => clientFor(values as Values)), values as Values, positionals);
}

async function runVerb(args: string[]): Promise<number> {
  const result = await executeVerb(args);
  const help = (result as { help?: unknown } | null)?.help;
  process.stdout.write(typeof help === 'string' ? help : `${JSON.stringify(result, null, 2)}\n`);
  return 0;
}

/** `roster emulator ...`: start it, or drive a running one. Returns the exit code, or 'running'. */
export async function emulatorCommand(args: string[]): Promise<number | 'running'> {
  try {
    if (args[0] !== undefined && VERB_WORDS.has(args[0])) return await runVerb(args);
    return await startCommand(args);
  } catch (err) {
    return reportError('roster emulator', err);
  }
}

function reportError(command: string, err: unknown): number {
  if (err instanceof UsageError) {
    log(`${err.message}\nSee: roster emulator --help`);
    return 2;
  }
  if (err instanceof ControlError) {
    log(`${command}: ${err.message}`);
    return 1;
  }
  log(`${command}: ${(err as Error).stack ?? String(err)}`);
  return 1;
}
