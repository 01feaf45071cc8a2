/**
 * The API's users list at scale: paging through every user of a 100,000-user
 * tenant with `GET /api/v1/tenants/{id}/users?limit=1000` (key check, rate
 * limit, keyset query, serialisation, HTTP, the client's JSON.parse) against
 * reading the same rows straight from the database in the same keyset batches
 * of 1,000, as a ratio taken in one run on this machine (aim: at least 0.5x).
 *
 * The client runs in the server's process, so its own work counts against the
 * API. Two more figures, best of the same passes, split it off: the client
 * alone (decoding and JSON.parse of one pass's captured bodies, as undici's
 * `body.json()` does it, no HTTP), with the ratio a server costing nothing
 * would reach; and the API served with each body read to its last byte but not
 * parsed (the cursor taken from the body's tail), Roster's side on its own.
 * The aim is judged on the parsed figure.
 *
 *   node_modules/.bin/node bench/api.ts [--engine sqlite|postgres] [--users 100000] [--passes 3] [--profile api.cpuprofile]
 *
 * `--profile` samples the CPU during one more pass through the API, writes
 * the profile (Chrome DevTools opens it) and prints where the time went.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import { Agent, request, type Dispatcher } from 'undici';
import { generateUsers } from '../src/emulator/seed.ts';
import type { Engine } from '../src/store/database.ts';
import { ApiKeys } from '../src/tenants/api-keys.ts';
import { addOrg, consent } from '../test/helpers/fixtures.ts';
import { startTestRoster } from '../test/helpers/roster.ts';
import { TenantRepository } from '../src/store/tenants.ts';

const { values } = parseArgs({ options: { engine: { type: 'string', default: 'sqlite' }, users: { type: 'string', default: '100000' }, passes: { type: 'string', default: '3' }, profile: { type: 'string' } } });
const ENGINE = values.engine as Engine;
if (ENGINE !== 'sqlite' && ENGINE !== 'postgres') throw new Error('--engine must be sqlite or postgres');
const USERS = Number(values.users);
const PASSES = Number(values.passes);

const roster = await startTestRoster({ engine: ENGINE, env: { API_RATE_LIMIT_PER_MINUTE: '1000000' } });
const { ctx } = roster.emulator;
const org = addOrg(ctx, 'Benchco', 'benchco.com');
ctx.directory.addUsersUnchecked(org.tenant, [...generateUsers(org.tenant, { count: USERS - 2, seed: 7, password: 'pw' })]);
consent(ctx, org);
await new TenantRepository(roster.db.store.db).activate({ id: org.tenant.id, displayName: 'Benchco', domains: org.tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
const syncStart = performance.now();
const outcome = await roster.scheduler.syncNow(org.tenant.id);
if (outcome?.status !== 'succeeded') throw new Error(`first sync ended ${outcome?.status}: ${outcome?.error}`);
const syncSeconds = (performance.now() - syncStart) / 1000;

const { secret } = await new ApiKeys(roster.db.store).create({ name: 'bench', scopes: ['directory:read'] }, { kind: 'cli', id: 'cli', name: 'bench', source: 'cli' });
const agent = new Agent({ connections: 1, pipelining: 1 });
const origin = roster.url.replace('localhost', '127.0.0.1');

/** One page of the users list, answered 200. */
async function getPage(after: string | null): Promise<Dispatcher.ResponseData['body']> {
  const path = `/api/v1/tenants/${org.tenant.id}/users?limit=1000${after ? `&after=${after}` : ''}`;
  const response = await request(`${origin}${path}`, { dispatcher: agent, headers: { authorization: `Bearer ${secret}` } });
  if (response.statusCode !== 200) throw new Error(`${path} answered ${response.statusCode}: ${await response.body.text()}`);
  return response.body;
}

type Page = { data: unknown[]; next_cursor: string | null };

/** Every user through the API, page after page, as a client would: one connection, each page parsed. */
async function throughApi(): Promise<number> {
  let count = 0;
  let after: string | null = null;
  do {
    const page = (await (await getPage(after)).json()) as Page;
    count += page.data.length;
    after = page.next_cursor;
  } while (after);
  return count;
}

