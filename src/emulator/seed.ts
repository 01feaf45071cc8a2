// Over 400 lines on purpose: the three ways to fill a directory (generator, demo, fixture) share its name lists, GUID helpers and checks.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { asciiSlug } from './ascii.ts';
import { seededRandom } from './random.ts';
import { generateGroups } from './seed-groups.ts';
import { GROUP_MEMBERSHIP_CLAIMS, isGuid, type AppRegistration, type Directory, type Tenant, type TenantInput, type UserInput } from './model.ts';

/** Mixed into a seed for the group stream, so generated group ids never repeat the users'. */
export const GROUP_SEED_SALT = 0x6709;

/** Password of every generated user unless told otherwise. */
export const DEFAULT_PASSWORD = 'roster-demo';

export interface GeneratedTenantSpec {
  users: number;
  /** Groups generated over those users (none when absent). */
  groups?: number;
  /** Grant admin consent to the demo app at seeding time. */
  consented?: boolean;
}

export type SeedSource =
  | {
      kind: 'generate';
      tenants: number;
      usersPerTenant: number;
      /** Groups per tenant (`--groups`); none when absent. */
      groupsPerTenant?: number;
      seed: number;
      /** The first N tenants start with admin consent granted to the demo app. */
      consentedTenants?: number;
      password?: string;
    }
  | { kind: 'fixture'; path: string }
  /** The demo directory of `roster demo`: Contoso, Fabrikam and Northwind Traders. */
  | { kind: 'demo'; password?: string };

/** The demo seed: a consented mid-size tenant, a newcomer, and a large consented tenant. */
export const DEMO_TENANTS: readonly GeneratedTenantSpec[] = [
  { users: 300, groups: 8, consented: true },
  { users: 60, groups: 4, consented: false },
  { users: 25_000, groups: 300, consented: true },
];
const DEMO_SEED = 2024;

export async function applySeed(directory: Directory, source: SeedSource, demoAppId: string): Promise<void> {
  switch (source.kind) {
    case 'generate': {
      const consented = source.consentedTenants ?? 0;
      const specs = Array.from({ length: source.tenants }, (_, i) => ({ users: source.usersPerTenant, groups: source.groupsPerTenant ?? 0, consented: i < consented }));
      generateTenants(directory, specs, { seed: source.seed, password: source.password ?? DEFAULT_PASSWORD, demoAppId });
      return;
    }
    case 'demo':
      generateTenants(directory, DEMO_TENANTS, { seed: DEMO_SEED, password: source.password ?? DEFAULT_PASSWORD, demoAppId });
      return;
    case 'fixture':
      applyFixture(directory, await readFixture(source.path), source.path, demoAppId);
      return;
  }
}

// ---- the deterministic generator ---------------------------------------------

