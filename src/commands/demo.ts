import { join, relative, isAbsolute } from 'node:path';
import type { RosterConfig } from '../config/config.ts';
import { DataDirInUseError, ensureDataDirFree, removeControlFile, writeControlFile } from '../emulator/control-file.ts';
import { startEmulator, type RunningEmulator } from '../emulator/server.ts';
import { bootstrap, type Roster } from './bootstrap.ts';
import { readSettings, stderrLogger, stopOnSignals, type Command } from './run.ts';
import { startWebServer, type WebServer } from './serve.ts';

export interface RunningDemo {
  emulator: RunningEmulator;
  dataDir: string;
  /** The emulator's data folder, whose `control.json` lets `roster emulator <verb>` drive it from another terminal. */
  emulatorDataDir: string;
  roster: Roster;
  server: WebServer;
  close(): Promise<void>;
}

export function emulatorDataDir(config: RosterConfig): string {
  return join(config.dataDir, 'emulator');
}

/**
 * Demo mode: the emulator with its demo directory and Roster on SQLite in one
 * process. On the first start, the demo tenants that consented are signed up
 * through the same confirmation a real sign-up goes through.
 */
export async function startDemo(config: RosterConfig, logger: Roster['logger'], options: { notifications?: boolean } = {}): Promise<RunningDemo> {
  const base = config.publicUrl.origin;
  const emulatorDir = emulatorDataDir(config);
  await ensureDataDirFree(emulatorDir);
  const emulator = await startEmulator({
    dataDir: emulatorDir,
    seed: { kind: 'demo' },
    httpsPort: config.emulator.httpsPort,
    httpPort: config.emulator.httpPort,
    redirectUris: [`${base}/auth/callback`, `${base}/signup/callback`],
    postLogoutRedirectUris: [`${base}/`],
  });
  let roster: Roster | undefined;
  let server: WebServer;
  try {
    // The emulator delivers change notifications to Roster's own (loopback) URL: changes show within seconds.
    const notifications: RosterConfig['notifications'] =
      options.notifications === false ? { enabled: false } : config.notifications.enabled ? config.notifications : { enabled: true, url: config.publicUrl, healthyIntervalMinutes: 60 };
    roster = await bootstrap(
      { ...config, operators: config.operators.length > 0 ? config.operators : demoOperators(emulator), notifications },
      {
        provider: {
          credentials: { clientId: emulator.demoApp.clientId, clientSecret: emulator.demoApp.clientSecret, certificate: null },
          authorityHost: new URL(emulator.urls.authority),
          graphBaseUrl: new URL(emulator.urls.graph),
          trustedCaPem: emulator.caCertPem,
        },
        logger,
        jobs: 'scheduled',
        // The emulator's consent reaches Graph as soon as its token endpoint honours it, so a revoked
        // consent shows as a disconnection at once rather than after the grace real Entra ID needs.
        consentGraceMs: 0,
      },
    );
    server = await startWebServer(roster);
  } catch (err) {
    await roster?.close();
    await emulator.close();
    throw err;
  }
  // Written once Roster serves, so a second terminal drives a demo that is up (and learns of a failed start by its absence).
  const controlPath = await writeControlFile(emulatorDir, emulator);
  await signUpDemoTenants(emulator, roster);
  return {
    emulator,
    dataDir: config.dataDir,
    emulatorDataDir: emulatorDir,
    roster,
    server,
    close: async () => {
      await server.close();
      await emulator.save();
      await emulator.close();
      await removeControlFile(controlPath);
    },
  };
}

/** Signs up each demo tenant that consented, with its global administrator as first Roster admin. */
async function signUpDemoTenants(emulator: RunningEmulator, roster: Roster): Promise<void> {
  const { tenants, users } = roster.repositories;
  for (const tenant of emulator.ctx.directory.tenants.values()) {
    if (!tenant.servicePrincipals.has(emulator.ctx.demoAppId)) continue;
    // As if its global administrator had signed it up (which signs them in): they are its first Roster admin,
    // also in demo data from before admins were recorded. An admin already there is left as it is.
    const admin = tenant.users.find((u) => u.admin);
    const recordAdmin = async () => {
      if (!admin || (await users.hasAdmin(tenant.id))) return;
      if (!(await users.get(tenant.id, admin.props.id))) {
        await users.recordSignIn({ tenantId: tenant.id, objectId: admin.props.id, displayName: admin.props.displayName, username: admin.props.userPrincipalName, email: admin.props.mail ?? null }, Date.now());
      }
      await users.grantFirstAdmin(tenant.id, admin.props.id, Date.now());
    };
    const known = await tenants.get(tenant.id);
    if (known) {
      if (admin) await tenants.recordSignupAdmin(tenant.id, admin.props.id, Date.now());
      if (known.state === 'active') await recordAdmin();
      continue;
    }
    const outcome = await roster.onboarding.confirm(tenant.id, { signedUpByOid: admin?.props.id ?? null, signupContext: { plan: 'team', demo: true } });
    roster.logger.info({ tenant: tenant.displayName, outcome: outcome.kind }, 'demo tenant signed up');
    if (outcome.kind !== 'active') continue;
    await recordAdmin();
    void roster.scheduler.syncNow(tenant.id);
  }
}