/** A page's body as `body.json()` parses it: undici decodes the bytes (past a BOM) with Buffer's utf8Slice, then JSON.parse. */
function parsePage(body: Buffer): Page {
  const start = body.length > 2 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  return JSON.parse((body as Buffer & { utf8Slice(start: number, end: number): string }).utf8Slice(start, body.length)) as Page;
}

const CURSOR_KEY = Buffer.from('"next_cursor":');

/** The cursor from the tail of a page's bytes (the body ends `,"next_cursor":...}`), without parsing the rest. */
function tailCursor(body: Uint8Array): string | null {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const at = bytes.lastIndexOf(CURSOR_KEY);
  if (at < 0) throw new Error('a page without "next_cursor"');
  return JSON.parse(bytes.toString('utf8', at + CURSOR_KEY.length, bytes.length - 1)) as string | null;
}

/** Every page's raw body and cursor, from one untimed pass; each page's tail cursor checked against its full parse. */
async function captureBodies(): Promise<{ bodies: Buffer[]; cursors: (string | null)[] }> {
  const bodies: Buffer[] = [];
  const cursors: (string | null)[] = [];
  let after: string | null = null;
  do {
    const body: Buffer = Buffer.from(await (await getPage(after)).arrayBuffer());
    bodies.push(body);
    after = parsePage(body).next_cursor;
    cursors.push(after);
    if (tailCursor(body) !== after) throw new Error(`page ${bodies.length}: the tail gives cursor ${tailCursor(body)}, the full parse ${after}`);
  } while (after);
  return { bodies, cursors };
}

/** The client's share alone: decoding and parsing the captured pages, no HTTP. */
function clientAlone(bodies: Buffer[]): number {
  let count = 0;
  for (const body of bodies) count += parsePage(body).data.length;
  return count;
}

/** Every page through the API with each body read to its last byte but not parsed: only the cursor is taken from its tail. */
async function throughApiUnparsed(cursors: (string | null)[]): Promise<number> {
  let bytes = 0;
  let after: string | null = null;
  do {
    const body = new Uint8Array(await (await getPage(after)).arrayBuffer());
    bytes += body.byteLength;
    after = tailCursor(body);
    cursors.push(after);
  } while (after);
  return bytes;
}

/** The same rows straight from the database, in the same keyset batches of 1,000. */
async function straightFromDatabase(): Promise<number> {
  let count = 0;
  let after: string | undefined;
  for (;;) {
    let query = roster.db.store.db.selectFrom('users').selectAll().where('tenant_id', '=', org.tenant.id);
    if (after !== undefined) query = query.where('id', '>', after);
    const rows = await query.orderBy('id').limit(1000).execute();
    count += rows.length;
    if (rows.length < 1000) return count;
    after = rows.at(-1)!.id;
  }
}

/** Where a sample's time goes: the innermost frame on its stack that one of these recognises. */
const PROFILER = 'the profiler itself';
const STAGES: [string, (frame: { functionName: string; url: string }) => boolean][] = [
  [PROFILER, (f) => f.url === 'node:inspector'],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['waiting (I/O, the database server)', (f) => f.functionName === '(idle)'],
  ['client: undici, body and JSON.parse', (f) => f.url.includes('/undici/')],
  ['database: query, driver and rows', (f) => /\/(kysely|pg|pg-protocol)\/|sqlite-dialect|user-json|store\/users/.test(f.url) || (f.url === '' && f.functionName === 'all')],
  ['page body in Node (userOut, JSON, Buffer)', (f) => /api\/schemas|api\/routes\/users/.test(f.url)],
  ['API key and rate limit', (f) => /api-keys|rate-limit/.test(f.url)],
  ['HTTP: socket writes and reads', (f) => /_http_|node:net|stream_base_commons/.test(f.url)],
  ['Fastify, hooks and plugins', (f) => /\/(fastify|@fastify|find-my-way|pino|prom-client|helmet)\//.test(f.url)],
];

/** One more pass through the API under the CPU profiler: the profile to `file`, the share of each stage. */
async function profiled(file: string): Promise<[string, number][]> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  await throughApi();
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  writeFileSync(file, JSON.stringify(profile));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parents = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parents.set(child, n.id);
  const spent = new Map<string, number>();
  profile.samples!.forEach((id, i) => {
    let stage = 'other';
    for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
      const found = STAGES.find(([, test]) => test(nodes.get(at)!.callFrame));
      if (found) {
        stage = found[0];
        break;
      }
    }
    spent.set(stage, (spent.get(stage) ?? 0) + profile.timeDeltas![i]!);
  });
  spent.delete(PROFILER);
  const total = [...spent.values()].reduce((a, b) => a + b, 0);
  return [...spent].sort((a, b) => b[1] - a[1]).map(([stage, us]) => [stage, us / total]);
}

