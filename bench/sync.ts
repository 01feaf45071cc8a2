/**
 * Directory sync cost, each figure a ratio taken in one run, on SQLite and on
 * PostgreSQL:
 *  - a full sync of a tenant against (a) fetching the same pages and discarding
 *    them, (b) inserting the same rows directly, in one transaction, and (c)
 *    inserting them into a bare table of the same columns (primary key only: no
 *    secondary index, trigger or foreign key), the physical limit; (b) against
 *    (c) is what the users table's indexes and triggers cost;
 *  - an incremental (delta) sync after 1% of the users changed, against the full sync;
 *  - the peak RSS growth of Roster's process during the full sync (the
 *    references run in a process of their own, so their rows are not in it);
 *  - groups (5,000 groups, ~1,000,000 direct memberships, some nested): their
 *    full sync against fetching and against inserting the same rows, a delta
 *    round after 1% of the memberships changed against it, and "is U in G"
 *    lookups through nesting per second against a plain indexed lookup.
 *
 *   node_modules/.bin/node bench/sync.ts [--users 100000] [--groups 5000] [--members-per-group 200] [--engines sqlite,postgres] [--cpu-profile <dir>]
 *   node_modules/.bin/node --expose-gc bench/sync.ts ...   # also prints the JavaScript heap the full sync left reachable
 *
 * The emulator runs in a child process, as Graph is another machine in
 * production: its serving does not compete with the synchronous SQLite writes
 * for one event loop, and the directory it holds (gigabytes at a million
 * users) is not in the RSS figure. `--cpu-profile` writes a CPU profile of
 * each engine's full sync alone (`<dir>/sync-<engine>.cpuprofile`).
 */
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sql, type CreateTableBuilder, type Kysely } from 'kysely';
import pLimit from 'p-limit';
import { GraphReader } from '../src/directory/graph-reader.ts';
import { SYNCED_GROUP_PROPERTIES } from '../src/directory/group-kind.ts';
import { DirectorySync, SYNCED_PROPERTIES } from '../src/directory/sync.ts';
import { GroupRepository } from '../src/store/groups.ts';
import { openStore, type Engine } from '../src/store/database.ts';
import { TenantRepository } from '../src/store/tenants.ts';
import { startTestEmulator } from '../test/helpers/emulator.ts';
import { connectToEmulator } from '../test/helpers/entra.ts';
import type { TestEmulator } from '../test/helpers/emulator.ts';
import { demoApp } from '../test/helpers/fixtures.ts';
import { openTestStore } from '../test/helpers/stores.ts';

interface Served {
  urls: TestEmulator['urls'];
  caCertPem: string;
  demoApp: TestEmulator['demoApp'];
  tenantId: string;
  domains: string[];
}
type ToWorker = { type: 'edit'; count: number; tag: string } | { type: 'edit-members'; count: number } | { type: 'close' };
interface Shape {
  users: number;
  groups: number;
  membersPerGroup: number;
}

/** Groups of `membersPerGroup` users each (a deterministic spread); every 50th group also holds the next 10 groups, so nesting goes several levels deep. */
function groupInputs(userIds: readonly string[], shape: Shape): { id: string; displayName: string; securityEnabled: boolean; mailNickname: string; members: string[] }[] {
  const ids = Array.from({ length: shape.groups }, () => randomUUID());
  return ids.map((id, g) => {
    const members = new Set<string>();
    for (let k = 0; k < shape.membersPerGroup; k++) members.add(userIds[(g * 7919 + k * 104_729) % userIds.length]!);
    if (g % 50 === 0) for (let n = 1; n <= 10 && g + n < ids.length; n++) members.add(ids[g + n]!);
    return { id, displayName: `Group ${g}`, securityEnabled: true, mailNickname: `group${g}`, members: [...members] };
  });
}

