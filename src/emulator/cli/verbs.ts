import { resolve } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { ControlClient, type FaultInput, type NewGroup, type NewTenant, type Settings } from '../control-client.ts';
import type { FaultKind, FaultTarget } from '../faults.ts';
import type { UserInput } from '../model.ts';
import { intFlag, numberFlag, parse, UsageError } from './flags.ts';
import { DEFAULT_DATA_DIR, EMULATOR_HELP } from './help.ts';

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

const GROUP_OPTIONS = {
  tenant: { type: 'string' },
  name: { type: 'string' },
  kind: { type: 'string' },
  rule: { type: 'string' },
  description: { type: 'string' },
  nickname: { type: 'string' },
  mail: { type: 'string' },
  id: { type: 'string' },
  member: { type: 'string', multiple: true },
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

/** The `--json` flag as an object of properties (empty when absent). */
function jsonFlag<T extends object>(values: Values, what: string): T {
  const json = str(values, 'json');
  if (json === undefined) return {} as T;
  let input: unknown;
  try {
    input = JSON.parse(json);
  } catch (err) {
    throw new UsageError(`--json is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new UsageError(`--json must be a JSON object of ${what} properties`);
  return input as T;
}

function userInputFrom(values: Values): UserInput {
  const input = jsonFlag<UserInput>(values, 'user');
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

const GROUP_KIND_NAMES = ['security', 'microsoft365', 'distribution', 'dynamic'] as const;

/** `group add` and `group edit` flags (and `--json` for any Graph property) as control API input. */
function groupInputFrom(values: Values): NewGroup {
  const input = jsonFlag<Partial<NewGroup>>(values, 'group');
  const kind = str(values, 'kind');
  if (kind !== undefined) {
    if (!(GROUP_KIND_NAMES as readonly string[]).includes(kind)) throw new UsageError(`--kind must be ${GROUP_KIND_NAMES.join(', ')}, not "${kind}"`);
    input.kind = kind as NewGroup['kind'];
  }
  Object.assign(input, copiedFlags(values, [['name', 'displayName'], ['rule', 'membershipRule'], ['description', 'description'], ['nickname', 'mailNickname'], ['mail', 'mail'], ['id', 'id']]));
  if (values.member) input.members = values.member as string[];
  return input as NewGroup;
}

const TENANT_ONLY = { tenant: { type: 'string' } } as const;

/** Flags whose value is copied as given when present: `[flag, field]`. */
function copiedFlags(values: Values, pairs: readonly (readonly [string, string])[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [flag, field] of pairs) {
    const value = str(values, flag);
    if (value) out[field] = value;
  }
  return out;
}

function newTenantFrom(v: Values): NewTenant {
  const users = intFlag('users', str(v, 'users'), 0, 2_000_000);
  const groups = intFlag('groups', str(v, 'groups'), 0, 100_000);
  const seed = intFlag('seed', str(v, 'seed'), -2147483648, 4294967295);
  return {
    displayName: str(v, 'name')!,
    ...(v.domain ? { domains: v.domain as string[] } : {}),
    ...copiedFlags(v, [['id', 'id'], ['country', 'countryLetterCode'], ['password', 'password']]),
    ...(users !== undefined ? { generateUsers: users } : {}),
    ...(groups !== undefined ? { generateGroups: groups } : {}),
    ...(seed !== undefined ? { seed } : {}),
    ...(v.consent ? { consent: true } : {}),
  };
}

function faultFrom(v: Values): FaultInput {
  const target = str(v, 'target')!;
  const kind = str(v, 'kind')!;
  if (!['graph', 'token', 'notification', 'any'].includes(target)) throw new UsageError(`--target must be graph, token, notification or any, not "${target}"`);
  if (!['throttle', 'unavailable', 'delay', 'drop'].includes(kind)) throw new UsageError(`--kind must be throttle, unavailable, delay or drop, not "${kind}"`);
  const share = numberFlag('share', str(v, 'share'), 0, 1);
  const count = intFlag('count', str(v, 'count'), 1, 1_000_000_000);
  if (share !== undefined && count !== undefined) throw new UsageError('give --share or --count, not both');
  const delayMs = intFlag('delay-ms', str(v, 'delay-ms'), 0, 600_000);
  const retryAfter = str(v, 'retry-after');
  if (retryAfter !== undefined) numberFlag('retry-after', retryAfter, 0, 86_400);
  return {
    target: target as FaultTarget,
    kind: kind as FaultKind,
    ...copiedFlags(v, [['tenant', 'tenant']]),
    ...(retryAfter !== undefined ? { retryAfter } : {}),
    ...(delayMs !== undefined ? { delayMs } : {}),
    ...(share !== undefined ? { share } : {}),
    ...(count !== undefined ? { count } : {}),
  };
}

function deleteManyFrom(v: Values): { share?: number; count?: number; permanent: boolean; seed?: number } {
  const share = numberFlag('share', str(v, 'share'), 0, 1);
  const count = intFlag('count', str(v, 'count'), 0, 5_000_000);
  if ((share === undefined) === (count === undefined)) throw new UsageError('user delete-many: give --share (0..1 of the users) or --count N');
  const seed = intFlag('seed', str(v, 'seed'), -2147483648, 4294967295);
  return { ...(share !== undefined ? { share } : {}), ...(count !== undefined ? { count } : {}), permanent: v.permanent === true, ...(seed !== undefined ? { seed } : {}) };
}

function requestFilterFrom(v: Values): { tenant?: string; route?: string; sinceMs?: number; limit?: number } {
  const sinceMs = intFlag('since-ms', str(v, 'since-ms'), 0, Number.MAX_SAFE_INTEGER);
  const limit = intFlag('limit', str(v, 'limit'), 1, 1_000_000);
  return {
    ...copiedFlags(v, [['tenant', 'tenant'], ['route', 'route']]),
    ...(sinceMs !== undefined ? { sinceMs } : {}),
    ...(limit !== undefined ? { limit } : {}),
  };
}

function settingsUpdateFrom(v: Values): Partial<Settings> {
  const delay = numberFlag('consent-delay', str(v, 'consent-delay'), 0, 86_400);
  const code = str(v, 'missing-sp-error');
  if (code !== undefined && code !== '700016' && code !== '7000229') throw new UsageError('--missing-sp-error must be 700016 or 7000229');
  return {
    ...(delay !== undefined ? { consentPropagationSeconds: delay } : {}),
    ...(code !== undefined ? { missingServicePrincipalError: Number(code) as 700016 | 7000229 } : {}),
  };
}

const VERBS: Record<string, Verb> = {
  state: { options: {}, run: (c) => c.state() },
  'tenant list': { options: {}, run: async (c) => (await c.state()).tenants },
  'tenant add': {
    options: { name: { type: 'string' }, domain: { type: 'string', multiple: true }, id: { type: 'string' }, country: { type: 'string' }, users: { type: 'string' }, groups: { type: 'string' }, seed: { type: 'string' }, password: { type: 'string' }, consent: { type: 'boolean' } },
    required: ['name'],
    run: (c, v) => c.addTenant(newTenantFrom(v)),
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
  'user delete-many': {
    options: { tenant: { type: 'string' }, share: { type: 'string' }, count: { type: 'string' }, permanent: { type: 'boolean' }, seed: { type: 'string' } },
    required: ['tenant'],
    run: (c, v) => c.deleteManyUsers(str(v, 'tenant')!, deleteManyFrom(v)),
  },
  'group add': {
    options: GROUP_OPTIONS,
    required: ['tenant', 'name'],
    run: (c, v) => c.addGroup(str(v, 'tenant')!, groupInputFrom(v)),
  },
  'group list': { options: TENANT_ONLY, required: ['tenant'], run: (c, v) => c.listGroups(str(v, 'tenant')!) },
  'group show': { options: TENANT_ONLY, positionals: ['GROUP'], required: ['tenant'], run: (c, v, p) => c.getGroup(str(v, 'tenant')!, p[0]!) },
  'group edit': {
    options: GROUP_OPTIONS,
    positionals: ['GROUP'],
    required: ['tenant'],
    run: (c, v, p) => {
      const { id, kind, members, ...patch } = groupInputFrom(v);
      if (id !== undefined || kind !== undefined || members !== undefined) throw new UsageError('group edit: --id, --kind and --member are for group add (members change with group member add|remove)');
      if (Object.keys(patch).length === 0) throw new UsageError('group edit: give at least one property to change (e.g. --description "...")');
      return c.editGroup(str(v, 'tenant')!, p[0]!, patch);
    },
  },
  'group delete': { options: TENANT_ONLY, positionals: ['GROUP'], required: ['tenant'], run: (c, v, p) => c.deleteGroup(str(v, 'tenant')!, p[0]!) },
  'group purge': { options: TENANT_ONLY, positionals: ['GROUP'], required: ['tenant'], run: (c, v, p) => c.purgeGroup(str(v, 'tenant')!, p[0]!) },
  'group restore': { options: TENANT_ONLY, positionals: ['GROUP'], required: ['tenant'], run: (c, v, p) => c.restoreGroup(str(v, 'tenant')!, p[0]!) },
  'group member add': { options: TENANT_ONLY, positionals: ['GROUP', 'MEMBER'], required: ['tenant'], run: (c, v, p) => c.addGroupMember(str(v, 'tenant')!, p[0]!, p[1]!) },
  'group member remove': { options: TENANT_ONLY, positionals: ['GROUP', 'MEMBER'], required: ['tenant'], run: (c, v, p) => c.removeGroupMember(str(v, 'tenant')!, p[0]!, p[1]!) },
  'consent grant': {
    options: { tenant: { type: 'string' }, app: { type: 'string' }, role: { type: 'string', multiple: true } },
    required: ['tenant'],
    run: (c, v) => c.grantConsent(str(v, 'tenant')!, str(v, 'app'), v.role as string[] | undefined),
  },
  'consent revoke': {
    options: { tenant: { type: 'string' }, app: { type: 'string' }, 'revoke-tokens': { type: 'boolean' } },
    required: ['tenant'],
    run: (c, v) => c.revokeConsent(str(v, 'tenant')!, str(v, 'app') ?? 'demo', { revokeTokens: v['revoke-tokens'] === true }),
  },
  'keys rotate': { options: { 'drop-previous': { type: 'boolean' } }, run: (c, v) => c.rotateKeys({ dropPrevious: v['drop-previous'] === true }) },
  'delta expire': { options: TENANT_ONLY, required: ['tenant'], run: (c, v) => c.expireDelta(str(v, 'tenant')!) },
  'app show': { options: { app: { type: 'string' } }, run: (c, v) => c.getApp(str(v, 'app') ?? 'demo') },
  'app disable': { options: { app: { type: 'string' } }, run: (c, v) => c.disableApp(str(v, 'app') ?? 'demo') },
  'app enable': { options: { app: { type: 'string' } }, run: (c, v) => c.enableApp(str(v, 'app') ?? 'demo') },
  'fault add': {
    options: { target: { type: 'string' }, kind: { type: 'string' }, 'retry-after': { type: 'string' }, 'delay-ms': { type: 'string' }, share: { type: 'string' }, count: { type: 'string' }, tenant: { type: 'string' } },
    required: ['target', 'kind'],
    run: (c, v) => c.addFault(faultFrom(v)),
  },
  'fault list': { options: {}, run: (c) => c.listFaults() },
  'subscription list': { options: TENANT_ONLY, run: (c, v) => c.subscriptions(str(v, 'tenant')) },
  'subscription lifecycle': {
    options: { event: { type: 'string' } },
    positionals: ['ID'],
    run: (c, v, p) => {
      const event = str(v, 'event') ?? 'reauthorizationRequired';
      if (event !== 'reauthorizationRequired') throw new UsageError('--event must be reauthorizationRequired (the only lifecycle event Graph sends for users and groups)');
      return c.sendLifecycleEvent(p[0]!, event);
    },
  },
  'fault clear': { options: {}, run: (c) => c.clearFaults() },
  'fault remove': { options: {}, positionals: ['ID'], run: (c, _v, p) => c.removeFault(p[0]!) },
  requests: {
    options: { tenant: { type: 'string' }, route: { type: 'string' }, 'since-ms': { type: 'string' }, limit: { type: 'string' } },
    run: (c, v) => c.requests(requestFilterFrom(v)),
  },
  'requests clear': { options: {}, run: (c) => c.resetRequests() },
  stats: { options: {}, run: (c) => c.stats() },
  'clock advance': { options: { seconds: { type: 'string' } }, required: ['seconds'], run: (c, v) => c.advanceClock(numberFlag('seconds', str(v, 'seconds'), -1e9, 1e9)!) },
  settings: {
    options: { 'consent-delay': { type: 'string' }, 'missing-sp-error': { type: 'string' } },
    run: (c, v) => {
      const update = settingsUpdateFrom(v);
      return Object.keys(update).length === 0 ? c.settings() : c.updateSettings(update);
    },
  },
  save: { options: {}, run: (c) => c.save() },
};

/** Words that start a verb (anything else after `roster emulator` is a start option). */
export const VERB_WORDS = new Set(Object.keys(VERBS).map((k) => k.split(' ')[0]!));

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
  const [word, second, third] = args;
  const twoWord = `${word} ${second}`;
  const threeWord = `${twoWord} ${third}`;
  const name = third !== undefined && VERBS[threeWord] ? threeWord : second !== undefined && VERBS[twoWord] ? twoWord : word!;
  const verb = VERBS[name];
  if (!verb) {
    // `group member` lists add and remove; `group` lists its own words (member once).
    const nested = second !== undefined && Object.keys(VERBS).some((k) => k.startsWith(`${twoWord} `));
    const prefix = nested ? twoWord : word!;
    const asked = nested ? third : second;
    const depth = prefix.split(' ').length;
    const subs = [...new Set(Object.keys(VERBS).filter((k) => k.startsWith(`${prefix} `)).map((k) => k.split(' ')[depth]))];
    throw new UsageError(`roster emulator ${prefix}: ${asked === undefined ? 'missing' : 'unknown'} sub-command${asked === undefined ? '' : ` "${asked}"`}; one of: ${subs.join(', ')}`);
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

export async function runVerb(args: string[]): Promise<number> {
  const result = await executeVerb(args);
  const help = (result as { help?: unknown } | null)?.help;
  process.stdout.write(typeof help === 'string' ? help : `${JSON.stringify(result, null, 2)}\n`);
  return 0;
}

