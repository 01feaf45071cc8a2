/**
 * Directory sync cost, each figure a ratio taken in one run, on SQLite and on
 * PostgreSQL:
 *  - a full sync of a tenant against (a) fetching the same pages and discarding
 *    them and (b) inserting the same rows directly, in one transaction;
 *  - an incremental (delta) sync after 1% of the users changed, against the full sync;
 *  - the process's RSS growth during the full sync.
 *
 *   node_modules/.bin/node bench/sync.ts [--users 100000] [--engines sqlite,postgres]
 *
 * The emulator runs in the same process on its own thread (a worker), as Graph
 * is another machine in production: its serving does not compete with the
 * synchronous SQLite writes for one event loop.
 */
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import pLimit from 'p-limit';
import { GraphReader } from '../src/directory/graph-reader.ts';
import { DirectorySync, SYNCED_PROPERTIES } from '../src/directory/sync.ts';
import type { Engine } from '../src/store/database.ts';
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
type ToWorker = { type: 'edit'; count: number; tag: string } | { type: 'close' };

/** The emulator's thread: builds the tenant, then edits users when asked. */
async function emulatorThread(users: number): Promise<void> {
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
  emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
  parentPort!.on('message', (message: ToWorker) => {
    if (message.type === 'edit') {
      for (let i = 0; i < message.count; i++) emulator.ctx.directory.editUser(tenant, tenant.users[(i * 97) % users]!.props.id, { jobTitle: `Changed ${i} ${message.tag}` });
      parentPort!.postMessage('edited');
    } else void emulator.close().then(() => parentPort!.close());
  });
  parentPort!.postMessage({ urls: emulator.urls, caCertPem: emulator.caCertPem, demoApp: emulator.demoApp, tenantId: tenant.id, domains: tenant.domains } satisfies Served);
}

if (!isMainThread) {
  await emulatorThread((workerData as { users: number }).users);
} else {
  await main();
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { users: { type: 'string', default: '100000' }, engines: { type: 'string', default: 'sqlite,postgres' } } });
  const USERS = Number(values.users);
  const ENGINES = values.engines!.split(',') as Engine[];
  const MB = 1024 * 1024;

  const worker = new Worker(new URL(import.meta.url), { workerData: { users: USERS } });
  const served = await new Promise<Served>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const ask = (message: ToWorker) =>
    new Promise<unknown>((resolve) => {
      worker.once('message', resolve);
      worker.postMessage(message);
    });
  const connection = await connectToEmulator(served as unknown as TestEmulator);
  const budget = pLimit(8);
  const reader = new GraphReader({ http: connection.http, budget: (request) => budget(request) });
  const entra = connection.app();
  const tenant = { id: served.tenantId, domains: served.domains };

  const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`bench/sync.ts: ${USERS.toLocaleString('en-US')} users, pages of 999, Node ${process.version}\n`);

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

  for (const engine of ENGINES) {
    const db = await openTestStore(engine);
    try {
      await new TenantRepository(db.store.db).activate({ id: tenant.id, displayName: 'Benchco', domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
      const fetchMs = await fetchOnly();

      // (b) the same rows inserted directly, in batches, in one transaction (rows read once, untimed).
      const listed = await listAll();
      const rows = listed.map((u) => ({
        tenant_id: tenant.id, id: u.id, display_name: u.displayName, given_name: u.givenName, surname: u.surname, mail: u.mail,
        user_principal_name: u.userPrincipalName, job_title: u.jobTitle, department: u.department, office_location: u.officeLocation,
        account_enabled: u.accountEnabled ? 1 : 0, user_type: u.userType, created_date_time: u.createdDateTime, employee_id: u.employeeId,
        company_name: u.companyName, mobile_phone: u.mobilePhone, business_phones: JSON.stringify(u.businessPhones), deleted_at: null,
        roster_role: 'member' as const, last_sign_in_at: null, synced_at: Date.now(), seen_run_id: 'bench', updated_at: Date.now(),
      }));
      let t0 = performance.now();
      await db.store.db.transaction().execute(async (trx) => {
        // 23 columns a row: batches stay under SQLite's and PostgreSQL's parameter limits.
        for (let i = 0; i < rows.length; i += 1000) await trx.insertInto('users').values(rows.slice(i, i + 1000) as never).execute();
      });
      const insertMs = performance.now() - t0;
      await db.store.db.deleteFrom('users').where('tenant_id', '=', tenant.id).execute();

      const sync = new DirectorySync({ store: db.store, entra, reader, graphBaseUrl: connection.graphBaseUrl });
      global.gc?.();
      const rss0 = process.memoryUsage.rss();
      let peak = rss0;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 50);
      t0 = performance.now();
      const full = await sync.run(tenant.id, { full: true });
      const fullMs = performance.now() - t0;
      clearInterval(sampler);
      if (full.status !== 'succeeded' || full.created !== USERS) throw new Error(`full sync ${full.status}: ${full.error}`);

      const changed = Math.max(1, Math.round(USERS / 100));
      await ask({ type: 'edit', count: changed, tag: engine });
      t0 = performance.now();
      const delta = await sync.run(tenant.id);
      const deltaMs = performance.now() - t0;
      if (delta.kind !== 'delta' || delta.updated !== changed) throw new Error(`delta sync: ${delta.kind} ${delta.updated}`);

      const baseline = Math.max(fetchMs, insertMs);
      console.log(`${engine}`);
      console.log(`  (a) fetch every page, discard          ${seconds(fetchMs)}`);
      console.log(`  (b) insert the same rows directly      ${seconds(insertMs)}`);
      console.log(`  full sync                              ${seconds(fullMs)}   ${Math.round(USERS / (fullMs / 1000)).toLocaleString('en-US')} users/s`);
      console.log(`    ratio full sync / max(a, b)          ${(fullMs / baseline).toFixed(2)}x   (aim: at most 1.3x)`);
      console.log(`  delta sync after 1% changed (${changed})   ${seconds(deltaMs)}`);
      console.log(`    ratio delta / full                   ${((deltaMs / fullMs) * 100).toFixed(1)}%   (aim: at most 5%)`);
      console.log(`  RSS growth during the full sync        ${((peak - rss0) / MB).toFixed(0)} MB (peak ${(peak / MB).toFixed(0)} MB)\n`);
    } finally {
      await db.drop();
    }
  }
  await connection.close();
  const exited = new Promise((resolve) => worker.once('exit', resolve));
  worker.postMessage({ type: 'close' } satisfies ToWorker);
  await exited;
}
