/**
 * Emulator throughput benchmark: how fast the emulator serves `/users` pages of
 * 999 for a large tenant, against how fast the same rows go into node:sqlite.
 * The emulator must never be the bottleneck of a sync, so the first figure has
 * to beat the second by a wide margin.
 *
 *   node_modules/.bin/node bench/emulator.ts [--users 1000000]
 *
 * It also times what a demo waits for: the seeded generator building a tenant
 * of `--users` users, and saving and loading the state of `--state-users`
 * users, each as a ratio to the same rows inserted into node:sqlite.
 *
 * The emulator and the client run in one process. By default the emulator has
 * its own thread (a worker), as it has its own process in `roster emulator`;
 * `--in-thread` puts both on one event loop. Either way the users/s figure
 * includes the client's side of TLS; one more pass adds JSON parsing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Agent, request } from 'undici';
import { Clock } from '../src/emulator/clock.ts';
import { Directory, GRAPH_USER_PROPERTIES, type GraphUser, type UserInput } from '../src/emulator/model.ts';
import { loadState, saveState } from '../src/emulator/persistence.ts';
import { applySeed } from '../src/emulator/seed.ts';
import { startEmulator } from '../src/emulator/server.ts';
import { benchAppToken } from './graph-token.ts';

/** Every property Roster syncs, in schema order. */
const SELECT = GRAPH_USER_PROPERTIES;


const MB = 1024 * 1024;
const rssSamples: Record<string, number> = {};
const sampleRss = (phase: string) => {
  const rss = process.memoryUsage.rss();
  rssSamples[phase] = Math.max(rssSamples[phase] ?? 0, rss);
};

const GIVEN = ['Adele', 'Alex', 'Diego', 'Grady', 'Isaiah', 'Johanna', 'Lee', 'Lidia', 'Lynne', 'Megan', 'Miriam', 'Nestor', 'Patti', 'Pradeep'];
const SURNAMES = ['Vance', 'Wilber', 'Siciliani', 'Archie', 'Langer', 'Lorenz', 'Gu', 'Holloway', 'Robbins', 'Bowen', 'Graham', 'Wilke', 'Fernandez', 'Gupta'];
const TITLES = ['Engineer', 'Designer', 'Product Manager', 'Sales Lead', 'Accountant', 'Support Engineer', null];
const DEPARTMENTS = ['Engineering', 'Design', 'Product', 'Sales', 'Finance', 'Support', null];
const OFFICES = ['Building 1', 'Building 2', 'Remote', null];

/** Cheap deterministic users: ids are counters shaped as GUIDs. */
function* generateUsers(count: number): Generator<UserInput> {
  for (let i = 0; i < count; i++) {
    const given = GIVEN[i % GIVEN.length]!;
    const surname = SURNAMES[(i >>> 4) % SURNAMES.length]!;
    const upn = `${given.toLowerCase()}.${surname.toLowerCase()}.${i}@contoso.com`;
    yield {
      id: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
      userPrincipalName: upn,
      mail: upn,
      displayName: `${given} ${surname} ${i}`,
      givenName: given,
      surname,
      jobTitle: TITLES[i % TITLES.length]!,
      department: DEPARTMENTS[i % DEPARTMENTS.length]!,
      officeLocation: OFFICES[i % OFFICES.length]!,
      accountEnabled: i % 50 !== 0,
      userType: i % 20 === 0 ? 'Guest' : 'Member',
      createdDateTime: '2024-01-01T00:00:00Z',
      employeeId: i % 3 === 0 ? null : String(100000 + i),
      companyName: 'Contoso',
      mobilePhone: i % 4 === 0 ? `+1 555 ${String(i % 10000).padStart(4, '0')}` : null,
      businessPhones: i % 2 === 0 ? [`+1 425 555 ${String(i % 10000).padStart(4, '0')}`] : [],
    };
  }
}

const seconds = (ms: number) => (ms / 1000).toFixed(2);
const perSecond = (n: number, ms: number) => Math.round((n / ms) * 1000);

interface Served {
  graphUrl: string;
  caCertPem: string;
  token: string;
  buildMs: number;
}

interface Server extends Served {
  /** CPU time the emulator's thread has used so far (ms); undefined when it shares the client's thread. */
  cpuMs(): Promise<number | undefined>;
  close(): Promise<void>;
}

const threadCpuMs = () => {
  const { user, system } = process.threadCpuUsage();
  return (user + system) / 1000;
};

