/**
 * Events and webhooks, each figure from one run:
 *  - a full sync of a tenant with events on against the same sync with events
 *    off (fresh databases, alternating order off, on, on, off, ..., the
 *    fastest of `--runs` runs each);
 *  - under that ratio, two floors for the events' share of it, each the
 *    fastest of `--runs` runs on a fresh database of the same engine, writing
 *    the events the first events-on sync wrote (read back in sequence order)
 *    in transactions of one sync page (999 events) each, as the sync does:
 *      the outbox alone: `EventRepository.append` of the same drafts, as the
 *      sync calls it (it serialises the data and draws the ids; on
 *      PostgreSQL it takes the turn and joins the endpoints, on SQLite it
 *      reads them: there are none);
 *      the rows alone: the same rows already serialised, one plain multi-row
 *      insert a page (SQLite: insert ... values; PostgreSQL: insert ... select
 *      from unnest), no deliveries, no turn: the least one row per event
 *      costs on this engine.
 *    Each is printed as the ratio the sync would have if its events cost that
 *    and nothing more, (off + floor) / off. Between the sync's own ratio and
 *    the first is what events cost the sync besides the append (building the
 *    drafts, a larger transaction); under the second no outbox of one row
 *    per event can go;
 *  - webhook deliveries per second to a local receiver that answers 204, sent
 *    over 16 connections (WEBHOOK_CONCURRENCY_PER_ENDPOINT=16, above the
 *    default 8) in batches of 256, against bare POSTs over the same 16
 *    keep-alive connections.
 *
 *   node_modules/.bin/node bench/events.ts [--users 100000] [--deliveries 10000] [--runs 2] [--engines sqlite,postgres]
 *
 * The emulator shares this process's event loop with the sync: both syncs pay
 * for it alike, so the ratio stands, though the absolute times are longer than
 * with Graph on another machine.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { CompiledQuery } from 'kysely';
import pLimit from 'p-limit';
import { Agent, request } from 'undici';
import { GraphReader } from '../src/directory/graph-reader.ts';
import { DirectorySync } from '../src/directory/sync.ts';
import { DeliveryWorker } from '../src/events/delivery.ts';
import { WebhookEndpoints } from '../src/events/endpoints.ts';
import type { Engine, Store } from '../src/store/database.ts';
import type { EventDraft } from '../src/store/events.ts';
import { repositoriesOf, transaction } from '../src/store/repositories.ts';
import { TenantRepository } from '../src/store/tenants.ts';
import { startTestEmulator } from '../test/helpers/emulator.ts';
import { connectToEmulator } from '../test/helpers/entra.ts';
import { demoApp } from '../test/helpers/fixtures.ts';
import { openTestStore } from '../test/helpers/stores.ts';

const { values } = parseArgs({ options: { users: { type: 'string', default: '100000' }, deliveries: { type: 'string', default: '10000' }, runs: { type: 'string', default: '2' }, engines: { type: 'string', default: 'sqlite,postgres' } } });
const RUNS = Number(values.runs);
/** Requests in flight to the receiver, for the worker and the bare POSTs alike. */
const CONCURRENCY = 16;
const USERS = Number(values.users);
const DELIVERIES = Number(values.deliveries);
const ENGINES = values.engines!.split(',') as Engine[];
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const emulator = await startTestEmulator();
const tenant = emulator.ctx.directory.addTenant({ displayName: 'Benchco', domains: ['benchco.onmicrosoft.com', 'benchco.com'] });
emulator.ctx.directory.addUsersUnchecked(
  tenant,
  Array.from({ length: USERS }, (_, i) => ({ userPrincipalName: `user${i}@benchco.com`, displayName: `User ${i}`, givenName: 'User', surname: `N${i}`, jobTitle: i % 3 ? 'Engineer' : null, department: `Dept ${i % 40}`, businessPhones: i % 2 ? ['+1 425 555 0100'] : [] })),
);
emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
const connection = await connectToEmulator(emulator);
const budget = pLimit(8);
const reader = new GraphReader({ http: connection.http, budget: (request) => budget(request) });
const entra = connection.app();
const OPS = { kind: 'cli' as const, id: 'cli', name: 'bench', source: 'cli' };

const load = () => loadavg().map((n) => n.toFixed(2)).join(' ');
console.log(`bench/events.ts: ${USERS.toLocaleString('en-US')} users, ${DELIVERIES.toLocaleString('en-US')} deliveries, Node ${process.version}, load average ${load()}\n`);