/** The emulator's process: builds the tenant, then edits users when asked. */
async function emulatorProcess({ users, groups, membersPerGroup }: Shape): Promise<void> {
  // Gone with the benchmark, however it ends.
  process.once('disconnect', () => process.exit(0));
  const parentPort = { postMessage: (message: unknown) => process.send!(message), on: (event: 'message', listener: (message: ToWorker) => void) => process.on(event, listener) };
  const emulator = await startTestEmulator();
  const tenant = emulator.ctx.directory.addTenant({ displayName: 'Benchco', domains: ['benchco.onmicrosoft.com', 'benchco.com'] });
  emulator.ctx.directory.addUsersUnchecked(
    tenant,
    Array.from({ length: users }, (_, i) => ({
      userPrincipalName: `user${i}@benchco.com`,
      displayName: `User ${i}`,
      givenName: 'User',
      surname: `N${i}`,
      jobTitle: i % 3 ? 'Engineer' : null,
      department: `Dept ${i % 40}`,
      officeLocation: `Building ${i % 9}`,
      employeeId: String(100000 + i),
      companyName: 'Benchco',
      businessPhones: i % 2 ? ['+1 425 555 0100'] : [],
    })),
  );
  if (groups > 0) emulator.ctx.directory.addGroupsUnchecked(tenant, groupInputs(tenant.users.map((u) => u.props.id), { users, groups, membersPerGroup }));
  emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
  parentPort!.on('message', (message: ToWorker) => {
    if (message.type === 'edit-members') {
      // Half removals, half additions, spread over the groups.
      const d = emulator.ctx.directory;
      for (let i = 0; i < message.count; i++) {
        const group = tenant.groups[(i * 31) % tenant.groups.length]!;
        if (i % 2 === 0) {
          const member = group.members.find((m) => !tenant.groupsById.has(m));
          if (member) d.removeGroupMember(tenant, group.props.id, member);
        } else {
          // The next user not in the group yet, so a second engine's round changes as many memberships as the first.
          const members = new Set(group.members);
          let k = i * 7717;
          while (members.has(tenant.users[k % tenant.users.length]!.props.id)) k++;
          d.addGroupMember(tenant, group.props.id, tenant.users[k % tenant.users.length]!.props.id);
        }
      }
      parentPort!.postMessage('edited');
    } else if (message.type === 'edit') {
      for (let i = 0; i < message.count; i++) emulator.ctx.directory.editUser(tenant, tenant.users[(i * 97) % users]!.props.id, { jobTitle: `Changed ${i} ${message.tag}` });
      parentPort!.postMessage('edited');
    } else void emulator.close().then(() => process.exit(0));
  });
  parentPort!.postMessage({ urls: emulator.urls, caCertPem: emulator.caCertPem, demoApp: emulator.demoApp, tenantId: tenant.id, domains: tenant.domains } satisfies Served);
}

const EMULATOR_PROCESS = '--emulator-process';
/** (a), (b) and (c) run in a process of their own, so the rows they hold are not in the full sync's RSS figure. */
const REFERENCES_PROCESS = '--references-process';
interface ReferencesJob {
  served: Served;
  users: number;
  engine: Engine;
  /** The database the main process opened and migrated: a SQLite path or a PostgreSQL URL. */
  target: string;
}
interface References {
  fetchMs: number;
  insertMs: number;
  bareMs: number;
}
if (process.argv[2] === EMULATOR_PROCESS) {
  await emulatorProcess(JSON.parse(process.argv[3]!) as Shape);
} else {
  await main(process.argv[2] === REFERENCES_PROCESS ? (JSON.parse(process.argv[3]!) as ReferencesJob) : null);
}

/** The process's resident set high-water mark, reset first when `reset`; null where Linux's /proc is not there. */
function rssHighWaterMark(reset: boolean): number | null {
  try {
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0+).
    if (reset) writeFileSync('/proc/self/clear_refs', '5');
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return kb === undefined ? null : Number(kb) * 1024;
  } catch {
    return null;
  }
}

/** The users table's columns and primary key, and nothing else: what inserting the rows costs at least. */
async function createBareUsers(db: Kysely<unknown>): Promise<void> {
  // Typed loosely: the builder's column names grow with each call, which a loop cannot express.
  let table = db.schema.createTable('bare_users') as unknown as CreateTableBuilder<'bare_users', string>;
  for (const column of ['tenant_id', 'id']) table = table.addColumn(column, 'text', (c) => c.notNull());
  for (const column of ['display_name', 'given_name', 'surname', 'mail', 'user_principal_name', 'job_title', 'department', 'office_location']) table = table.addColumn(column, 'text');
  table = table.addColumn('account_enabled', 'integer', (c) => c.notNull().defaultTo(1));
  for (const column of ['user_type', 'created_date_time', 'employee_id', 'company_name', 'mobile_phone', 'business_phones']) table = table.addColumn(column, 'text');
  table = table.addColumn('deleted_at', 'bigint').addColumn('roster_role', 'text', (c) => c.notNull().defaultTo('member'));
  table = table.addColumn('last_sign_in_at', 'bigint').addColumn('synced_at', 'bigint').addColumn('updated_at', 'bigint', (c) => c.notNull());
  table = table.addColumn('seen_run_id', 'text').addColumn('mapped_role', 'text').addPrimaryKeyConstraint('bare_users_pk', ['tenant_id', 'id']);
  await table.execute();
}