/** Starts an in-memory emulator with a tenant of `count` users and an app token for it. */
async function serve(count: number): Promise<Served & { close(): Promise<void> }> {
  const emulator = await startEmulator({ dataDir: null });
  const { ctx } = emulator;
  const t0 = performance.now();
  const tenant = ctx.directory.addTenant({ displayName: 'Contoso', domains: ['contoso.onmicrosoft.com', 'contoso.com'] });
  ctx.directory.addUsersUnchecked(tenant, generateUsers(count));
  const buildMs = performance.now() - t0;
  const token = await benchAppToken(ctx, tenant.id, ['User.Read.All']);
  return { graphUrl: ctx.urls.graph, caCertPem: emulator.caCertPem, token, buildMs, close: () => emulator.close() };
}

type ToWorker = { type: 'cpu' } | { type: 'close' };
type FromWorker = { type: 'served'; served: Served } | { type: 'cpu'; ms: number };

/** The emulator on its own thread: the worker serves until the main thread says stop. */
async function serveInWorker(count: number): Promise<Server> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { users: count } });
  const next = () =>
    new Promise<FromWorker>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  const first = await next();
  if (first.type !== 'served') throw new Error('the emulator worker did not start');
  return {
    ...first.served,
    cpuMs: async () => {
      const answer = next();
      worker.postMessage({ type: 'cpu' } satisfies ToWorker);
      const message = await answer;
      return message.type === 'cpu' ? message.ms : undefined;
    },
    close: async () => {
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      worker.postMessage({ type: 'close' } satisfies ToWorker);
      await exited;
    },
  };
}

async function workerMain(): Promise<void> {
  const { close, ...served } = await serve((workerData as { users: number }).users);
  parentPort!.on('message', (message: ToWorker) => {
    if (message.type === 'cpu') parentPort!.postMessage({ type: 'cpu', ms: threadCpuMs() } satisfies FromWorker);
    else void close().then(() => parentPort!.close());
  });
  parentPort!.postMessage({ type: 'served', served } satisfies FromWorker);
}

interface PassResult {
  ms: number;
  users: number;
  pages: number;
  bytes: number;
  clientCpuMs: number;
  emulatorCpuMs: number | undefined;
}

const USER_START = Buffer.from('{"id":"');

/**
 * Pages through every user, following next links. `serve` measures the
 * emulator's serving: the client reads each body and counts the users without
 * building objects. `parse` adds `JSON.parse` of every page, as a sync does.
 */
async function pageThrough(server: Server, dispatcher: Agent, mode: 'serve' | 'parse'): Promise<PassResult> {
  const emulatorCpu0 = await server.cpuMs();
  const clientCpu0 = threadCpuMs();
  const t0 = performance.now();
  let url: string | undefined = `${server.graphUrl}/v1.0/users?$top=999&$select=${SELECT.join(',')}`;
  let users = 0;
  let pages = 0;
  let bytes = 0;
  while (url) {
    const res = await request(url, { dispatcher, headers: { authorization: `Bearer ${server.token}` } });
    const body = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200) throw new Error(`page ${pages} answered ${res.statusCode}: ${body.toString('utf8', 0, 300)}`);
    bytes += body.length;
    if (mode === 'parse') {
      const page = JSON.parse(body.toString('utf8')) as { value: GraphUser[]; '@odata.nextLink'?: string };
      users += page.value.length;
      url = page['@odata.nextLink'];
    } else {
      // The next link comes before "value" (as in Graph), so the head of the body holds it.
      url = /"@odata\.nextLink":"([^"]+)"/.exec(body.toString('utf8', 0, 2048))?.[1];
      for (let at = body.indexOf(USER_START); at !== -1; at = body.indexOf(USER_START, at + USER_START.length)) users += 1;
    }
    pages += 1;
    if ((pages & 63) === 0) sampleRss('paging');
  }
  const ms = performance.now() - t0;
  const clientCpuMs = threadCpuMs() - clientCpu0;
  const emulatorCpu1 = await server.cpuMs();
  sampleRss('paging');
  const emulatorCpuMs = emulatorCpu0 === undefined || emulatorCpu1 === undefined ? undefined : emulatorCpu1 - emulatorCpu0;
  return { ms, users, pages, bytes, clientCpuMs, emulatorCpuMs };
}

