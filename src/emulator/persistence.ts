// One module over 400 lines on purpose: the writer and the reader of one on-disk format, kept side by side so they change together.
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { GRANT_RECORD_TYPES, grantRecords, loadGrantRecord, type GrantStore } from './grants.ts';
import { GROUP_RECORD_TYPES, groupRecords, groupTenantFields, groupTenantSchema, loadGroupRecord } from './persistence-groups.ts';
import { emptyGroups, GRAPH_USER_PROPERTIES, GROUP_MEMBERSHIP_CLAIMS, type ChangeEntry, type Directory, type GraphUser, type GraphUserProperty, type Tenant, type UserRecord } from './model.ts';

export const STATE_FILE = 'state.json';
export const STATE_FORMAT = 'roster-emulator-state';
export const STATE_VERSION = 1;

/**
 * Layout of `state.json`: one JSON document whose `records` array holds one
 * record per line. It stays valid JSON (jq, editors), and it can be written and
 * read line by line, so a million-user tenant never becomes one giant string
 * (V8 caps strings at about 512 MB).
 */
const HEADER_PREFIX = `{"format":"${STATE_FORMAT}","version":`;
const USER_FIELDS = [...GRAPH_USER_PROPERTIES, 'password', 'admin', 'ordinal'] as const;
// rowToUser spells the fields out by position; should the model's list change, it takes the generic path.
const KNOWN_LAYOUT =
  GRAPH_USER_PROPERTIES.join(',') ===
  'id,displayName,givenName,surname,mail,userPrincipalName,jobTitle,department,officeLocation,accountEnabled,userType,createdDateTime,employeeId,companyName,mobilePhone,businessPhones';
const USERS_PER_LINE = 1000;
const CHANGES_PER_LINE = 5000;
const WRITE_CHUNK_BYTES = 1 << 20;

export function stateFilePath(dataDir: string): string {
  return join(dataDir, STATE_FILE);
}

export function hasSavedState(dataDir: string): boolean {
  return existsSync(stateFilePath(dataDir));
}

/** Saved state that cannot be used; the message names the file. */
export class StateFileError extends Error {}

// ---- save ----------------------------------------------------------------------

/**
 * Writes the whole directory to `<dataDir>/state.json`: temp file, fsync, rename (never a half-written state).
 * With `grants`, the unexpired authorization codes and refresh tokens go too, so a restart does not break a sign-in.
 */