async function timed(work: () => Promise<number> | number): Promise<{ seconds: number; rows: number }> {
  const start = performance.now();
  const rows = await work();
  return { seconds: (performance.now() - start) / 1000, rows };
}

const api: number[] = [];
const database: number[] = [];
const client: number[] = [];
const unparsed: number[] = [];
let captured: { bodies: Buffer[]; cursors: (string | null)[] } = { bodies: [], cursors: [] };
for (let pass = 0; pass < PASSES; pass++) {
  const a = await timed(throughApi);
  const d = await timed(straightFromDatabase);
  if (a.rows !== USERS || d.rows !== USERS) throw new Error(`read ${a.rows} users through the API and ${d.rows} from the database, expected ${USERS}`);
  api.push(a.seconds);
  database.push(d.seconds);
  // Captured after the first pass's two figures, so those are taken as cold as before.
  if (pass === 0) captured = await captureBodies();
  const cursors: (string | null)[] = [];
  const u = await timed(() => throughApiUnparsed(cursors));
  const c = await timed(() => clientAlone(captured.bodies));
  const capturedBytes = captured.bodies.reduce((sum, b) => sum + b.length, 0);
  if (u.rows !== capturedBytes || JSON.stringify(cursors) !== JSON.stringify(captured.cursors)) throw new Error(`read ${u.rows} bytes in ${cursors.length} pages unparsed, captured ${capturedBytes} in ${captured.bodies.length} with other cursors`);
  if (c.rows !== USERS) throw new Error(`parsed ${c.rows} users from the captured pages, expected ${USERS}`);
  client.push(c.seconds);
  unparsed.push(u.seconds);
}

const stages = values.profile ? await profiled(values.profile) : null;
await agent.close();
await roster.close();

const best = (xs: number[]) => Math.min(...xs);
const rate = (seconds: number) => `${Math.round(USERS / seconds).toLocaleString('en-GB')} users/s`;
console.log(`bench/api.ts: ${ENGINE}, ${USERS.toLocaleString('en-GB')} users (first sync ${syncSeconds.toFixed(1)} s), best of ${PASSES} passes, pages of 1,000`);
console.log(`GET /api/v1/tenants/{id}/users?limit=1000, every page  ${best(api).toFixed(2)} s  ${rate(best(api))}`);
console.log(`the same rows straight from the database (keyset)      ${best(database).toFixed(2)} s  ${rate(best(database))}`);
console.log(`ratio API / database (throughput)                       ${(best(database) / best(api)).toFixed(3)}x`);
console.log(`the client alone: decoding and JSON.parse of the same pages   ${best(client).toFixed(2)} s`);
console.log(`  ceiling of the ratio with a server that costs nothing        ${(best(database) / best(client)).toFixed(2)}x`);
console.log(`the API served, the client reading the bytes without parsing  ${best(unparsed).toFixed(2)} s  ratio ${(best(database) / best(unparsed)).toFixed(3)}x`);
if (stages) {
  console.log(`where one profiled pass through the API spent its time (${values.profile}):`);
  for (const [stage, share] of stages) console.log(`  ${stage.padEnd(42)} ${(share * 100).toFixed(1).padStart(5)}%`);
}