const COMPANY_NAMES = [
  'Contoso',
  'Fabrikam',
  'Northwind Traders',
  'Tailspin Toys',
  'Woodgrove Bank',
  'Litware',
  'Adatum',
  'Proseware',
  'Wingtip Toys',
  'Fourth Coffee',
  'Alpine Ski House',
  'Coho Winery',
  'Lucerne Publishing',
  "Margie's Travel",
  'Trey Research',
  'Wide World Importers',
  'Blue Yonder Airlines',
  'Humongous Insurance',
  'Relecloud',
  'VanArsdel',
];
const COUNTRIES = ['US', 'GB', 'DE', 'FR', 'NL', 'SE', 'JP', 'AU', 'CA', 'IN', 'BR', 'ES', 'IT', 'NO', 'DK'];
const GIVEN_NAMES = [
  'Adele', 'Alex', 'Allan', 'Amara', 'Ana', 'Ben', 'Carlos', 'Chen', 'Chloé', 'Christie', 'Daniel', 'Diego', 'Emily', 'Enrico',
  'Fatima', 'Grady', 'Hannah', 'Henrietta', 'Hiroshi', 'Isaiah', 'Jo', 'Johanna', 'José', 'Karin', 'Lee', 'Lidia', 'Liam',
  'Lynne', 'Megan', 'Miriam', 'Nestor', 'Noah', 'Olivia', 'Patti', 'Pradeep', 'Priya', 'Rafael', 'Sakura', 'Siobhán', 'Sofia',
  'Søren', 'Tomás', 'Wei', 'Yusuf', 'Zoë',
];
const SURNAMES = [
  'Adams', 'Bowen', 'Brown', 'Chen', 'Cruz', "D'Souza", 'Deyo', 'Dubois', 'García', 'Gonzalez', 'Gupta', 'Hansen', 'Holt',
  'Ito', 'Johnson', 'Kim', 'Lambert', 'Lee', 'Lindqvist', 'Martin', 'Mittal', 'Müller', 'Nakamura', "O'Brien", "O'Connor",
  'Okafor', 'Patel', 'Petersen', 'Rossi', 'Schmidt', 'Silva', 'Smith', 'Steiner', 'Tanaka', 'Taylor', 'Vance', 'Wilber',
  'Williams', 'Wu', 'Zhang',
];
const DEPARTMENTS = ['Sales & Marketing', 'R&D', 'Finance', 'Human Resources', 'Operations', 'Legal', 'IT', 'Customer Success', 'Engineering', 'Executive Management'];
const JOB_TITLES = [
  'Account Manager', 'R&D Engineer', 'Head of Sales & Marketing', 'Financial Analyst', 'HR Generalist', 'Operations Manager',
  'Paralegal', 'Support Engineer', 'Software Engineer', 'Product Manager', 'Director', 'Marketing Assistant', 'Accountant',
  'Research Scientist', 'Project Manager', 'Data Analyst',
];
const OFFICES = ['Building 1', 'Building 4, Floor 2', 'Seattle', 'London', 'Berlin', 'Paris', 'Tokyo', 'Sydney', 'Remote', 'São Paulo'];
const GUEST_DOMAINS = ['outlook.com', 'treyresearch.net', 'margiestravel.com', 'alpineskihouse.com', 'cohowinery.com'];

const GIVEN_SLUGS = GIVEN_NAMES.map(asciiSlug);
const SURNAME_SLUGS = SURNAMES.map(asciiSlug);

/** Share of generated users that are disabled, and that are guests. */
const DISABLED_SHARE = 0.02;
const GUEST_SHARE = 0.03;
/** Generated accounts were created between these instants (deterministic, unlike "now"). */
const CREATED_FROM_MS = Date.UTC(2019, 0, 1);
const CREATED_SPAN_MS = 5 * 365 * 86_400_000;

const HEX_CODES = Buffer.from('0123456789abcdef', 'latin1');
const guidBuffer = Buffer.alloc(36);

/**
 * A version-4-shaped GUID from a seeded PRNG. Written into a buffer so the
 * result is one flat string (a million concatenated ones cost seconds of GC).
 */
export function seededGuid(random: () => number): string {
  let pos = 0;
  for (let word = 0; word < 4; word++) {
    let w = Math.floor(random() * 4294967296) >>> 0;
    if (word === 1) w = (w & 0xffff0fff) | 0x4000;
    if (word === 2) w = (w & 0x3fffffff) | 0x80000000;
    for (let nibble = 7; nibble >= 0; nibble--) {
      if (pos === 8 || pos === 13 || pos === 18 || pos === 23) guidBuffer[pos++] = 0x2d;
      guidBuffer[pos++] = HEX_CODES[(w >>> (nibble * 4)) & 0xf]!;
    }
  }
  return guidBuffer.toString('latin1', 0, 36);
}

/** Mixes a seed with an index so each tenant has its own stream (adding tenants changes no earlier one). */
function mixSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export interface GeneratedTenant extends TenantInput {
  id: string;
  slug: string;
}