export async function saveState(dataDir: string, directory: Directory, grants?: GrantStore): Promise<void> {
  const target = stateFilePath(dataDir);
  const temp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const file = await open(temp, 'w', 0o600);
  try {
    let buffer: string[] = [];
    let size = 0;
    const flush = async (): Promise<void> => {
      if (buffer.length === 0) return;
      await file.write(buffer.join(''));
      buffer = [];
      size = 0;
    };
    let first = true;
    const record = async (value: unknown): Promise<void> => {
      const line = (first ? '' : ',\n') + JSON.stringify(value);
      first = false;
      buffer.push(line);
      size += line.length;
      if (size >= WRITE_CHUNK_BYTES) await flush();
    };

    buffer.push(`${HEADER_PREFIX}${STATE_VERSION},"savedAt":${JSON.stringify(new Date().toISOString())},"records":[\n`);
    await record({
      type: 'settings',
      consentPropagationSeconds: directory.consentPropagationSeconds,
      missingServicePrincipalError: directory.missingServicePrincipalError,
    });
    for (const app of directory.apps.values()) await record({ type: 'app', ...app });
    for (const tenant of directory.tenants.values()) {
      await record({
        type: 'tenant',
        id: tenant.id,
        displayName: tenant.displayName,
        domains: tenant.domains,
        defaultDomain: tenant.defaultDomain,
        countryLetterCode: tenant.countryLetterCode,
        createdDateTime: tenant.createdDateTime,
        nextOrdinal: tenant.nextOrdinal,
        seq: tenant.seq,
        deltaFloor: tenant.deltaFloor,
        purgedUserIds: [...tenant.purgedUserIds],
        servicePrincipals: [...tenant.servicePrincipals.values()],
        ...groupTenantFields(tenant),
      });
      for (const [state, users] of [
        ['active', tenant.users],
        ['deleted', [...tenant.deletedUsers.values()]],
      ] as const) {
        for (let i = 0; i < users.length; i += USERS_PER_LINE) {
          await record({ type: 'users', tenant: tenant.id, state, fields: USER_FIELDS, rows: users.slice(i, i + USERS_PER_LINE).map(userRow) });
        }
      }
      for (let i = 0; i < tenant.changeLog.length; i += CHANGES_PER_LINE) {
        await record({ type: 'changes', tenant: tenant.id, rows: tenant.changeLog.slice(i, i + CHANGES_PER_LINE).map(changeRow) });
      }
      for (const groups of groupRecords(tenant)) await record(groups);
    }
    for (const grant of grants ? grantRecords(grants, directory.clock.nowMs()) : []) await record(grant);
    await record({ type: 'end' });
    buffer.push('\n]}\n');
    await flush();
    await file.sync();
  } catch (err) {
    await file.close().catch(() => {});
    await rm(temp, { force: true });
    throw err;
  }
  await file.close();
  await rename(temp, target);
  // The rename itself is durable only once the folder is synced.
  const dir = await open(dataDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

function userRow(user: UserRecord): unknown[] {
  const row: unknown[] = GRAPH_USER_PROPERTIES.map((key) => user.props[key]);
  row.push(user.password, user.admin, user.ordinal);
  return row;
}

function changeRow(entry: ChangeEntry): unknown[] {
  return entry.changed ? [entry.seq, entry.userId, entry.changed] : [entry.seq, entry.userId];
}

// ---- load ----------------------------------------------------------------------

const settingsRecord = z.object({
  type: z.literal('settings'),
  consentPropagationSeconds: z.number().min(0),
  missingServicePrincipalError: z.union([z.literal(700016), z.literal(7000229)]),
});
const appRecord = z.object({
  type: z.literal('app'),
  appId: z.string(),
  displayName: z.string(),
  homeTenantId: z.string().nullable(),
  signInAudience: z.enum(['AzureADMyOrg', 'AzureADMultipleOrgs']),
  redirectUris: z.array(z.string()),
  postLogoutRedirectUris: z.array(z.string()),
  secrets: z.array(z.object({ id: z.string(), value: z.string(), expiresAtMs: z.number() })),
  certificates: z.array(z.object({ id: z.string(), x5t: z.string(), x5tS256: z.string(), publicKeyPem: z.string(), expiresAtMs: z.number() })),
  requiredAppRoles: z.array(z.string()),
  disabled: z.boolean(),
  // State saved before the setting existed loads as Entra's default.
  groupMembershipClaims: z.enum(GROUP_MEMBERSHIP_CLAIMS).default('None'),
});
const tenantRecord = z.object({
  type: z.literal('tenant'),
  id: z.string(),
  displayName: z.string(),
  domains: z.array(z.string()).min(1),
  defaultDomain: z.string(),
  countryLetterCode: z.string(),
  createdDateTime: z.string(),
  nextOrdinal: z.number().int(),
  seq: z.number().int(),
  deltaFloor: z.number().int(),
  purgedUserIds: z.array(z.string()),
  servicePrincipals: z.array(z.object({ id: z.string(), appId: z.string(), appRoles: z.array(z.string()), readyAtMs: z.number(), createdDateTime: z.string() })),
  ...groupTenantSchema,
});
const usersRecord = z.object({
  type: z.literal('users'),
  tenant: z.string(),
  state: z.enum(['active', 'deleted']),
  fields: z.array(z.string()),
  rows: z.array(z.unknown()),
});
const changesRecord = z.object({
  type: z.literal('changes'),
  tenant: z.string(),
  rows: z.array(z.unknown()),
});
const stateRecord = z.discriminatedUnion('type', [settingsRecord, appRecord, tenantRecord, usersRecord, changesRecord, z.object({ type: z.literal('end') })]);
const headerSchema = z.object({ format: z.literal(STATE_FORMAT), version: z.number().int() });

/** Loads saved state into an empty `directory` (and saved codes and refresh tokens into `grants`); false when the folder holds none. */
export async function loadState(dataDir: string, directory: Directory, grants?: GrantStore): Promise<boolean> {
  const path = stateFilePath(dataDir);
  if (!existsSync(path)) return false;
  const loader = new StateLoader(directory, path, grants);
  const firstLine = await readFirstLine(path);
  if (firstLine.startsWith(HEADER_PREFIX) && firstLine.endsWith('"records":[')) {
    loader.header(JSON.parse(`${firstLine}]}`));
    let lineNo = 0;
    for await (const raw of readLines(path)) {
      lineNo += 1;
      if (lineNo === 1) continue;
      const line = raw.endsWith(',') ? raw.slice(0, -1) : raw;
      if (line === ']}' || line === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        throw new StateFileError(`state file ${path} line ${lineNo}: not valid JSON (${(err as Error).message})`);
      }
      loader.record(value, `line ${lineNo}`);
    }
  } else {
    // Hand-edited or reformatted: fall back to reading it as one document.
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      throw new StateFileError(`state file ${path}: not valid JSON (${(err as Error).message})`);
    }
    loader.header(doc);
    const records = (doc as { records?: unknown }).records;
    if (!Array.isArray(records)) throw new StateFileError(`state file ${path}: no records array`);
    records.forEach((r, i) => loader.record(r, `records[${i}]`));
  }
  loader.finish();
  grants?.pruneExpired(directory.clock.nowMs());
  return true;
}

async function readFirstLine(path: string): Promise<string> {
  for await (const line of readLines(path, 4096)) return line;
  return '';
}

/**
 * Lines split on `\n` only: JSON escapes `\r` and `\n` inside strings but not
 * U+2028/U+2029, which readline would also treat as line ends.
 */
async function* readLines(path: string, highWaterMark = 1 << 20): AsyncGenerator<string> {
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark });
  let rest = '';
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop()!;
      for (const part of parts) yield part.endsWith('\r') ? part.slice(0, -1) : part;
    }
    if (rest) yield rest;
  } finally {
    stream.destroy();
  }
}