/** The same rows into node:sqlite: one transaction, one prepared statement. */
function insertIntoSqlite(dbDir: string, count: number): { ms: number; cpuMs: number } {
  const db = new DatabaseSync(join(dbDir, 'bench.db'));
  db.exec(`CREATE TABLE users (
    id TEXT PRIMARY KEY, displayName TEXT, givenName TEXT, surname TEXT, mail TEXT, userPrincipalName TEXT,
    jobTitle TEXT, department TEXT, officeLocation TEXT, accountEnabled INTEGER, userType TEXT,
    createdDateTime TEXT, employeeId TEXT, companyName TEXT, mobilePhone TEXT, businessPhones TEXT)`);
  const insert = db.prepare(`INSERT INTO users VALUES (${SELECT.map(() => '?').join(',')})`);
  // The generator is deterministic, so these are the rows the emulator served. They are made
  // in chunks outside the timed part, so that only the inserts are measured.
  const source = generateUsers(count);
  let ms = 0;
  let cpuMs = 0;
  db.exec('BEGIN');
  for (;;) {
    const chunk: UserInput[] = [];
    while (chunk.length < 10_000) {
      const next = source.next();
      if (next.done) break;
      chunk.push(next.value);
    }
    if (chunk.length === 0) break;
    const t0 = performance.now();
    const c0 = threadCpuMs();
    for (const u of chunk) {
      insert.run(
        u.id!, u.displayName!, u.givenName ?? null, u.surname ?? null, u.mail ?? null, u.userPrincipalName!, u.jobTitle ?? null,
        u.department ?? null, u.officeLocation ?? null, u.accountEnabled ? 1 : 0, u.userType!, u.createdDateTime!,
        u.employeeId ?? null, u.companyName ?? null, u.mobilePhone ?? null, JSON.stringify(u.businessPhones ?? []),
      );
    }
    ms += performance.now() - t0;
    cpuMs += threadCpuMs() - c0;
  }
  const t0 = performance.now();
  const c0 = threadCpuMs();
  db.exec('COMMIT');
  ms += performance.now() - t0;
  cpuMs += threadCpuMs() - c0;
  sampleRss('sqlite');
  db.close();
  return { ms, cpuMs };
}

interface DemoTimings {
  seedMs: number;
  saveMs: number;
  loadMs: number;
  stateUsers: number;
}

/** A directory holding only an app registration the seed can consent to. */
function directoryWithApp(): { directory: Directory; appId: string } {
  const directory = new Directory(new Clock());
  const appId = crypto.randomUUID();
  directory.addApp({
    appId,
    displayName: 'Bench app',
    homeTenantId: null,
    signInAudience: 'AzureADMultipleOrgs',
    redirectUris: [],
    postLogoutRedirectUris: [],
    secrets: [],
    certificates: [],
    requiredAppRoles: ['User.Read.All'],
    disabled: false,
    groupMembershipClaims: 'None',
  });
  return { directory, appId };
}