/** Tenant number `index` of the generator: name, domains and country depend on the index, the GUID on the seed too. */
export function generatedTenantInput(seed: number, index: number): GeneratedTenant {
  const random = seededRandom(mixSeed(seed, index));
  const base = COMPANY_NAMES[index % COMPANY_NAMES.length]!;
  const round = Math.floor(index / COMPANY_NAMES.length);
  const displayName = round === 0 ? base : `${base} ${round + 1}`;
  const slug = asciiSlug(displayName);
  const id = seededGuid(random);
  return {
    id,
    slug,
    displayName,
    domains: [`${slug}.onmicrosoft.com`, `${slug}.com`],
    countryLetterCode: COUNTRIES[index % COUNTRIES.length]!,
    createdDateTime: new Date(CREATED_FROM_MS - Math.floor(random() * CREATED_SPAN_MS)).toISOString(),
  };
}

export interface GenerateUsersOptions {
  count: number;
  seed: number;
  password: string;
  /** The first user is `admin@<default domain>`, a global administrator. */
  withAdmin?: boolean;
}

/**
 * Users for one tenant, lazily (a million-user tenant never exists twice in
 * memory). Member UPNs use the tenant's default domain, guests its initial one.
 */
export function* generateUsers(tenant: Pick<Tenant, 'displayName' | 'domains' | 'defaultDomain'>, options: GenerateUsersOptions): Generator<UserInput> {
  const random = seededRandom(options.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const initialDomain = tenant.domains[0]!;
  const upnSuffix = `@${tenant.defaultDomain}`;
  const companyName = tenant.displayName;
  const password = options.password;
  const taken = new Uint32Array(GIVEN_NAMES.length * SURNAMES.length);
  const displayNames = GIVEN_NAMES.flatMap((g) => SURNAMES.map((s) => `${g} ${s}`));
  const locals = GIVEN_SLUGS.flatMap((g) => SURNAME_SLUGS.map((s) => `${g}.${s}`));
  const withAdmin = options.withAdmin ?? true;
  for (let i = 0; i < options.count; i++) {
    const id = seededGuid(random);
    const g = Math.floor(random() * GIVEN_NAMES.length);
    const s = Math.floor(random() * SURNAMES.length);
    const roll = random();
    const createdDateTime = createdAt(random());
    const phone = Math.floor(random() * PHONE_SUFFIXES.length);
    const user: UserInput = {
      id,
      givenName: GIVEN_NAMES[g]!,
      surname: SURNAMES[s]!,
      displayName: displayNames[g * SURNAMES.length + s]!,
      createdDateTime,
      password,
      officeLocation: pick(OFFICES),
      businessPhones: roll < 0.5 ? BUSINESS_PHONE_LISTS[phone]! : NO_PHONES,
      jobTitle: null,
      department: null,
      employeeId: null,
      companyName: null,
      mobilePhone: null,
    };
    if (i === 0 && withAdmin) {
      user.userPrincipalName = `admin${upnSuffix}`;
      user.jobTitle = 'IT Administrator';
      user.department = 'IT';
      user.employeeId = String(100_000 + i);
      user.companyName = companyName;
      user.mobilePhone = MOBILE_PHONES[phone]!;
      user.admin = true;
      yield user;
      continue;
    }
    const n = taken[g * SURNAMES.length + s]!++;
    const local = n === 0 ? locals[g * SURNAMES.length + s]! : `${locals[g * SURNAMES.length + s]!}${n + 1}`;
    if (roll > 1 - GUEST_SHARE) {
      const home = pick(GUEST_DOMAINS);
      user.userPrincipalName = `${local}_${home}#EXT#@${initialDomain}`;
      user.mail = `${local}@${home}`;
      user.userType = 'Guest';
      yield user;
      continue;
    }
    user.userPrincipalName = local + upnSuffix;
    user.jobTitle = pick(JOB_TITLES);
    user.department = pick(DEPARTMENTS);
    user.employeeId = String(100_000 + i);
    user.companyName = companyName;
    if (roll < 0.8) user.mobilePhone = MOBILE_PHONES[phone]!;
    if (roll > 1 - GUEST_SHARE - DISABLED_SHARE) user.accountEnabled = false;
    yield user;
  }
}

const PHONE_SUFFIXES = Array.from({ length: 10_000 }, (_, i) => String(i).padStart(4, '0'));
const DAY_PREFIXES = Array.from({ length: CREATED_SPAN_MS / 86_400_000 }, (_, d) => new Date(CREATED_FROM_MS + d * 86_400_000).toISOString().slice(0, 11));
const TIMES = Array.from({ length: 1440 }, (_, m) => `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}:${String((m * 7) % 60).padStart(2, '0')}Z`);
const MOBILE_PHONES = PHONE_SUFFIXES.map((p) => `+1 206 555 ${p}`);
// Shared, frozen lists: a million users need not carry a million arrays (edits replace, never mutate, them).
const BUSINESS_PHONE_LISTS = PHONE_SUFFIXES.map((p) => Object.freeze([`+1 425 555 ${p}`]) as string[]);
const NO_PHONES = Object.freeze([]) as unknown as string[];

/** An ISO instant in the generator's creation window, built from shared pieces (no Date per user). */
function createdAt(r: number): string {
  const minutes = Math.floor(r * DAY_PREFIXES.length * 1440);
  return DAY_PREFIXES[Math.floor(minutes / 1440)]! + TIMES[minutes % 1440]!;
}

/** Builds generated tenants (tenant `i` of `seed` is always the same) and their users. */
export function generateTenants(
  directory: Directory,
  specs: readonly GeneratedTenantSpec[],
  options: { seed: number; password: string; demoAppId: string; firstIndex?: number },
): Tenant[] {
  const app = directory.requireApp(options.demoAppId);
  const first = options.firstIndex ?? 0;
  return specs.map((spec, i) => {
    const index = first + i;
    const input = generatedTenantInput(options.seed, index);
    const tenant = directory.addTenant(input);
    directory.addUsersUnchecked(tenant, generateUsers(tenant, { count: spec.users, seed: mixSeed(options.seed ^ 0x5eed, index), password: options.password }));
    if (spec.groups) directory.addGroupsUnchecked(tenant, generateGroups(tenant, { count: spec.groups, seed: mixSeed(options.seed ^ GROUP_SEED_SALT, index), guid: seededGuid }));
    if (spec.consented) grantSeededConsent(directory, tenant, app, seededRandom(mixSeed(options.seed ^ 0xc0, index)));
    return tenant;
  });
}

/** Consent that was granted long before the emulator started: already propagated, stable id. */
function grantSeededConsent(directory: Directory, tenant: Tenant, app: AppRegistration, random: () => number): void {
  const sp = directory.grantAdminConsent(tenant, app);
  sp.id = seededGuid(random);
  sp.readyAtMs = 0;
}

// ---- fixtures ----------------------------------------------------------------

const nullableString = z.string().nullable().optional();
const fixtureUserSchema = z.strictObject({
  id: z.string().regex(/^[0-9a-f-]{36}$/i, 'must be a GUID').optional(),
  userPrincipalName: z.string().regex(/^[^@\s]+@[^@\s]+$/, 'must look like name@domain'),
  displayName: z.string().min(1).optional(),
  givenName: nullableString,
  surname: nullableString,
  mail: nullableString,
  jobTitle: nullableString,
  department: nullableString,
  officeLocation: nullableString,
  accountEnabled: z.boolean().optional(),
  userType: z.enum(['Member', 'Guest']).optional(),
  createdDateTime: z.iso.datetime().optional(),
  employeeId: nullableString,
  companyName: nullableString,
  mobilePhone: nullableString,
  businessPhones: z.array(z.string()).optional(),
  admin: z.boolean().optional(),
  password: z.string().min(1).optional(),
});

const domainSchema = z.string().regex(/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i, 'must be a domain name like contoso.com');

const fixtureTenantSchema = z.strictObject({
  id: z.string().refine(isGuid, 'must be a GUID').optional(),
  displayName: z.string().min(1),
  domains: z.array(domainSchema).min(1),
  countryLetterCode: z.string().regex(/^[A-Z]{2}$/, 'must be two capital letters').optional(),
  consented: z.boolean().optional(),
  /** Further app registrations (of this fixture) that this tenant consented to. */
  consentedApps: z.array(z.string()).optional(),
  users: z.array(fixtureUserSchema).default([]),
});

const fixtureAppSchema = z.strictObject({
  appId: z.string().refine(isGuid, 'must be a GUID'),
  displayName: z.string().min(1),
  redirectUris: z.array(z.url()),
  postLogoutRedirectUris: z.array(z.url()).optional(),
  secrets: z.array(z.strictObject({ value: z.string().min(1), expiresAt: z.iso.datetime().optional() })).optional(),
  requiredAppRoles: z.array(z.string()).optional(),
  signInAudience: z.enum(['AzureADMyOrg', 'AzureADMultipleOrgs']).optional(),
  disabled: z.boolean().optional(),
  groupMembershipClaims: z.enum(GROUP_MEMBERSHIP_CLAIMS).optional(),
});

export const fixtureSchema = z.strictObject({
  $schema: z.string().optional(),
  description: z.string().optional(),
  tenants: z.array(fixtureTenantSchema),
  apps: z.array(fixtureAppSchema).optional(),
});

export type Fixture = z.infer<typeof fixtureSchema>;

/** A fixture that cannot be used; the message names the file and the field. */
export class FixtureError extends Error {}

/** `tenants[0].users[3].userPrincipalName` from a zod issue path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out || '(top level)';
}

export async function readFixture(path: string): Promise<Fixture> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FixtureError(`fixture ${path}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FixtureError(`fixture ${path}: not valid JSON (${(err as Error).message})`);
  }
  return parseFixture(json, path);
}

/** Validates a fixture: schema first, then what a schema cannot see (duplicates, UPN domains, app references). */
export function parseFixture(json: unknown, path: string): Fixture {
  const parsed = fixtureSchema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 10).map((issue) => `fixture ${path} ${formatPath(issue.path)}: ${issue.message}`);
    throw new FixtureError(lines.join('\n'));
  }
  const fixture = parsed.data;
  const problems: string[] = [];
  const where = (p: PropertyKey[], message: string): void => {
    problems.push(`fixture ${path} ${formatPath(p)}: ${message}`);
  };
  const domainOwner = new Map<string, string>();
  const tenantIds = new Set<string>();
  const appIds = new Set((fixture.apps ?? []).map((a) => a.appId.toLowerCase()));
  (fixture.apps ?? []).forEach((app, a) => {
    if ((fixture.apps ?? []).findIndex((x) => x.appId.toLowerCase() === app.appId.toLowerCase()) !== a) where(['apps', a, 'appId'], `duplicate app ${app.appId}`);
  });
  fixture.tenants.forEach((tenant, t) => {
    if (tenant.id) {
      if (tenantIds.has(tenant.id.toLowerCase())) where(['tenants', t, 'id'], `duplicate tenant id ${tenant.id}`);
      tenantIds.add(tenant.id.toLowerCase());
    }
    tenant.domains.forEach((domain, d) => {
      const key = domain.toLowerCase();
      const owner = domainOwner.get(key);
      if (owner) where(['tenants', t, 'domains', d], `duplicate domain ${domain} (already at ${owner})`);
      else domainOwner.set(key, `tenants[${t}].domains[${d}]`);
    });
    (tenant.consentedApps ?? []).forEach((appId, c) => {
      if (!appIds.has(appId.toLowerCase())) where(['tenants', t, 'consentedApps', c], `no app ${appId} among the fixture's apps`);
    });
    const domains = new Set(tenant.domains.map((d) => d.toLowerCase()));
    const upns = new Map<string, number>();
    const ids = new Map<string, number>();
    tenant.users.forEach((user, u) => {
      const upn = user.userPrincipalName.toLowerCase();
      const upnDomain = upn.slice(upn.lastIndexOf('@') + 1);
      if (!domains.has(upnDomain)) where(['tenants', t, 'users', u, 'userPrincipalName'], `${user.userPrincipalName} does not end with one of the tenant's domains (${tenant.domains.join(', ')})`);
      const seen = upns.get(upn);
      if (seen !== undefined) where(['tenants', t, 'users', u, 'userPrincipalName'], `duplicate userPrincipalName ${user.userPrincipalName} (also users[${seen}])`);
      else upns.set(upn, u);
      if (user.id) {
        const before = ids.get(user.id.toLowerCase());
        if (before !== undefined) where(['tenants', t, 'users', u, 'id'], `duplicate user id ${user.id} (also users[${before}])`);
        else ids.set(user.id.toLowerCase(), u);
      }
    });
  });
  if (problems.length > 0) throw new FixtureError(problems.slice(0, 10).join('\n'));
  return fixture;
}