class StateLoader {
  readonly #directory: Directory;
  readonly #path: string;
  #ended = false;
  #settings = false;
  readonly #pool = new Interner();
  readonly #grants: GrantStore | undefined;

  constructor(directory: Directory, path: string, grants: GrantStore | undefined) {
    this.#directory = directory;
    this.#path = path;
    this.#grants = grants;
  }

  header(value: unknown): void {
    const parsed = headerSchema.safeParse(value);
    if (!parsed.success) throw new StateFileError(`state file ${this.#path}: not an emulator state file (expected "format": "${STATE_FORMAT}")`);
    if (parsed.data.version !== STATE_VERSION) {
      throw new StateFileError(
        `state file ${this.#path} has format version ${parsed.data.version}, but this emulator reads version ${STATE_VERSION}; ` +
          'move the file away (or use another --data-dir) to start from a fresh seed',
      );
    }
  }

  record(value: unknown, where: string): void {
    if (this.#ended) throw new StateFileError(`state file ${this.#path} ${where}: data after the end record`);
    // Bulk records skip the schema walk per row: a row is checked where it is used.
    const type = (value as { type?: unknown } | null)?.type;
    if (typeof type === 'string' && GRANT_RECORD_TYPES.has(type)) {
      const refused = this.#grants ? loadGrantRecord(this.#grants, value) : undefined;
      if (refused) throw new StateFileError(`state file ${this.#path} ${where}: ${refused}`);
      return;
    }
    if (typeof type === 'string' && GROUP_RECORD_TYPES.has(type)) {
      const refused = loadGroupRecord(value, (id) => this.#tenant(id, where));
      if (refused) throw new StateFileError(`state file ${this.#path} ${where}: ${refused}`);
      return;
    }
    const parsed = type === 'users' ? usersRecord.safeParse(value) : type === 'changes' ? changesRecord.safeParse(value) : stateRecord.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new StateFileError(`state file ${this.#path} ${where} ${issue.path.join('.')}: ${issue.message}`);
    }
    const rec = parsed.data;
    const d = this.#directory;
    switch (rec.type) {
      case 'settings':
        d.consentPropagationSeconds = rec.consentPropagationSeconds;
        d.missingServicePrincipalError = rec.missingServicePrincipalError;
        this.#settings = true;
        return;
      case 'app': {
        const { type: _type, ...app } = rec;
        d.apps.set(app.appId, app);
        return;
      }
      case 'tenant':
        this.#addTenant(rec, where);
        return;
      case 'users': {
        const tenant = this.#tenant(rec.tenant, where);
        const index = USER_FIELDS.map((f) => rec.fields.indexOf(f));
        const missing = USER_FIELDS.filter((_, i) => index[i] === -1);
        if (missing.length > 0) throw new StateFileError(`state file ${this.#path} ${where}: users lack the fields ${missing.join(', ')}`);
        for (const row of rec.rows) {
          if (!Array.isArray(row) || row.length < USER_FIELDS.length || typeof row[index[0]!] !== 'string') {
            throw new StateFileError(`state file ${this.#path} ${where}: a user row is malformed`);
          }
          const user = rowToUser(row, index, this.#pool);
          if (rec.state === 'active') {
            tenant.users.push(user);
            tenant.usersById.set(user.props.id, user);
          } else {
            tenant.deletedUsers.set(user.props.id, user);
          }
        }
        return;
      }
      case 'changes': {
        const tenant = this.#tenant(rec.tenant, where);
        for (const row of rec.rows) {
          if (!Array.isArray(row) || typeof row[0] !== 'number' || typeof row[1] !== 'string') {
            throw new StateFileError(`state file ${this.#path} ${where}: a change-log row is malformed`);
          }
          const [seq, userId, changed] = row as [number, string, GraphUserProperty[]?];
          tenant.changeLog.push(changed ? { seq, userId, changed } : { seq, userId });
        }
        return;
      }
      case 'end':
        this.#ended = true;
        return;
    }
  }

  finish(): void {
    if (!this.#ended || !this.#settings) throw new StateFileError(`state file ${this.#path} is incomplete (no end record); it was not written by a finished save`);
  }

  #addTenant(rec: z.infer<typeof tenantRecord>, where: string): void {
    const d = this.#directory;
    const tenant: Tenant = {
      id: rec.id,
      displayName: rec.displayName,
      domains: rec.domains,
      defaultDomain: rec.defaultDomain,
      countryLetterCode: rec.countryLetterCode,
      createdDateTime: rec.createdDateTime,
      users: [],
      usersById: new Map(),
      deletedUsers: new Map(),
      purgedUserIds: new Set(rec.purgedUserIds),
      nextOrdinal: rec.nextOrdinal,
      changeLog: [],
      seq: rec.seq,
      deltaFloor: rec.deltaFloor,
      servicePrincipals: new Map(rec.servicePrincipals.map((sp) => [sp.appId, sp])),
      ...emptyGroups(),
      nextGroupOrdinal: rec.nextGroupOrdinal,
      purgedGroupIds: new Set(rec.purgedGroupIds),
    };
    if (d.tenants.has(tenant.id)) throw new StateFileError(`state file ${this.#path} ${where}: tenant ${tenant.id} appears twice`);
    d.tenants.set(tenant.id, tenant);
    for (const domain of tenant.domains) d.tenantsByDomain.set(domain, tenant);
  }

  #tenant(id: string, where: string): Tenant {
    const tenant = this.#directory.tenants.get(id);
    if (!tenant) throw new StateFileError(`state file ${this.#path} ${where}: records for unknown tenant ${id}`);
    return tenant;
  }
}

/**
 * Repeated values (names, titles, departments, passwords) parsed from JSON are
 * separate strings; sharing them keeps a restored directory as small as a
 * generated one. Bounded, so a directory of unique values cannot grow it forever.
 */
class Interner {
  readonly #table = new Map<string, string>();
  intern<T>(value: T): T {
    if (typeof value !== 'string') return value;
    const known = this.#table.get(value);
    if (known !== undefined) return known as T;
    if (this.#table.size < 200_000) this.#table.set(value, value);
    return value;
  }
}

function rowToUser(row: unknown[], index: number[], pool: Interner): UserRecord {
  const v = (i: number): unknown => row[index[i]!];
  const s = (i: number): string | null => pool.intern(v(i) as string | null);
  const base = GRAPH_USER_PROPERTIES.length;
  if (!KNOWN_LAYOUT) {
    const generic: Record<string, unknown> = {};
    GRAPH_USER_PROPERTIES.forEach((key, i) => (generic[key] = pool.intern(v(i))));
    return { props: generic as unknown as GraphUser, password: s(base)!, admin: v(base + 1) as boolean, ordinal: v(base + 2) as number };
  }
  // A literal with every key gives all users one compact shape; the order follows GRAPH_USER_PROPERTIES.
  const props: GraphUser = {
    id: v(0) as string,
    displayName: s(1)!,
    givenName: s(2),
    surname: s(3),
    mail: v(4) as string | null,
    userPrincipalName: v(5) as string,
    jobTitle: s(6),
    department: s(7),
    officeLocation: s(8),
    accountEnabled: v(9) as boolean,
    userType: s(10) as GraphUser['userType'],
    createdDateTime: v(11) as string,
    employeeId: v(12) as string | null,
    companyName: s(13),
    mobilePhone: v(14) as string | null,
    businessPhones: v(15) as string[],
  };
  if (props.mail === props.userPrincipalName) props.mail = props.userPrincipalName;
  return { props, password: s(base)!, admin: v(base + 1) as boolean, ordinal: v(base + 2) as number };
}
