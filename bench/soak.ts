/**
 * Soak: Roster on PostgreSQL for a stretch of time, as in production and with
 * its database cut away every few minutes (through the fault proxy, as a
 * failover would). `roster serve` and two `roster worker` processes sync 20
 * tenants on a one-minute interval while 1% of each tenant's users change per
 * round, and a bounded loop loads the users pages of a signed-in member. Prints
 * requests served, errors, p99 latency, syncs completed and failed, the memory
 * of each process at start and end, and whether every tenant's copy equals the
 * directory at the end.
 *
 *   node_modules/.bin/node bench/soak.ts [--minutes 10] [--tenants 20] [--users 2000] [--cut-every 3] [--outage-seconds 8] [--connections 10]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fetch } from 'undici';
import { Browser } from '../test/helpers/browser.ts';
import { assertMirrors } from '../test/helpers/mirror.ts';
import type { TestRoster } from '../test/helpers/roster.ts';
import { makeEveryTenantDue, spawnRoster, spawnServe, startFaultRig, waitForRound, type RosterProcess } from '../test/faults/rig.ts';
import { passIdentityProvider } from '../test/web/flows.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    tenants: { type: 'string', default: '20' },
    users: { type: 'string', default: '2000' },
    'cut-every': { type: 'string', default: '3' },
    'outage-seconds': { type: 'string', default: '8' },
    connections: { type: 'string', default: '10' },
  },
});
const number = (name: keyof typeof values, min: number): number => {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value < min) throw new Error(`--${name} must be a number of at least ${min}, got ${values[name]}`);
  return value;
};
const MINUTES = number('minutes', 0.5);
const TENANTS = number('tenants', 1);
const USERS = number('users', 100);
const CUT_EVERY_MS = number('cut-every', 0.25) * 60_000;
const OUTAGE_MS = number('outage-seconds', 0) * 1000;
const CONNECTIONS = number('connections', 1);
const ROUND_MS = 60_000;

const rig = await startFaultRig({ users: Array.from({ length: TENANTS }, () => USERS), env: { SYNC_INTERVAL_MINUTES: '1', SYNC_TICK_SECONDS: '5', SYNC_CONCURRENCY: '2', LOG_LEVEL: 'warn' } });
const member = rig.emulator.ctx.directory.addUser(rig.tenants[0]!, { userPrincipalName: `soak@${rig.tenants[0]!.defaultDomain}`, displayName: 'Soak Member', password: 'pw' });

const { serve, url } = await spawnServe(rig);
const processes: [string, RosterProcess][] = [
  ['serve', serve],
  ['worker 1', spawnRoster(['worker'], rig.env)],
  ['worker 2', spawnRoster(['worker'], rig.env)],
];
const logs = () => processes.map(([name, p]) => `--- ${name} ---\n${p.output().slice(-2000)}`).join('\n');
const rssMb = (p: RosterProcess): number => {
  const status = readFileSync(`/proc/${p.child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
};

const db = rig.db.store.db;
await waitForRound(rig, Date.now(), logs, 15 * 60_000);
const rssStart = processes.map(([, p]) => rssMb(p));

// A signed-in member of the first tenant browses its users.
const browser = new Browser();
const back = await passIdentityProvider(browser, { emulator: rig.emulator } as TestRoster, await browser.get(`${url}/signin`), member.props.userPrincipalName!);
const callback = await browser.get(new URL(back.location!, back.url).href);
if (callback.status !== 303) throw new Error(`sign-in ended with ${callback.status}: ${callback.html.slice(0, 300)}`);
const cookie = `roster_session=${browser.cookie('roster_session')}`;
const origin = url.replace('localhost', '127.0.0.1');
const paths = ['/app/users', '/app/users?q=user%201', '/app/users?sort=department&dir=desc&page=7', '/app', '/app/sync'];

const soakStart = Date.now();
const soakEnd = soakStart + MINUTES * 60_000;
const latencies: number[] = [];
const failures = new Map<string, number>();
let served = 0;

async function browse(): Promise<void> {
  for (let i = 0; Date.now() < soakEnd; i++) {
    const path = paths[i % paths.length]!;
    const started = performance.now();
    try {
      const res = await fetch(`${origin}${path}`, { headers: { cookie, host: new URL(url).host }, redirect: 'manual', signal: AbortSignal.timeout(30_000) });
      await res.arrayBuffer();
      latencies.push(performance.now() - started);
      if (res.status === 200) served++;
      else failures.set(`HTTP ${res.status}`, (failures.get(`HTTP ${res.status}`) ?? 0) + 1);
    } catch (err) {
      latencies.push(performance.now() - started);
      const kind = (err as Error).name;
      failures.set(kind, (failures.get(kind) ?? 0) + 1);
    }
  }
}

/** 1% of each tenant's users change per round, as people join, move and leave. */
function changeUsers(round: number): void {
  for (const tenant of rig.tenants) {
    const changes = Math.max(1, Math.round(tenant.users.length / 100));
    for (let c = 0; c < changes; c++) {
      const user = tenant.users[(round * 7919 + c * 104_729) % tenant.users.length]!;
      rig.emulator.ctx.directory.editUser(tenant, user.props.id, { jobTitle: `Title ${round}.${c}`, department: `D${(round + c) % 11}` });
    }
  }
}

