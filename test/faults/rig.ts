import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetch } from 'undici';
import type { Tenant } from '../../src/emulator/model.ts';
import type { Engine } from '../../src/store/database.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { rosterSettingsFor, startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { demoApp } from '../helpers/fixtures.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';
import { startFaultProxy, type FaultProxy } from './proxy.ts';

const BIN = fileURLToPath(new URL('../../bin/roster.js', import.meta.url));

/** A password the test server ignores (trust auth) but Roster must never print. */
export const DATABASE_PASSWORD = 'pw-never-in-logs-7f3a';

/** A `roster` command running as its own process, its stdout and stderr captured. */
export interface RosterProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Everything it wrote on stdout and stderr, interleaved. */
  output(): string;
  alive(): boolean;
  stop(): Promise<void>;
}

export function spawnRoster(args: string[], env: NodeJS.ProcessEnv): RosterProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    output: () => output,
    alive: () => child.exitCode === null && child.signalCode === null,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Polls `check` until it holds; fails with `what` (and `context()`) after `ms`. */
export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, options: { ms?: number; context?: () => string } = {}): Promise<void> {
  const deadline = Date.now() + (options.ms ?? 60_000);
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}${options.context ? `\n${options.context()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * `roster serve` of the rig on a free port, with its sign-in redirect URI
 * registered at the emulator; resolves once it answers `/readyz` with 200, so
 * that a fault staged next meets a serving process, not one still starting.
 */
export async function spawnServe(rig: FaultRig<FaultProxy | null>): Promise<{ serve: RosterProcess; url: string }> {
  const port = await freePort();
  const url = `http://localhost:${port}`;
  demoApp(rig.emulator.ctx).redirectUris.push(`${url}/auth/callback`);
  const serve = spawnRoster(['serve'], { ...rig.env, PORT: String(port), PUBLIC_URL: url });
  await waitUntil('roster serve answers /readyz with 200', async () => {
    if (!serve.alive()) assert.fail(`roster serve exited while starting:\n${serve.output().slice(-3000)}`);
    return isReady(url);
  }, { ms: 120_000, context: () => serve.output().slice(-3000) });
  return { serve, url };
}

/** Whether `/readyz` answers 200. */
export async function isReady(url: string): Promise<boolean> {
  return (await get(`${url}/readyz`).catch(() => ({ status: 0 }))).status === 200;
}

/** Makes every tenant due at the next tick, as the passing of its interval would; returns the time to wait from. */
export async function makeEveryTenantDue(rig: FaultRig<FaultProxy | null>): Promise<number> {
  const since = Date.now();
  await rig.db.store.db.updateTable('sync_state').set({ last_success_at: 1, updated_at: 1 }).execute();
  return since;
}

/** Waits until every tenant of the rig has synced successfully since `since`. */
export async function waitForRound(rig: FaultRig<FaultProxy | null>, since: number, context: () => string, ms = 90_000): Promise<void> {
  await waitUntil(
    'every tenant has synced',
    async () => (await rig.db.store.db.selectFrom('sync_state').select('tenant_id').where('last_success_at', '>=', since).execute()).length === rig.tenants.length,
    { ms, context },
  );
}

/** GET with a bound on the wait, so a hanging server fails the test instead of stalling it. */
export async function get(url: string, headers: Record<string, string> = {}, boundMs = 20_000): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(boundMs) });
  return { status: res.status, body: await res.text() };
}

/**
 * The pieces every fault test needs: an emulator with signed-up tenants, a
 * throwaway database (on PostgreSQL with a fault proxy in front of it), and the
 * environment that points `roster` commands at them (through the proxy).
 */
export interface FaultRig<P extends FaultProxy | null = FaultProxy> {
  emulator: TestEmulator;
  db: TestStore;
  proxy: P;
  tenants: Tenant[];
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export async function startFaultRig(options: { users: number[]; env?: Record<string, string> }): Promise<FaultRig>;
export async function startFaultRig(options: { users: number[]; env?: Record<string, string>; engine: 'sqlite'; sqliteParent?: string }): Promise<FaultRig<null>>;
export async function startFaultRig(options: { users: number[]; env?: Record<string, string>; engine?: Engine; sqliteParent?: string }): Promise<FaultRig<FaultProxy | null>> {
  const emulator = await startTestEmulator();
  const db = await openTestStore(options.engine ?? 'postgres', options.sqliteParent);
  const proxy = options.engine === 'sqlite' ? null : await startFaultProxy(postgresAddress(db.target));
  const dir = await mkdtemp(join(tmpdir(), 'roster-faults-'));
  const caFile = join(dir, 'ca.pem');
  await writeFile(caFile, emulator.caCertPem);
  const registry = new TenantRepository(db.store.db);
  const tenants: Tenant[] = [];
  for (const [t, count] of options.users.entries()) {
    const tenant = emulator.ctx.directory.addTenant({ displayName: `Faulty ${t}`, domains: [`faulty${t}.onmicrosoft.com`, `faulty${t}.com`] });
    emulator.ctx.directory.addUsersUnchecked(
      tenant,
      Array.from({ length: count }, (_, i) => ({ userPrincipalName: `u${i}@faulty${t}.com`, displayName: `User ${i}`, department: `D${i % 7}` })),
    );
    emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
    await registry.activate({ id: tenant.id, displayName: tenant.displayName, domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
    tenants.push(tenant);
  }
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...(proxy ? { DATABASE_URL: withPassword(proxy.url(db.target)) } : { DATA_DIR: dirname(db.target) }),
    ...rosterSettingsFor(emulator, caFile),
    LOG_LEVEL: 'info',
    ...options.env,
  };
  return {
    emulator,
    db,
    proxy,
    tenants,
    env,
    close: async () => {
      await proxy?.close();
      await db.drop();
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function postgresAddress(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port || 5432) };
}

function withPassword(url: string): string {
  const parsed = new URL(url);
  parsed.password = DATABASE_PASSWORD;
  if (!parsed.username) parsed.username = 'postgres';
  return parsed.toString();
}

/**
 * What a log must never hold, whatever went wrong: the database password or
 * connection string, or a dump of a pg client or pool object.
 */
export function assertCleanLog(log: string, databaseUrl: string | undefined): void {
  assert.ok(!log.includes(DATABASE_PASSWORD), 'the database password appears in the log');
  if (databaseUrl) assert.ok(!log.includes(databaseUrl), 'the connection string appears in the log');
  for (const dump of ['BoundPool {', 'Client {', 'connectionParameters', '_connectionString', '_events', "Unhandled 'error' event"]) {
    assert.ok(!log.includes(dump), `the log holds an object dump (${dump}):\n${excerpt(log, dump)}`);
  }
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { err?: Record<string, unknown> };
    if (entry.err) assert.deepEqual(Object.keys(entry.err).filter((k) => !['type', 'message', 'code', 'stack'].includes(k)), [], `an error logged with more than type, message, code and stack: ${line.slice(0, 400)}`);
  }
}

function excerpt(log: string, needle: string): string {
  const at = log.indexOf(needle);
  return log.slice(Math.max(0, at - 600), at + 600);
}