async function main(references: ReferencesJob | null): Promise<void> {
  const { values } = parseArgs({
    args: references ? [] : undefined,
    options: {
      users: { type: 'string', default: '100000' },
      groups: { type: 'string', default: '5000' },
      'members-per-group': { type: 'string', default: '200' },
      engines: { type: 'string', default: 'sqlite,postgres' },
      'cpu-profile': { type: 'string' },
    },
  });
  const USERS = references?.users ?? Number(values.users);
  const GROUPS = Number(values.groups);
  const MEMBERS_PER_GROUP = Number(values['members-per-group']);
  const ENGINES = values.engines!.split(',') as Engine[];
  const MB = 1024 * 1024;

  const shape: Shape = { users: USERS, groups: GROUPS, membersPerGroup: MEMBERS_PER_GROUP };
  const worker = references ? null : fork(fileURLToPath(import.meta.url), [EMULATOR_PROCESS, JSON.stringify(shape)], {
    // The profile is of Roster's process alone; the emulator holds a million users in a large heap.
    execArgv: [...process.execArgv.filter((arg) => !arg.startsWith('--cpu-prof')), '--max-old-space-size=8192'],
  });
  const served = references?.served ?? await new Promise<Served>((resolve, reject) => {
    if (!worker) return;
    worker.once('message', (message) => resolve(message as Served));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the emulator's process exited (${code})`)));
  });
  const ask = (message: ToWorker) =>
    new Promise<unknown>((resolve) => {
      worker!.once('message', resolve);
      worker!.send(message);
    });
  const connection = await connectToEmulator(served as unknown as TestEmulator);
  const budget = pLimit(8);
  const reader = new GraphReader({ http: connection.http, budget: (request) => budget(request) });
  const entra = connection.app();
  const tenant = { id: served.tenantId, domains: served.domains };

  const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  if (!references) console.log(`bench/sync.ts: ${USERS.toLocaleString('en-US')} users, ${GROUPS.toLocaleString('en-US')} groups of ${MEMBERS_PER_GROUP} members, pages of 999, Node ${process.version}\n`);

  type ListedUser = Record<string, unknown> & { id: string; accountEnabled: boolean; businessPhones: string[] };

  /** Every page of the full listing, fetched and parsed; `keep` collects the users. */
  async function readListing(keep: ListedUser[] | null): Promise<number> {
    const token = async () => (await entra.appToken(tenant.id)).accessToken;
    const t0 = performance.now();
    let url: string | undefined = `${connection.graphBaseUrl.origin}/v1.0/users/delta?$select=${SYNCED_PROPERTIES.join(',')}`;
    let users = 0;
    while (url) {
      const page: { value: ListedUser[]; '@odata.nextLink'?: string } = await reader.getPage(url, token, { prefer: 'odata.maxpagesize=999, return=minimal' });
      users += page.value.length;
      if (keep) for (const user of page.value) keep.push(user);
      url = page['@odata.nextLink'];
    }
    if (users !== USERS) throw new Error(`fetched ${users} users`);
    return performance.now() - t0;
  }

  /** (a) every page fetched and parsed, nothing stored. */
  const fetchOnly = () => readListing(null);

  async function listAll(): Promise<ListedUser[]> {
    const users: ListedUser[] = [];
    await readListing(users);
    return users;
  }

  type GroupItem = { id: string; displayName: string; securityEnabled: boolean; mailEnabled: boolean; groupTypes: string[]; 'members@delta'?: { id: string; '@odata.type': string }[] };

  /** Every page of the full group listing, fetched and parsed; `keep` collects the items. */
  async function readGroups(keep: GroupItem[] | null): Promise<number> {
    const token = async () => (await entra.appToken(tenant.id)).accessToken;
    const t0 = performance.now();
    let url: string | undefined = `${connection.graphBaseUrl.origin}/v1.0/groups/delta?$select=${SYNCED_GROUP_PROPERTIES.join(',')}`;
    while (url) {
      const page: { value: GroupItem[]; '@odata.nextLink'?: string } = await reader.getPage(url, token, { prefer: 'odata.maxpagesize=999, return=minimal' });
      if (keep) for (const item of page.value) keep.push(item);
      url = page['@odata.nextLink'];
    }
    return performance.now() - t0;
  }

  async function benchGroups(db: Awaited<ReturnType<typeof openTestStore>>, sync: DirectorySync, full: Awaited<ReturnType<DirectorySync['run']>>): Promise<void> {
    const g = full.groups;
    if (g?.status !== 'succeeded') throw new Error(`group sync ${g?.status}: ${g?.error}`);
    const fullMs = Number(g.finished_at) - Number(g.started_at);
    const memberships = Number((await db.store.db.selectFrom('group_members').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow()).n);
    // Written in the same transactions as the rows they describe (one a membership), which (b) does not write.
    const groupEvents = Number((await db.store.db.selectFrom('events').select((eb) => eb.fn.countAll().as('n')).where('tenant_id', '=', tenant.id).where('type', 'like', 'group.%').executeTakeFirstOrThrow()).n);
    const fetchMs = await readGroups(null);
    // (b) the same group rows and memberships inserted directly, in one transaction, into a scratch tenant (items read once, untimed).
    const items: GroupItem[] = [];
    await readGroups(items);
    const scratch = randomUUID();
    await new TenantRepository(db.store.db).activate({ id: scratch, displayName: 'Scratch', domains: ['scratch.example'], signedUpByOid: null, signupContext: null }, Date.now());
    const groupRows = new Map<string, Record<string, unknown>>();
    const memberRows: Record<string, unknown>[] = [];
    for (const item of items) {
      if (item.displayName !== undefined) groupRows.set(item.id, { tenant_id: scratch, id: item.id, display_name: item.displayName, group_types: JSON.stringify(item.groupTypes ?? []), security_enabled: item.securityEnabled ? 1 : 0, mail_enabled: item.mailEnabled ? 1 : 0, kind: 'security', dynamic: 0, seen_run_id: 'bench', synced_at: Date.now(), updated_at: Date.now() });
      for (const m of item['members@delta'] ?? []) memberRows.push({ tenant_id: scratch, group_id: item.id, member_id: m.id, member_type: m['@odata.type'].endsWith('group') ? 'group' : 'user', seen_run_id: 'bench' });
    }
    let t0 = performance.now();
    await db.store.db.transaction().execute(async (trx) => {
      const groupList = [...groupRows.values()];
      for (let i = 0; i < groupList.length; i += 1000) await trx.insertInto('groups').values(groupList.slice(i, i + 1000) as never).execute();
      for (let i = 0; i < memberRows.length; i += 1000) await trx.insertInto('group_members').values(memberRows.slice(i, i + 1000) as never).execute();
    });
    const insertMs = performance.now() - t0;
    await db.store.db.deleteFrom('tenants').where('id', '=', scratch).execute();

    const changed = Math.round(memberships / 100);
    await ask({ type: 'edit-members', count: changed });
    const delta = await sync.run(tenant.id);
    const dg = delta.groups;
    if (dg?.kind !== 'delta' || dg.status !== 'succeeded') throw new Error(`group delta: ${dg?.kind} ${dg?.status} ${dg?.error}`);
    const deltaMs = Number(dg.finished_at) - Number(dg.started_at);

    // "Is U in G": through nesting (recursive query) against the plain indexed lookup of a direct membership.
    const repo = new GroupRepository(db.store.db, db.store.engine);
    const pairs = await db.store.db.selectFrom('group_members').select(['group_id', 'member_id']).where('tenant_id', '=', tenant.id).where('member_type', '=', 'user').limit(2000).execute();
    const groupIds = [...groupRows.keys()];
    const lookups = pairs.map((p, i) => ({ user: p.member_id, group: i % 2 ? p.group_id : groupIds[(i * 37) % groupIds.length]! }));
    t0 = performance.now();
    for (const { user, group } of lookups) await repo.isMemberTransitively(tenant.id, group, user);
    const transitivePerS = lookups.length / ((performance.now() - t0) / 1000);
    t0 = performance.now();
    for (const { user, group } of lookups) await repo.isDirectMember(tenant.id, group, user);
    const directPerS = lookups.length / ((performance.now() - t0) / 1000);

    const baseline = Math.max(fetchMs, insertMs);
    console.log(`  groups: ${groupRows.size.toLocaleString('en-US')} groups, ${memberships.toLocaleString('en-US')} memberships, ${g.pages} pages`);
    console.log(`  (a) fetch every group page, discard    ${seconds(fetchMs)}`);
    console.log(`  (b) insert the same rows directly      ${seconds(insertMs)}`);
    console.log(`  full group sync                        ${seconds(fullMs)}   ${Math.round(memberships / (fullMs / 1000)).toLocaleString('en-US')} memberships/s`);
    console.log(`    ratio full sync / max(a, b)          ${(fullMs / baseline).toFixed(2)}x   (aim: at most 1.3x)`);
    console.log(`    events the full sync wrote           ${groupEvents.toLocaleString('en-US')}`);
    console.log(`  group delta after 1% changed (${changed}) ${seconds(deltaMs)}`);
    console.log(`    ratio delta / full                   ${((deltaMs / fullMs) * 100).toFixed(1)}%   (aim: at most 5%)`);
    console.log(`  "is U in G" through nesting            ${Math.round(transitivePerS).toLocaleString('en-US')}/s`);
    console.log(`  "is U directly in G" (indexed lookup)  ${Math.round(directPerS).toLocaleString('en-US')}/s   ratio ${(directPerS / transitivePerS).toFixed(1)}x\n`);
  }

  /** (b) and (c): every listed user inserted in batches of 1,000 in one transaction, into users and then into a bare table (dropped after). */
  async function insertDirectly(db: Kysely<unknown>): Promise<{ insertMs: number; bareMs: number }> {
    const listed = await listAll();
    const rows = listed.map((u) => ({
      tenant_id: tenant.id, id: u.id, display_name: u.displayName, given_name: u.givenName, surname: u.surname, mail: u.mail,
      user_principal_name: u.userPrincipalName, job_title: u.jobTitle, department: u.department, office_location: u.officeLocation,
      account_enabled: u.accountEnabled ? 1 : 0, user_type: u.userType, created_date_time: u.createdDateTime, employee_id: u.employeeId,
      company_name: u.companyName, mobile_phone: u.mobilePhone, business_phones: JSON.stringify(u.businessPhones), deleted_at: null,
      roster_role: 'member' as const, last_sign_in_at: null, synced_at: Date.now(), seen_run_id: 'bench', updated_at: Date.now(),
    }));
    const insertInto = async (table: string): Promise<number> => {
      const t0 = performance.now();
      await db.transaction().execute(async (trx) => {
        // 23 columns a row: batches stay under SQLite's and PostgreSQL's parameter limits.
        for (let i = 0; i < rows.length; i += 1000) await trx.insertInto(table as never).values(rows.slice(i, i + 1000) as never).execute();
      });
      return performance.now() - t0;
    };
    const insertMs = await insertInto('users');
    await createBareUsers(db);
    const bareMs = await insertInto('bare_users');
    await sql`drop table bare_users`.execute(db);
    return { insertMs, bareMs };
  }

  if (references) {
    const store = await openStore(references.engine === 'sqlite' ? { engine: 'sqlite', path: references.target } : { engine: 'postgres', url: references.target });
    const fetchMs = await fetchOnly();
    // (b) the same rows inserted directly into users, and (c) into a bare table, each in batches in one transaction (rows read once, untimed).
    const { insertMs, bareMs } = await insertDirectly(store.db as unknown as Kysely<unknown>);
    await store.db.deleteFrom('users').where('tenant_id', '=', tenant.id).execute();
    await store.close();
    await connection.close();
    process.send!({ fetchMs, insertMs, bareMs } satisfies References);
    process.disconnect();
    return;
  }

  for (const engine of ENGINES) {
    const db = await openTestStore(engine);
    try {
      await new TenantRepository(db.store.db).activate({ id: tenant.id, displayName: 'Benchco', domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
      const job: ReferencesJob = { served, users: USERS, engine, target: db.target };
      const { fetchMs, insertMs, bareMs } = await new Promise<References>((resolve, reject) => {
        const child = fork(fileURLToPath(import.meta.url), [REFERENCES_PROCESS, JSON.stringify(job)], { execArgv: process.execArgv.filter((arg) => !arg.startsWith('--cpu-prof')) });
        child.once('message', (message) => resolve(message as References));
        child.once('error', reject);
        child.once('exit', (code) => reject(new Error(`the references' process exited (${code})`)));
      });

      const sync = new DirectorySync({ store: db.store, entra, reader, graphBaseUrl: connection.graphBaseUrl });
      global.gc?.();
      const heap0 = process.memoryUsage().heapUsed;
      const rss0 = process.memoryUsage.rss();
      // The kernel's high-water mark sees every peak; sampling misses those inside a synchronous write.
      rssHighWaterMark(true);
      let peak = rss0;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 50);
      const profiler = values['cpu-profile'] === undefined ? null : new Session();
      if (profiler) {
        profiler.connect();
        await profiler.post('Profiler.enable');
        await profiler.post('Profiler.setSamplingInterval', { interval: 1000 });
        await profiler.post('Profiler.start');
      }
      const full = await sync.run(tenant.id, { full: true });
      // The run reads users, then groups: each part timed by its own run record.
      const fullMs = Number(full.finished_at) - Number(full.started_at);
      clearInterval(sampler);
      peak = Math.max(peak, rssHighWaterMark(false) ?? 0);
      if (profiler) {
        const { profile } = await profiler.post('Profiler.stop');
        mkdirSync(values['cpu-profile']!, { recursive: true });
        writeFileSync(join(values['cpu-profile']!, `sync-${engine}.cpuprofile`), JSON.stringify(profile));
        profiler.disconnect();
      }
      if (full.status !== 'succeeded' || full.created !== USERS) throw new Error(`full sync ${full.status}: ${full.error}`);
      // With --expose-gc: what the sync left reachable, apart from how far the heap grew on the way.
      global.gc?.();
      const heapKept = global.gc ? process.memoryUsage().heapUsed - heap0 : null;

      const changed = Math.max(1, Math.round(USERS / 100));
      await ask({ type: 'edit', count: changed, tag: engine });
      const delta = await sync.run(tenant.id);
      const deltaMs = Number(delta.finished_at) - Number(delta.started_at);
      if (delta.kind !== 'delta' || delta.updated !== changed) throw new Error(`delta sync: ${delta.kind} ${delta.updated}`);

      const baseline = Math.max(fetchMs, insertMs);
      console.log(`${engine}`);
      console.log(`  (a) fetch every page, discard          ${seconds(fetchMs)}`);
      console.log(`  (b) insert the same rows directly      ${seconds(insertMs)}`);
      console.log(`  (c) insert them into a bare table      ${seconds(bareMs)}`);
      console.log(`    indexes and triggers, (b) / (c)      ${(insertMs / bareMs).toFixed(2)}x   (+${seconds(insertMs - bareMs)})`);
      console.log(`  full sync                              ${seconds(fullMs)}   ${Math.round(USERS / (fullMs / 1000)).toLocaleString('en-US')} users/s`);
      console.log(`    ratio full sync / max(a, b)          ${(fullMs / baseline).toFixed(2)}x   (aim: at most 1.3x)`);
      console.log(`    ratio full sync / max(a, c)          ${(fullMs / Math.max(fetchMs, bareMs)).toFixed(2)}x`);
      console.log(`  delta sync after 1% changed (${changed})   ${seconds(deltaMs)}`);
      console.log(`    ratio delta / full                   ${((deltaMs / fullMs) * 100).toFixed(1)}%   (aim: at most 5%)`);
      console.log(`  peak RSS growth during the full sync   ${((peak - rss0) / MB).toFixed(0)} MB (peak ${(peak / MB).toFixed(0)} MB, Roster's process alone)${heapKept === null ? '\n' : ''}`);
      if (heapKept !== null) console.log(`  JavaScript heap kept after the sync    ${(heapKept / MB).toFixed(1)} MB (after a full collection)\n`);
      if (GROUPS > 0) await benchGroups(db, sync, full);
    } finally {
      await db.drop();
    }
  }
  await connection.close();
  if (!worker) return;
  worker.removeAllListeners('exit');
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  worker.send({ type: 'close' } satisfies ToWorker);
  await exited;
}