/** A stable GUID from a name, so fixtures without ids give the same ids on every start. */
function nameGuid(name: string): string {
  const bytes = createHash('sha256').update(`roster-emulator:${name}`).digest();
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export function applyFixture(directory: Directory, fixture: Fixture, path: string, demoAppId: string): void {
  for (const app of fixture.apps ?? []) {
    if (directory.apps.has(app.appId)) throw new FixtureError(`fixture ${path}: app ${app.appId} already exists`);
  }
  for (const [t, tenant] of fixture.tenants.entries()) {
    for (const domain of tenant.domains) {
      if (directory.findTenant(domain)) throw new FixtureError(`fixture ${path} tenants[${t}].domains: domain ${domain} already belongs to a tenant`);
    }
    if (tenant.id && directory.findTenant(tenant.id)) throw new FixtureError(`fixture ${path} tenants[${t}].id: tenant ${tenant.id} already exists`);
  }
  for (const app of fixture.apps ?? []) {
    directory.addApp({
      appId: app.appId.toLowerCase(),
      displayName: app.displayName,
      homeTenantId: null,
      signInAudience: app.signInAudience ?? 'AzureADMultipleOrgs',
      redirectUris: app.redirectUris,
      postLogoutRedirectUris: app.postLogoutRedirectUris ?? [],
      secrets: (app.secrets ?? []).map((s, i) => ({
        id: nameGuid(`${app.appId}/secret/${i}`),
        value: s.value,
        expiresAtMs: s.expiresAt ? Date.parse(s.expiresAt) : Date.now() + 2 * 365 * 86_400_000,
      })),
      certificates: [],
      requiredAppRoles: app.requiredAppRoles ?? ['User.Read.All'],
      disabled: app.disabled ?? false,
      groupMembershipClaims: app.groupMembershipClaims ?? 'None',
    });
  }
  const demoApp = directory.requireApp(demoAppId);
  for (const input of fixture.tenants) {
    const tenant = directory.addTenant({
      id: input.id ?? nameGuid(`tenant/${input.domains[0]!.toLowerCase()}`),
      displayName: input.displayName,
      domains: input.domains,
      ...(input.countryLetterCode ? { countryLetterCode: input.countryLetterCode } : {}),
    });
    // Checked above (GUIDs, domains, duplicates), so the bulk path is safe.
    directory.addUsersUnchecked(
      tenant,
      input.users.map((user) => ({ ...user, id: user.id ?? nameGuid(`user/${tenant.id}/${user.userPrincipalName.toLowerCase()}`) })),
    );
    const apps = [...(input.consented ? [demoApp] : []), ...(input.consentedApps ?? []).map((appId) => directory.requireApp(appId.toLowerCase()))];
    for (const app of apps) {
      const sp = directory.grantAdminConsent(tenant, app);
      sp.id = nameGuid(`sp/${tenant.id}/${app.appId}`);
      sp.readyAtMs = 0;
    }
  }
}