/** Without OPERATORS, the admin of the first signed-up demo organisation runs this Roster too. */
function demoOperators(emulator: RunningEmulator): RosterConfig['operators'] {
  const home = [...emulator.ctx.directory.tenants.values()].find((t) => t.servicePrincipals.has(emulator.ctx.demoAppId));
  const admin = home?.users.find((u) => u.admin);
  return home && admin ? [{ tenantId: home.id, objectId: admin.props.id }] : [];
}

/** What a newcomer needs to try the demo, for the terminal. */
export async function demoSummary(demo: RunningDemo): Promise<string> {
  const registry = await demo.roster.repositories.tenants.list();
  const signedUp = new Set(registry.filter((t) => t.state === 'active').map((t) => t.id));
  const lines = ['', `Roster demo is running: open ${demo.server.url}`, '', 'Demo organisations (password of every account: roster-demo):'];
  for (const tenant of demo.emulator.ctx.directory.tenants.values()) {
    const admin = tenant.users.find((u) => u.admin);
    const member = tenant.users.find((u) => !u.admin && u.props.accountEnabled && u.props.userType === 'Member');
    const state = signedUp.has(tenant.id) ? 'signed up' : 'not signed up: sign it up with its admin';
    lines.push(`  ${tenant.displayName.padEnd(18)} ${String(tenant.users.length).padStart(6)} users  ${state}`);
    const operator = demo.roster.config.operators.some((o) => o.tenantId === tenant.id && o.objectId === admin?.props.id);
    if (admin) lines.push(`      admin:  ${admin.props.userPrincipalName}${operator ? ' (also operator: /operator)' : ''}`);
    if (member) lines.push(`      member: ${member.props.userPrincipalName}`);
  }
  lines.push('', `Identity provider (emulator) pages: ${demo.emulator.urls.pages}`);
  lines.push(...driveInstructions(demo));
  lines.push('', `Stop with Ctrl+C; the data stays in ${demo.dataDir} for the next start.`);
  return lines.join('\n');
}

/** How to change the directory from a second terminal, with one example that works as printed. */
function driveInstructions(demo: RunningDemo): string[] {
  const dataDir = shownPath(demo.emulatorDataDir);
  const tenant = [...demo.emulator.ctx.directory.tenants.values()].find((t) => t.servicePrincipals.has(demo.emulator.ctx.demoAppId));
  const member = tenant?.users.find((u) => !u.admin && u.props.accountEnabled && u.props.userType === 'Member');
  const lines = ['', 'Change the directory from a second terminal (README, "Try it"; every verb: npm run roster -- emulator --help):'];
  if (tenant && member) {
    lines.push(`  npm run roster -- emulator user edit ${member.props.userPrincipalName} --tenant ${tenant.defaultDomain} --disabled --data-dir ${dataDir}`);
    const admin = tenant.users.find((u) => u.admin);
    const who = admin ? ` as ${admin.props.userPrincipalName}` : '';
    lines.push(`  then "Sync now"${who} at ${demo.server.url}/app/sync: Users shows ${member.props.displayName} as Disabled, and their sessions end.`);
  } else {
    lines.push(`  npm run roster -- emulator state --data-dir ${dataDir}`);
  }
  return lines;
}

/** A path as typed in the terminal the demo runs in: relative below the working directory, absolute elsewhere. */
function shownPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/** Runs the demo until a signal; `explicit` when asked for by `roster demo` rather than reached by `roster serve` without Entra settings. */
export async function startDemoCommand(config: RosterConfig, env: Record<string, string | undefined>, { explicit }: { explicit: boolean }): Promise<'running' | 1> {
  // Request logs would drown the demo's instructions; ask for them with LOG_LEVEL.
  const logger = stderrLogger(env.LOG_LEVEL === undefined ? 'warn' : config.logLevel);
  if (explicit && !config.demo) process.stderr.write('roster demo: ignoring the Entra settings of the environment; the demo uses its own emulator.\n');
  let demo: RunningDemo;
  try {
    demo = await startDemo({ ...config, demo: true, entra: null }, logger, { notifications: env.NOTIFICATIONS?.trim() !== 'off' });
  } catch (err) {
    if (!(err instanceof DataDirInUseError)) throw err;
    process.stderr.write(`roster demo: ${err.message}; stop it, or set another DATA_DIR. (If no such emulator runs, delete ${err.controlPath}.)\n`);
    return 1;
  }
  process.stdout.write(`${await demoSummary(demo)}\n`);
  stopOnSignals('demo', demo.close, config.shutdownSeconds);
  return 'running';
}

export const demo: Command = {
  name: 'demo',
  usage: 'Usage: roster demo\n  Runs the Entra ID + Graph emulator with demo organisations and Roster on SQLite, in one process.\n',
  async run() {
    const { config, env } = readSettings();
    return startDemoCommand(config, env, { explicit: true });
  },
};