/** The seeded generator building one tenant of `count` users, then saving and loading a tenant of `stateUsers`. */
async function timeSeedAndState(dir: string, count: number, stateUsers: number): Promise<DemoTimings> {
  const seeded = directoryWithApp();
  let t0 = performance.now();
  await applySeed(seeded.directory, { kind: 'generate', tenants: 1, usersPerTenant: count, seed: 9 }, seeded.appId);
  const seedMs = performance.now() - t0;
  const generated = [...seeded.directory.tenants.values()][0]!;
  if (generated.users.length !== count) throw new Error(`the generator built ${generated.users.length} users, expected ${count}`);
  sampleRss('seed');

  const saved = directoryWithApp();
  await applySeed(saved.directory, { kind: 'generate', tenants: 1, usersPerTenant: stateUsers, seed: 3, consentedTenants: 1 }, saved.appId);
  t0 = performance.now();
  await saveState(dir, saved.directory);
  const saveMs = performance.now() - t0;
  const loaded = new Directory(new Clock());
  t0 = performance.now();
  await loadState(dir, loaded);
  const loadMs = performance.now() - t0;
  if ([...loaded.tenants.values()][0]!.users.length !== stateUsers) throw new Error('the loaded state lost users');
  sampleRss('state');
  return { seedMs, saveMs, loadMs, stateUsers };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { users: { type: 'string', default: '1000000' }, 'state-users': { type: 'string', default: '100000' }, 'in-thread': { type: 'boolean', default: false } },
  });
  const count = Number(values.users);
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`--users must be a positive integer, not ${values.users}`);
  const stateUsers = Number(values['state-users']);
  if (!Number.isSafeInteger(stateUsers) || stateUsers < 1) throw new Error(`--state-users must be a positive integer, not ${values['state-users']}`);
  const inThread = values['in-thread'];

  const loadAtStart = loadavg()[0]!;
  sampleRss('start');
  const server: Server = inThread
    ? await serve(count).then((s) => ({ ...s, cpuMs: async () => undefined }))
    : await serveInWorker(count);
  sampleRss('built');
  const dbDir = mkdtempSync(join(tmpdir(), 'roster-bench-'));
  const dispatcher = new Agent({ connect: { ca: server.caCertPem }, keepAliveTimeout: 30_000 });
  try {
    const passes = [
      ['serve, cold (first listing)', await pageThrough(server, dispatcher, 'serve')],
      ['serve, warm (same listing again)', await pageThrough(server, dispatcher, 'serve')],
      ['serve + client JSON.parse, warm', await pageThrough(server, dispatcher, 'parse')],
    ] as const;
    for (const [name, pass] of passes) if (pass.users !== count) throw new Error(`${name}: paged ${pass.users} users, expected ${count}`);
    const sqlite = insertIntoSqlite(dbDir, count);
    const demo = await timeSeedAndState(dbDir, count, stateUsers);
    const cold = passes[0][1];

    const rate = (n: number, ms: number) => `${perSecond(n, ms).toLocaleString('en-US')}/s`;
    const sqliteRate = perSecond(count, sqlite.ms);
    const rows: string[][] = [['phase', 'wall', 'rate', 'CPU: client / emulator thread']];
    rows.push(['build tenant (addUsersUnchecked)', `${seconds(server.buildMs)} s`, `${rate(count, server.buildMs)} users`, '']);
    for (const [name, pass] of passes) {
      rows.push([
        `(a) GET /users $top=999, 16 props: ${name}`,
        `${seconds(pass.ms)} s`,
        `${rate(pass.users, pass.ms)} users`,
        `${seconds(pass.clientCpuMs)} s / ${pass.emulatorCpuMs === undefined ? 'same thread' : `${seconds(pass.emulatorCpuMs)} s`}`,
      ]);
    }
    rows.push(['(b) node:sqlite INSERT, one transaction', `${seconds(sqlite.ms)} s`, `${rate(count, sqlite.ms)} rows`, `${seconds(sqlite.cpuMs)} s`]);
    rows.push(['(c) seeded generator (applySeed), one tenant', `${seconds(demo.seedMs)} s`, `${rate(count, demo.seedMs)} users`, '']);
    rows.push([`(d) save state, ${demo.stateUsers.toLocaleString('en-US')} users`, `${seconds(demo.saveMs)} s`, `${rate(demo.stateUsers, demo.saveMs)} users`, '']);
    rows.push([`(e) load state, ${demo.stateUsers.toLocaleString('en-US')} users`, `${seconds(demo.loadMs)} s`, `${rate(demo.stateUsers, demo.loadMs)} users`, '']);
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
    console.log(
      `\nEmulator benchmark: ${count.toLocaleString('en-US')} users, ${cold.pages} pages of up to 999, ${(cold.bytes / MB).toFixed(0)} MB of JSON per pass, ` +
        `Node ${process.version}, emulator ${inThread ? 'on the client\'s thread' : 'on its own thread'}\n`,
    );
    for (const r of rows) console.log(`  ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('   ')}`);
    console.log('');
    for (const [name, pass] of passes) {
      console.log(`  ratio ${name}: ${(perSecond(pass.users, pass.ms) / sqliteRate).toFixed(2)}x  (emulator users/s ÷ sqlite rows/s)`);
    }
    for (const [name, ms, users] of [
      ['seeded generator', demo.seedMs, count],
      ['save state', demo.saveMs, demo.stateUsers],
      ['load state', demo.loadMs, demo.stateUsers],
    ] as const) {
      console.log(`  ratio ${name}: ${(perSecond(users, ms) / sqliteRate).toFixed(2)}x  (users/s ÷ sqlite rows/s)`);
    }
    for (const [name, pass] of passes) {
      if (pass.emulatorCpuMs === undefined) continue;
      const capacity = perSecond(pass.users, pass.emulatorCpuMs);
      console.log(`  emulator thread alone, ${name}: ${capacity.toLocaleString('en-US')} users per CPU second = ${(capacity / perSecond(count, sqlite.cpuMs)).toFixed(2)}x sqlite rows per CPU second`);
    }
    console.log(
      `\n  load average (1 min) at start / end: ${loadAtStart.toFixed(2)} / ${loadavg()[0]!.toFixed(2)} on ${availableParallelism()} CPUs` +
        ' (other processes compete for the CPUs when it exceeds the count; wall times then stretch, CPU times much less)',
    );
    console.log(`  RSS at the end of each phase: ${Object.entries(rssSamples).map(([k, v]) => `${k} ${(v / MB).toFixed(0)} MB`).join(', ')}`);
    console.log(`  peak RSS of the process (maxRSS): ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB\n`);
  } finally {
    await dispatcher.close();
    await server.close();
    rmSync(dbDir, { recursive: true, force: true });
  }
}

if (isMainThread) await main();
else await workerMain();
