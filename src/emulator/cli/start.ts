import { resolve } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { controlFilePath, otherEmulatorPid, removeControlFile, writeControlFile } from '../control-file.ts';
import type { SeedSource } from '../seed.ts';
import type { EmulatorOptions, RunningEmulator } from '../server.ts';
import { intFlag, log, numberFlag, parse, UsageError } from './flags.ts';
import { DEFAULT_DATA_DIR, DEFAULT_GENERATE, DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, EMULATOR_HELP } from './help.ts';
// The server, seeding and persistence load lazily: verbs only need the control client, and start fast.

const START_OPTIONS = {
  'data-dir': { type: 'string' },
  memory: { type: 'boolean' },
  'https-port': { type: 'string' },
  'http-port': { type: 'string' },
  tenants: { type: 'string' },
  users: { type: 'string' },
  groups: { type: 'string' },
  seed: { type: 'string' },
  fixture: { type: 'string' },
  demo: { type: 'boolean' },
  consented: { type: 'string' },
  password: { type: 'string' },
  'redirect-uri': { type: 'string', multiple: true },
  'post-logout-redirect-uri': { type: 'string', multiple: true },
  'consent-delay': { type: 'string' },
  'control-token': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export interface StartPlan {
  options: EmulatorOptions;
  dataDir: string | null;
  seedFlagsGiven: boolean;
  consentDelay: number | undefined;
}

/** Turns start flags into emulator options; throws UsageError on anything wrong. */
export function planStart(args: string[]): StartPlan | 'help' {
  const { values, positionals } = parse(args, START_OPTIONS, 'roster emulator');
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`roster emulator: unexpected argument "${positionals[0]}"`);
  if (values.memory && values['data-dir'] !== undefined) throw new UsageError('--memory and --data-dir exclude each other');
  const httpsPort = intFlag('https-port', values['https-port'], 0, 65535) ?? DEFAULT_HTTPS_PORT;
  const httpPort = intFlag('http-port', values['http-port'], 0, 65535) ?? DEFAULT_HTTP_PORT;
  if (httpsPort !== 0 && httpsPort === httpPort) throw new UsageError('--https-port and --http-port must differ');
  const tenants = intFlag('tenants', values.tenants, 0, 10_000);
  const users = intFlag('users', values.users, 0, 5_000_000);
  const groups = intFlag('groups', values.groups, 0, 100_000);
  const seed = intFlag('seed', values.seed, -2147483648, 4294967295);
  const consented = intFlag('consented', values.consented, 0, 10_000);
  const consentDelay = numberFlag('consent-delay', values['consent-delay'], 0, 86_400);
  const generateGiven = tenants !== undefined || users !== undefined || groups !== undefined || seed !== undefined || consented !== undefined;
  const demo = values.demo === true;
  const chosen = [generateGiven && '--tenants/--users/--groups/--seed/--consented', values.fixture !== undefined && '--fixture', demo && '--demo'].filter(Boolean);
  if (chosen.length > 1) throw new UsageError(`choose one way to seed: ${chosen.join(' or ')}`);
  if (values.password !== undefined && values.fixture !== undefined) throw new UsageError('--password applies to generated accounts; a fixture sets passwords per user');
  for (const uri of [...(values['redirect-uri'] ?? []), ...(values['post-logout-redirect-uri'] ?? [])]) {
    if (!URL.canParse(uri)) throw new UsageError(`not a URL: "${uri}"`);
  }
  if (values['control-token'] !== undefined && values['control-token'].length < 8) throw new UsageError('--control-token must be at least 8 characters');

  let source: SeedSource;
  if (values.fixture !== undefined) source = { kind: 'fixture', path: resolve(values.fixture) };
  else if (demo) source = { kind: 'demo', ...(values.password ? { password: values.password } : {}) };
  else {
    source = {
      kind: 'generate',
      tenants: tenants ?? DEFAULT_GENERATE.tenants,
      usersPerTenant: users ?? DEFAULT_GENERATE.users,
      groupsPerTenant: groups ?? DEFAULT_GENERATE.groups,
      seed: seed ?? DEFAULT_GENERATE.seed,
      consentedTenants: consented ?? 0,
      ...(values.password ? { password: values.password } : {}),
    };
  }
  const dataDir = values.memory ? null : resolve(values['data-dir'] ?? DEFAULT_DATA_DIR);
  const options: EmulatorOptions = { httpsPort, httpPort, dataDir, seed: source, logger: false };
  if (values['redirect-uri']) options.redirectUris = values['redirect-uri'];
  if (values['post-logout-redirect-uri']) options.postLogoutRedirectUris = values['post-logout-redirect-uri'];
  if (consentDelay !== undefined) options.consentPropagationSeconds = consentDelay;
  if (values['control-token'] !== undefined) options.controlToken = values['control-token'];
  const seedFlagsGiven = chosen.length > 0 || values.password !== undefined;
  return { options, dataDir, seedFlagsGiven, consentDelay };
}

export interface ReadyLine {
  event: 'ready';
  authority: string;
  graph: string;
  pages: string;
  control: string;
  controlToken: string;
  caCertPath: string | null;
  /** Only for `--memory`, where no CA file exists to point at. */
  caCertPem?: string;
  dataDir: string | null;
  app: { clientId: string; clientSecret: string; redirectUris: string[] };
  tenants: { id: string; displayName: string; domain: string; users: number; groups: number; consented: boolean; admin: { username: string; password: string } | null }[];
}