let cuts = 0;
const timers = [
  setInterval(() => {
    rig.proxy.cut({ refuseMs: OUTAGE_MS });
    cuts++;
  }, CUT_EVERY_MS),
];
let round = 0;
timers.push(setInterval(() => changeUsers(++round), ROUND_MS));
await Promise.all(Array.from({ length: CONNECTIONS }, () => browse()));
for (const timer of timers) clearInterval(timer);
rig.proxy.accept();

// The last changes must reach every copy: every tenant syncs once more after they stop.
await waitForRound(rig, await makeEveryTenantDue(rig), logs, 10 * 60_000);
const rssEnd = processes.map(([, p]) => rssMb(p));
const alive = processes.map(([, p]) => p.alive());

const runs = await db.selectFrom('sync_runs').select(['status', (eb) => eb.fn.countAll().as('n')]).where('started_at', '>=', soakStart).groupBy('status').execute();
const runCount = (status: string) => Number(runs.find((r) => r.status === status)?.n ?? 0);
const mismatched: string[] = [];
for (const tenant of rig.tenants) {
  try {
    await assertMirrors(rig.db.store, tenant);
  } catch (err) {
    mismatched.push(`${tenant.displayName}: ${(err as Error).message.split('\n')[0]}`);
  }
}

latencies.sort((a, b) => a - b);
const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? 0;
const rows: [string, string][] = [
  ['duration', `${MINUTES} min of load, ${round} change rounds, ${cuts} database cuts of ${OUTAGE_MS / 1000} s`],
  ['requests served (200)', served.toLocaleString('en-GB')],
  ['requests failed', failures.size === 0 ? '0' : [...failures].map(([kind, n]) => `${n} ${kind}`).join(', ')],
  ['p99 latency', `${p99.toFixed(0)} ms over ${latencies.length.toLocaleString('en-GB')} requests`],
  ['sync runs during the soak', `${runCount('succeeded')} succeeded, ${runCount('failed')} failed, ${runCount('running')} still running at the end, ${runCount('held')} held`],
  ...processes.map(([name], i): [string, string] => [`RSS ${name}`, `${rssStart[i]!.toFixed(0)} MB at start, ${rssEnd[i]!.toFixed(0)} MB at end${alive[i] ? '' : ' (DIED)'}`]),
  ['copies equal to the directory', mismatched.length === 0 ? `all ${TENANTS} tenants, exactly` : `${TENANTS - mismatched.length} of ${TENANTS}; ${mismatched.join('; ')}`],
];

for (const [, p] of processes) await p.stop();
await rig.close();

const width = Math.max(...rows.map(([label]) => label.length));
console.log(`bench/soak.ts: PostgreSQL, serve + 2 workers, ${TENANTS} tenants x ${USERS.toLocaleString('en-GB')} users, ${CONNECTIONS} connections`);
for (const [label, value] of rows) console.log(`${label.padEnd(width)}  ${value}`);
if (mismatched.length > 0 || alive.includes(false)) process.exitCode = 1;
