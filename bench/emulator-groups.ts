/**
 * Group delta benchmark: how fast the emulator serves a first `/groups/delta`
 * round (every group with its members in `members@delta` slices) for a tenant
 * shaped like the demo's Northwind, against how fast the same memberships go
 * into node:sqlite. Like `bench/emulator.ts`, the emulator must never be the
 * bottleneck of a sync: the ratio has to stay well above 1.
 *
 *   node_modules/.bin/node bench/emulator-groups.ts [--users 25000] [--groups 300]
 *
 * Emulator and client share one event loop here, so the rate includes the
 * client's side of TLS and JSON parsing.
 */
import { DatabaseSync } from 'node:sqlite';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { GROUP_SEED_SALT, generateUsers, seededGuid } from '../src/emulator/seed.ts';
import { generateGroups } from '../src/emulator/seed-groups.ts';
import { startEmulator } from '../src/emulator/server.ts';
import { benchAppToken } from './graph-token.ts';

const { values } = parseArgs({ options: { users: { type: 'string', default: '25000' }, groups: { type: 'string', default: '300' } } });
const userCount = Number(values.users);
const groupCount = Number(values.groups);

const emulator = await startEmulator({ dataDir: null });
const { ctx } = emulator;
const tenant = ctx.directory.addTenant({ displayName: 'Northwind Traders', domains: ['northwindtraders.onmicrosoft.com', 'northwindtraders.com'] });
ctx.directory.addUsersUnchecked(tenant, generateUsers(tenant, { count: userCount, seed: 7, password: 'x' }));
let t0 = performance.now();
ctx.directory.addGroupsUnchecked(tenant, generateGroups(tenant, { count: groupCount, seed: 7 ^ GROUP_SEED_SALT, guid: seededGuid }));
const buildMs = performance.now() - t0;
const memberships = tenant.groups.reduce((n, g) => n + g.members.length, 0);

const token = await benchAppToken(ctx, tenant.id, ['GroupMember.Read.All']);
const dispatcher = new Agent({ connect: { ca: emulator.caCertPem } });

/** One whole round: every page, parsed; returns the member entries seen and the pages. */
async function fullRound(): Promise<{ entries: number; pages: number; ms: number }> {
  const start = performance.now();
  let url: string | undefined = `${ctx.urls.graph}/v1.0/groups/delta?$select=displayName,groupTypes,securityEnabled,mailEnabled,members`;
  let entries = 0;
  let pages = 0;
  while (url) {
    const res = await request(url, { dispatcher, headers: { authorization: `Bearer ${token}`, prefer: 'odata.maxpagesize=100' } });
    const body = (await res.body.json()) as { value: { 'members@delta'?: unknown[] }[]; '@odata.nextLink'?: string };
    if (res.statusCode !== 200) throw new Error(`page ${pages}: ${res.statusCode} ${JSON.stringify(body)}`);
    for (const group of body.value) entries += group['members@delta']?.length ?? 0;
    pages += 1;
    url = body['@odata.nextLink'];
  }
  return { entries, pages, ms: performance.now() - start };
}

const cold = await fullRound();
const warm = await fullRound();
if (cold.entries !== memberships || warm.entries !== memberships) throw new Error(`a round carried ${cold.entries}/${warm.entries} member entries, the directory ${memberships}`);

// The same memberships into node:sqlite, one transaction: what a mirror's write side costs at best.
const db = new DatabaseSync(':memory:');
db.exec('CREATE TABLE memberships (group_id TEXT NOT NULL, member_id TEXT NOT NULL, PRIMARY KEY (group_id, member_id))');
const insert = db.prepare('INSERT INTO memberships (group_id, member_id) VALUES (?, ?)');
t0 = performance.now();
db.exec('BEGIN');
for (const group of tenant.groups) for (const member of group.members) insert.run(group.props.id, member);
db.exec('COMMIT');
const sqliteMs = performance.now() - t0;

const rate = (n: number, ms: number) => Math.round((n / ms) * 1000);
const sqliteRate = rate(memberships, sqliteMs);
console.log(`Group delta benchmark: ${userCount.toLocaleString('en')} users, ${groupCount} groups, ${memberships.toLocaleString('en')} memberships, Node ${process.version}`);
console.log(`  build groups (generator + addGroupsUnchecked)  ${(buildMs / 1000).toFixed(2)} s`);
for (const [name, run] of [
  ['first round, cold', cold],
  ['first round, warm', warm],
] as const) {
  console.log(`  /groups/delta ${name}: ${run.pages} pages, ${(run.ms / 1000).toFixed(2)} s, ${rate(run.entries, run.ms).toLocaleString('en')} member entries/s`);
}
console.log(`  node:sqlite INSERT, one transaction: ${(sqliteMs / 1000).toFixed(2)} s, ${sqliteRate.toLocaleString('en')} rows/s`);
console.log(`  ratio cold: ${(rate(cold.entries, cold.ms) / sqliteRate).toFixed(2)}x, warm: ${(rate(warm.entries, warm.ms) / sqliteRate).toFixed(2)}x (member entries/s ÷ sqlite rows/s)`);
console.log(`  load average (1 min) at end: ${loadavg()[0]!.toFixed(2)}`);
await dispatcher.close();
await emulator.close();
