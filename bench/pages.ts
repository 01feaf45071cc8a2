/**
 * The users page at scale: requests per second and p99 latency of
 * `/app/users` for a signed-in admin of a 100,000-user tenant (session check,
 * count and page queries, HTML rendering) against a bare Fastify route that
 * returns the same HTML, as ratios taken in one run on this machine. The deep
 * page is loaded both as the page's navigation reaches it (a cursor) and as a
 * bookmarked page number (OFFSET), and then one request at a time with the
 * pages taken in turn, whose latencies compare fairly on a busy machine.
 *
 *   node_modules/.bin/node bench/pages.ts [--engine sqlite|postgres] [--users 100000] [--seconds 5]
 */
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { generateUsers } from '../src/emulator/seed.ts';
import type { Engine } from '../src/store/database.ts';
import { Browser, decodeHtml } from '../test/helpers/browser.ts';
import { addOrg } from '../test/helpers/fixtures.ts';
import { startTestRoster } from '../test/helpers/roster.ts';
import { signIn, signUp } from '../test/web/flows.ts';

const { values } = parseArgs({ options: { engine: { type: 'string', default: 'sqlite' }, users: { type: 'string', default: '100000' }, seconds: { type: 'string', default: '5' } } });
const ENGINE = values.engine as Engine;
if (ENGINE !== 'sqlite' && ENGINE !== 'postgres') throw new Error('--engine must be sqlite or postgres');
const USERS = Number(values.users);
const SECONDS = Number(values.seconds);

// Logs as production does by default (LOG_LEVEL=info), not at the tests' debug level.
const roster = await startTestRoster({ engine: ENGINE, logLevel: 'info' });
const { ctx } = roster.emulator;
const org = addOrg(ctx, 'Benchco', 'benchco.com');
ctx.directory.addUsersUnchecked(org.tenant, [...generateUsers(org.tenant, { count: USERS - 2, seed: 7, password: 'pw' })]);

// Sign-up starts the first sync; wait for it so the pages show the whole tenant.
await signUp(new Browser(), roster, org);
const syncStart = performance.now();
const outcome = await roster.scheduler.syncNow(org.tenant.id);
if (outcome?.status !== 'succeeded') throw new Error(`first sync ended ${outcome?.status}: ${outcome?.error}`);
const syncSeconds = (performance.now() - syncStart) / 1000;

const browser = new Browser();
await signIn(browser, roster, org.admin.props.userPrincipalName);
const cookie = `roster_session=${browser.cookie('roster_session')}`;

const middlePage = Math.max(2, Math.floor(USERS / 50 / 2));
const deepLabel = `page ${middlePage.toLocaleString('en-GB')} by department, descending`;
// The Next link of the page before carries the cursor of its last row (49,950 of 100,000), as a person paging there follows it.
const pageBefore = await browser.get(`${roster.url}/app/users?sort=department&dir=desc&page=${middlePage - 1}`);
const nextHref = /<a href="([^"]+)" rel="next">/.exec(pageBefore.html)?.[1];
if (!nextHref) throw new Error(`page ${middlePage - 1} has no Next link`);
const tableOf = (html: string) => /<tbody>[\s\S]*<\/tbody>/.exec(html)?.[0];
const [byCursor, byOffset] = await Promise.all([browser.get(`${roster.url}${decodeHtml(nextHref)}`), browser.get(`${roster.url}/app/users?sort=department&dir=desc&page=${middlePage}`)]);
if (tableOf(byCursor.html) !== tableOf(byOffset.html)) throw new Error(`page ${middlePage} by cursor and by page number differ`);
const PAGES: [string, string][] = [
  ['first page, by name', '/app/users'],
  ['search "chen" (name, email, UPN, department)', '/app/users?q=chen'],
  [`${deepLabel}, by its Next link (cursor)`, decodeHtml(nextHref)],
  [`${deepLabel}, bookmarked as page=${middlePage} (OFFSET)`, `/app/users?sort=department&dir=desc&page=${middlePage}`],
];

const bare = Fastify();
const bodies = new Map<string, string>();
bare.get('/*', async (request, reply) => reply.type('text/html; charset=utf-8').send(bodies.get(request.url)));
await bare.listen({ host: '127.0.0.1', port: 0 });
const bareOrigin = `http://127.0.0.1:${(bare.server.address() as { port: number }).port}`;

async function load(url: string, headers: Record<string, string>): Promise<autocannon.Result> {
  const result = await autocannon({ url, headers, connections: 10, duration: SECONDS });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return result;
}

const rows: string[][] = [];
for (const [label, path] of PAGES) {
  const page = await browser.get(`${roster.url}${path}`);
  if (page.status !== 200 || !page.html.includes('<table')) throw new Error(`${path} answered ${page.status} without a table`);
  bodies.set(path, page.html);
  const bareResult = await load(`${bareOrigin}${path}`, {});
  const appResult = await load(`${roster.url.replace('localhost', '127.0.0.1')}${path}`, { cookie, host: new URL(roster.url).host });
  rows.push(
    [`${label}`, `${appResult.requests.average.toFixed(0)} req/s, p99 ${appResult.latency.p99} ms`],
    ['  bare Fastify route, same HTML', `${bareResult.requests.average.toFixed(0)} req/s, p99 ${bareResult.latency.p99} ms`],
    ['  ratio users page / bare route (req/s)', (appResult.requests.average / bareResult.requests.average).toFixed(3)],
  );
}

// One request at a time, the pages taken in turn, so a busy machine slows each of them alike.
const interleaved: [string, string][] = [
  ['first page by department, descending', '/app/users?sort=department&dir=desc'],
  [`${deepLabel}, Next link (cursor)`, decodeHtml(nextHref)],
  [`page ${(middlePage - 1).toLocaleString('en-GB')}, by the Previous link of page ${middlePage.toLocaleString('en-GB')} (cursor)`, decodeHtml(/<a href="([^"]+)" rel="prev">/.exec(byCursor.html)![1]!)],
  [`${deepLabel}, page=${middlePage} (OFFSET, every 5th round)`, `/app/users?sort=department&dir=desc&page=${middlePage}`],
];
const latencies = interleaved.map((): number[] => []);
for (let round = 0; round < 100; round++) {
  for (const [index, [, path]] of interleaved.entries()) {
    if (path.includes('page=') && round % 5 !== 0) continue;
    const start = performance.now();
    const page = await browser.get(`${roster.url}${path}`);
    if (page.status !== 200) throw new Error(`${path} answered ${page.status}`);
    latencies[index]!.push(performance.now() - start);
  }
}
const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.floor(values.length * q)]!;
rows.push(['one request at a time, pages in turn (median, 10th percentile)', '']);
for (const [index, [label]] of interleaved.entries()) rows.push([`  ${label}`, `${quantile(latencies[index]!, 0.5).toFixed(2)} ms, ${quantile(latencies[index]!, 0.1).toFixed(2)} ms`]);

await bare.close();
await roster.close();

const width = Math.max(...rows.map(([a]) => a!.length));
console.log(`bench/pages.ts: ${ENGINE}, ${USERS.toLocaleString('en-GB')} users (first sync ${syncSeconds.toFixed(1)} s), ${SECONDS} s per load run, 10 connections`);
for (const [label, value] of rows) console.log(`${label!.padEnd(width)}  ${value}`);