export function readyLine(emulator: RunningEmulator): ReadyLine {
  const { ctx } = emulator;
  const app = ctx.directory.requireApp(ctx.demoAppId);
  const line: ReadyLine = {
    event: 'ready',
    authority: ctx.urls.authority,
    graph: ctx.urls.graph,
    pages: ctx.urls.pages,
    control: ctx.urls.control,
    controlToken: ctx.controlToken,
    caCertPath: emulator.caCertPath,
    dataDir: ctx.dataDir,
    app: { clientId: emulator.demoApp.clientId, clientSecret: emulator.demoApp.clientSecret, redirectUris: app.redirectUris },
    tenants: [...ctx.directory.tenants.values()].map((t) => {
      const admin = t.users.find((u) => u.admin);
      return {
        id: t.id,
        displayName: t.displayName,
        domain: t.defaultDomain,
        users: t.users.length,
        groups: t.groups.length,
        consented: t.servicePrincipals.has(ctx.demoAppId),
        admin: admin ? { username: admin.props.userPrincipalName, password: admin.password } : null,
      };
    }),
  };
  if (!emulator.caCertPath) line.caCertPem = emulator.caCertPem;
  return line;
}

/** Starts the emulator and keeps it running until SIGINT/SIGTERM. Resolves once it is ready. */
export async function startCommand(args: string[]): Promise<number | 'running'> {
  const plan = planStart(args);
  if (plan === 'help') {
    process.stdout.write(EMULATOR_HELP);
    return 0;
  }
  const { dataDir } = plan;
  const controlPath = dataDir ? controlFilePath(dataDir) : null;
  const other = dataDir ? await otherEmulatorPid(dataDir) : undefined;
  if (other !== undefined) {
    log(`roster emulator: another emulator (pid ${other}) is using ${dataDir}; stop it, or pick another --data-dir. (If no such emulator runs, delete ${controlPath}.)`);
    return 1;
  }
  const started = performance.now();
  const emulator = await launch(plan);
  if (typeof emulator === 'number') return emulator;
  // An explicit flag beats the setting restored from saved state.
  if (plan.consentDelay !== undefined) emulator.ctx.directory.consentPropagationSeconds = plan.consentDelay;
  if (dataDir) await writeControlFile(dataDir, emulator);
  await stopOnSignals(emulator, dataDir, controlPath);
  announce(emulator, started, controlPath);
  return 'running';
}

/** Starts the server; known start-up failures become a message and exit code 1. */
async function launch(plan: StartPlan): Promise<RunningEmulator | number> {
  const [{ startEmulator }, { FixtureError }, { StateFileError, hasSavedState, stateFilePath }] = await Promise.all([
    import('../server.ts'),
    import('../seed.ts'),
    import('../persistence.ts'),
  ]);
  if (plan.dataDir && hasSavedState(plan.dataDir)) {
    const note = plan.seedFlagsGiven ? ' The seeding options were ignored: saved state wins.' : '';
    log(`Loading saved state from ${stateFilePath(plan.dataDir)}.${note} (Delete that file, or use another --data-dir, to start from a fresh seed.)`);
  }
  try {
    return await startEmulator(plan.options);
  } catch (err) {
    if (err instanceof FixtureError) throw new UsageError(err.message);
    if (err instanceof StateFileError) {
      log(`roster emulator: ${err.message}`);
      return 1;
    }
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      log(`roster emulator: a port is already in use (${(err as Error).message}); pick others with --https-port and --http-port (0 picks free ones).`);
      return 1;
    }
    throw err;
  }
}

/** SIGINT/SIGTERM save the state, stop the servers and remove the control file; a second signal exits at once. */
async function stopOnSignals(emulator: RunningEmulator, dataDir: string | null, controlPath: string | null): Promise<void> {
  const { stateFilePath } = await import('../persistence.ts');
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) {
      log(`${signal} again: exiting without waiting.`);
      process.exit(1);
    }
    stopping = true;
    let code = 0;
    try {
      if (dataDir) {
        const t0 = performance.now();
        await emulator.save();
        log(`State saved to ${stateFilePath(dataDir)} in ${Math.round(performance.now() - t0)} ms.`);
      }
    } catch (err) {
      log(`Could not save state: ${(err as Error).message}`);
      code = 1;
    }
    await emulator.close();
    if (controlPath) await removeControlFile(controlPath);
    process.exit(code);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

/** A summary on stderr, then the ready line on stdout. */
function announce(emulator: RunningEmulator, startedAt: number, controlPath: string | null): void {
  const ready = readyLine(emulator);
  const users = ready.tenants.reduce((n, t) => n + t.users, 0);
  const groups = ready.tenants.reduce((n, t) => n + t.groups, 0);
  log(
    `Roster emulator ready in ${Math.round(performance.now() - startedAt)} ms: ${ready.tenants.length} tenants, ${users} users, ${groups} groups.\n` +
      `  authority/Graph (https): ${ready.authority}   CA: ${ready.caCertPath ?? '(in memory; caCertPem in the ready line)'}\n` +
      `  pages (http):            ${ready.pages}\n` +
      `  control API:             ${ready.control}   (token in the ready line${controlPath ? ` and ${controlPath}` : ''})`,
  );
  // Last: whoever waits for this line finds everything above already written.
  process.stdout.write(`${JSON.stringify(ready)}\n`);
}