/** An event as the sync wrote it, read back from the outbox. */
interface WrittenEvent {
  id: string;
  type: string;
  tenant_id: string | null;
  data: string;
  previous_attributes: string | null;
}

/**
 * One full sync into a fresh database, with events on or off; its time in ms,
 * and with `readBack` the events it wrote, in sequence order.
 */
async function fullSync(engine: Engine, eventsEnabled: boolean, readBack = false): Promise<{ ms: number; events?: WrittenEvent[] }> {
  const db = await openTestStore(engine);
  try {
    const store = { ...db.store, eventsEnabled };
    await new TenantRepository(store.db).activate({ id: tenant.id, displayName: 'Benchco', domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
    const sync = new DirectorySync({ store, entra, reader, graphBaseUrl: connection.graphBaseUrl });
    const t0 = performance.now();
    const outcome = await sync.run(tenant.id, { full: true });
    const ms = performance.now() - t0;
    if (outcome.status !== 'succeeded' || outcome.created !== USERS) throw new Error(`full sync ${outcome.status}: ${outcome.error}`);
    const events = Number((await store.db.selectFrom('events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    if (events !== (eventsEnabled ? USERS : 0)) throw new Error(`${events} events written`);
    if (!readBack) return { ms };
    return { ms, events: await store.db.selectFrom('events').select(['id', 'type', 'tenant_id', 'data', 'previous_attributes']).orderBy('sequence').execute() };
  } finally {
    await db.drop();
  }
}

/** Events a sync commits together: one Graph page of users (DirectorySync's default page size). */
const SYNC_PAGE = 999;

function pagesOf<T>(items: readonly T[]): T[][] {
  const pages: T[][] = [];
  for (let i = 0; i < items.length; i += SYNC_PAGE) pages.push(items.slice(i, i + SYNC_PAGE));
  return pages;
}

/** Time in ms of `write` on a fresh database of the engine, then a check that it wrote every event. */
async function onFreshStore(engine: Engine, count: number, write: (store: Store) => Promise<void>): Promise<number> {
  const db = await openTestStore(engine);
  try {
    const store = { ...db.store, eventsEnabled: true };
    const t0 = performance.now();
    await write(store);
    const ms = performance.now() - t0;
    const written = Number((await store.db.selectFrom('events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    if (written !== count) throw new Error(`${written} of ${count} events written`);
    return ms;
  } finally {
    await db.drop();
  }
}

/** The outbox alone: Roster's `append` of the sync's drafts, one transaction a page. Parsing the data back is not timed; `append` serialises it again, as in the sync. */
function outboxAlone(engine: Engine, events: readonly WrittenEvent[]): Promise<number> {
  const pages = pagesOf(events.map((event): EventDraft => ({ type: event.type, tenantId: event.tenant_id, data: JSON.parse(event.data), previousAttributes: event.previous_attributes === null ? null : JSON.parse(event.previous_attributes) })));
  return onFreshStore(engine, events.length, async (store) => {
    for (const page of pages) await transaction(store, (repos) => repos.events.append(page, Date.now()));
  });
}

/** The rows alone: the same rows, serialised beforehand, one plain multi-row insert a page in its own transaction. */
function rowsAlone(engine: Engine, events: readonly WrittenEvent[]): Promise<number> {
  const now = Date.now();
  const columns = 'id, type, tenant_id, created_at, data, previous_attributes';
  const queries = pagesOf(events).map((page) => {
    if (engine === 'postgres') {
      return CompiledQuery.raw(`insert into events (${columns}) select id, type, tenant_id, $4::bigint, data, previous_attributes from unnest($1::text[], $2::text[], $3::text[], $5::text[], $6::text[]) as r(id, type, tenant_id, data, previous_attributes)`, [
        page.map((e) => e.id), page.map((e) => e.type), page.map((e) => e.tenant_id), now, page.map((e) => e.data), page.map((e) => e.previous_attributes),
      ]);
    }
    return CompiledQuery.raw(`insert into events (${columns}) values ${page.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}`, page.flatMap((e) => [e.id, e.type, e.tenant_id, now, e.data, e.previous_attributes]));
  });
  return onFreshStore(engine, events.length, async (store) => {
    for (const query of queries) await store.db.transaction().execute((trx) => trx.executeQuery(query));
  });
}

async function deliveriesPerSecond(engine: Engine): Promise<{ ms: number; rate: number; bareRate: number }> {
  const db = await openTestStore(engine);
  const receiver = createServer((_req, res) => void res.writeHead(204).end());
  receiver.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    await new WebhookEndpoints({ store: db.store }).create({ url }, OPS);
    const events = repositoriesOf(db.store).events;
    for (let i = 0; i < DELIVERIES; i += 1000) await events.append(Array.from({ length: Math.min(1000, DELIVERIES - i) }, (_, j) => ({ type: 'user.updated', tenantId: tenant.id, data: { id: `user-${i + j}`, department: 'Sales' }, previousAttributes: { department: 'Legal' } })), Date.now());
    // The baseline: bare POSTs of the same count over as many connections, with nothing recorded.
    const agent = new Agent({ connections: CONCURRENCY });
    const bare = pLimit(CONCURRENCY);
    let t = performance.now();
    await Promise.all(Array.from({ length: DELIVERIES }, () => bare(async () => (await request(url, { method: 'POST', dispatcher: agent, body: '{}' })).body.dump())));
    const bareMs = performance.now() - t;
    await agent.close();
    const sender = new DeliveryWorker({ store: db.store, perEndpoint: CONCURRENCY, batch: 256 });
    t = performance.now();
    await sender.drain();
    const ms = performance.now() - t;
    await sender.stop();
    const done = Number((await db.store.db.selectFrom('webhook_deliveries').select((eb) => eb.fn.countAll().as('n')).where('status', '=', 'succeeded').executeTakeFirstOrThrow()).n);
    if (done !== DELIVERIES) throw new Error(`${done} of ${DELIVERIES} delivered`);
    return { ms, rate: DELIVERIES / (ms / 1000), bareRate: DELIVERIES / (bareMs / 1000) };
  } finally {
    receiver.closeAllConnections();
    await new Promise((resolve) => receiver.close(resolve));
    await db.drop();
  }
}

/** A floor's line: its time, and the ratio the sync would have if events cost only that. */
const floorLine = (label: string, runs: number[], off: number) => {
  const ms = Math.min(...runs);
  return `  ${label.padEnd(38)} ${seconds(ms)}   -> (off + this) / off = ${((off + ms) / off).toFixed(2)}x   (runs ${runs.map(seconds).join(', ')})`;
};

for (const engine of ENGINES) {
  const runs: Record<'off' | 'on', number[]> = { off: [], on: [] };
  let written: WrittenEvent[] | undefined;
  // off, on, on, off, off, on, ...: neither setting always runs first.
  for (let i = 0; i < 2 * RUNS; i++) {
    const eventsOn = i % 4 === 1 || i % 4 === 2;
    // The events are read back once, from the first events-on sync.
    const sync = await fullSync(engine, eventsOn, eventsOn && !written);
    written ??= sync.events;
    runs[eventsOn ? 'on' : 'off'].push(sync.ms);
  }
  const [off, on] = [Math.min(...runs.off), Math.min(...runs.on)];
  // The floors, after every sync so that their writes weigh on none of them; alternating like the syncs.
  const floors: Record<'outbox' | 'rows', number[]> = { outbox: [], rows: [] };
  for (let i = 0; i < 2 * RUNS; i++) {
    if (i % 4 === 0 || i % 4 === 3) floors.outbox.push(await outboxAlone(engine, written!));
    else floors.rows.push(await rowsAlone(engine, written!));
  }
  const dataBytes = written!.reduce((sum, event) => sum + Buffer.byteLength(event.data), 0) / written!.length;
  written = undefined;
  const delivery = await deliveriesPerSecond(engine);
  console.log(engine);
  console.log(`  full sync, events off                  ${seconds(off)}   (runs ${runs.off.map(seconds).join(', ')})`);
  console.log(`  full sync, events on                   ${seconds(on)}   (runs ${runs.on.map(seconds).join(', ')})`);
  console.log(`    ratio on / off                       ${(on / off).toFixed(2)}x   (aim: at most 1.1x)`);
  console.log(`  the sync's events written again on a fresh database (data ${Math.round(dataBytes)} bytes an event on average):`);
  console.log(floorLine("the outbox alone, Roster's append", floors.outbox, off));
  console.log(floorLine('the rows alone, one insert a page', floors.rows, off));
  console.log(`  webhook deliveries to a local receiver ${seconds(delivery.ms)}   ${Math.round(delivery.rate).toLocaleString('en-US')} deliveries/s   (aim: at least 2,000/s)`);
  console.log(`    bare POSTs, nothing signed or recorded ${Math.round(delivery.bareRate).toLocaleString('en-US')}/s; ratio deliveries / bare ${(delivery.rate / delivery.bareRate).toFixed(2)}\n`);
}
console.log(`load average at the end ${load()}`);
await connection.close();
await emulator.close();
