import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import formbody from '@fastify/formbody';
import { decodeJwt } from 'jose';
import { Clock } from './clock.ts';
import type { EmulatorContext, EmulatorUrls } from './context.ts';
import { EmulatorError, graphErrorBody, identityErrorBody, IdentityError } from './errors.ts';
import { FaultInjector, RequestLog, type Fault, type RequestLogEntry } from './faults.ts';
import { GrantStore } from './grants.ts';
import { PageReadAhead } from './graph-readahead.ts';
import { SigningKeyring, type StoredSigningKey } from './keys.ts';
import { Directory } from './model.ts';
import { createCertificateAuthority, issueServerCertificate, type PemKeyPair } from './pki.ts';
import { loadState, saveState } from './persistence.ts';
import { applySeed, type SeedSource } from './seed.ts';
import { SsoSessions } from './signin/sso-session.ts';
import { SignInTransactions } from './signin/transaction.ts';
import { registerAdminConsentRoutes } from './routes/adminconsent.ts';
import { registerAuthorizeRoutes } from './routes/authorize.ts';
import { registerControlRoutes } from './routes/control.ts';
import { registerDiscoveryRoutes } from './routes/discovery.ts';
import { registerGraphRoutes } from './routes/graph.ts';
import { registerLogoutRoutes } from './routes/logout.ts';
import { registerTokenRoutes } from './routes/token.ts';

export interface EmulatorOptions {
  /** Port of the HTTPS back channel (discovery, keys, token, Graph); 0 picks a free one. */
  httpsPort?: number;
  /** Port of the plain-http browser pages and the control API; 0 picks a free one. */
  httpPort?: number;
  /** Folder for the CA, signing keys and saved state; null keeps everything in memory. */
  dataDir?: string | null;
  /** How to fill an empty directory (ignored when the data folder holds saved state). */
  seed?: SeedSource;
  /** Redirect URIs of the built-in demo app registration. */
  redirectUris?: string[];
  postLogoutRedirectUris?: string[];
  /** Seconds between admin consent and app tokens that carry it. */
  consentPropagationSeconds?: number;
  /** Seed of the fault injector's "share of requests" choices. */
  faultSeed?: number;
  /** Control token; random when absent. */
  controlToken?: string;
  logger?: boolean;
}

export interface RunningEmulator {
  ctx: EmulatorContext;
  urls: EmulatorUrls;
  caCertPem: string;
  /** Where the CA certificate is on disk (null for an in-memory emulator). */
  caCertPath: string | null;
  demoApp: { clientId: string; clientSecret: string };
  /** Writes the directory to the data folder (no-op in memory). */
  save(): Promise<void>;
  close(): Promise<void>;
}

/** Listen address: the emulator is a local tool and never listens beyond loopback. */
const LISTEN_HOST = '127.0.0.1';
/** Browsers and MSAL both see this host; `localhost` consistently, as MSAL checks issuer hosts. */
const PUBLIC_HOST = 'localhost';

export const DEFAULT_REDIRECT_URIS = ['http://localhost:3000/auth/callback', 'http://localhost:3000/signup/callback'];
export const DEFAULT_POST_LOGOUT_REDIRECT_URIS = ['http://localhost:3000/'];
/** What Roster's demo registration asks admin consent for: every user, and groups with their members. */
export const DEMO_APP_ROLES = ['User.Read.All', 'GroupMember.Read.All'];

export async function startEmulator(options: EmulatorOptions = {}): Promise<RunningEmulator> {
  const dataDir = options.dataDir ?? null;
  if (dataDir) await mkdir(dataDir, { recursive: true });

  const { ca, server } = await loadOrCreateTls(dataDir);
  const keyring = await loadOrCreateKeyring(dataDir);
  const clock = new Clock();
  const directory = new Directory(clock);
  directory.consentPropagationSeconds = options.consentPropagationSeconds ?? 0;

  const grants = new GrantStore();
  const restored = dataDir ? await loadState(dataDir, directory, grants) : false;
  const demoApp = ensureDemoApp(directory, options);
  if (!restored && options.seed) await applySeed(directory, options.seed, demoApp.appId);

  const ctx: EmulatorContext = {
    directory,
    keyring,
    clock,
    faults: new FaultInjector(options.faultSeed ?? 1),
    requestLog: new RequestLog(),
    grants,
    sessions: new SsoSessions(directory, () => ctx.urls.pages),
    signIns: new SignInTransactions(),
    pageReadAhead: new PageReadAhead(),
    controlToken: options.controlToken ?? randomBytes(24).toString('base64url'),
    demoAppId: demoApp.appId,
    dataDir,
    urls: { authority: '', graph: '', pages: '', control: '' },
  };

  const { backchannel, pages } = await buildServers(ctx, { key: server.keyPem, cert: `${server.certPem}${ca.certPem}` }, options.logger ?? false);
  try {
    await backchannel.listen({ host: LISTEN_HOST, port: options.httpsPort ?? 0 });
    await pages.listen({ host: LISTEN_HOST, port: options.httpPort ?? 0 });
  } catch (err) {
    await Promise.allSettled([backchannel.close(), pages.close()]);
    throw err;
  }
  const httpsPort = portOf(backchannel);
  const httpPort = portOf(pages);
  ctx.urls.authority = `https://${PUBLIC_HOST}:${httpsPort}`;
  ctx.urls.graph = `https://${PUBLIC_HOST}:${httpsPort}`;
  ctx.urls.pages = `http://${PUBLIC_HOST}:${httpPort}`;
  ctx.urls.control = `http://${PUBLIC_HOST}:${httpPort}/_emulator`;

  const save = async (): Promise<void> => {
    if (dataDir) await saveState(dataDir, directory, grants);
    if (dataDir) await writeFile(join(dataDir, 'signing-keys.json'), JSON.stringify(keyring.toStored(), null, 2), { mode: 0o600 });
  };
  ctx.save = save;

  return {
    ctx,
    urls: ctx.urls,
    caCertPem: ca.certPem,
    caCertPath: dataDir ? join(dataDir, 'ca.pem') : null,
    demoApp: { clientId: demoApp.appId, clientSecret: demoApp.secrets[0]!.value },
    save,
    close: async () => {
      await Promise.allSettled([backchannel.close(), pages.close()]);
    },
  };
}

/** The HTTPS back channel (discovery, keys, token, Graph) and the plain-http pages (sign-in, logout, control API). */
async function buildServers(ctx: EmulatorContext, tls: { key: string; cert: string }, logger: boolean): Promise<{ backchannel: FastifyInstance; pages: FastifyInstance }> {
  const backchannel = Fastify({
    logger,
    https: tls,
    // Long $skiptoken/$deltatoken values travel in the query, but ids and domains in paths stay short.
    routerOptions: { maxParamLength: 4096 },
  }) as unknown as FastifyInstance;
  const pages = Fastify({ logger, routerOptions: { maxParamLength: 4096 } }) as unknown as FastifyInstance;
  for (const app of [backchannel, pages]) {
    await app.register(formbody);
    installRequestLogAndFaults(app, ctx);
    installErrorHandler(app, ctx);
  }
  registerDiscoveryRoutes(backchannel, ctx);
  registerTokenRoutes(backchannel, ctx);
  registerGraphRoutes(backchannel, ctx);
  registerAuthorizeRoutes(pages, ctx);
  registerAdminConsentRoutes(pages, ctx);
  registerLogoutRoutes(pages, ctx);
  registerControlRoutes(pages, ctx);
  return { backchannel, pages };
}

function portOf(app: FastifyInstance): number {
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('server is not listening on a TCP port');
  return address.port;
}

function ensureDemoApp(directory: Directory, options: EmulatorOptions) {
  const existing = [...directory.apps.values()].find((a) => a.displayName === 'Roster (demo)');
  const redirectUris = options.redirectUris ?? DEFAULT_REDIRECT_URIS;
  const postLogoutRedirectUris = options.postLogoutRedirectUris ?? DEFAULT_POST_LOGOUT_REDIRECT_URIS;
  if (existing) {
    // A restart may serve Roster on another port: the registration follows the flags.
    existing.redirectUris = [...new Set([...existing.redirectUris, ...redirectUris])];
    existing.postLogoutRedirectUris = [...new Set([...existing.postLogoutRedirectUris, ...postLogoutRedirectUris])];
    // State saved before the setting existed loads as `None`; the demo registration always lists roles.
    existing.groupMembershipClaims = 'DirectoryRole';
    // State saved before groups existed lacks the group permission; consents already given keep what they granted.
    existing.requiredAppRoles = [...new Set([...existing.requiredAppRoles, ...DEMO_APP_ROLES])];
    return existing;
  }
  return directory.addApp({
    appId: crypto.randomUUID(),
    displayName: 'Roster (demo)',
    homeTenantId: null,
    signInAudience: 'AzureADMultipleOrgs',
    redirectUris,
    postLogoutRedirectUris,
    secrets: [{ id: crypto.randomUUID(), value: randomBytes(30).toString('base64url'), expiresAtMs: Date.now() + 2 * 365 * 86_400_000 }],
    certificates: [],
    requiredAppRoles: [...DEMO_APP_ROLES],
    disabled: false,
    groupMembershipClaims: 'DirectoryRole',
  });
}

async function loadOrCreateTls(dataDir: string | null): Promise<{ ca: PemKeyPair; server: PemKeyPair }> {
  const files = dataDir
    ? { ca: join(dataDir, 'ca.pem'), caKey: join(dataDir, 'ca-key.pem'), server: join(dataDir, 'tls.pem'), serverKey: join(dataDir, 'tls-key.pem') }
    : null;
  if (files && existsSync(files.ca) && existsSync(files.caKey) && existsSync(files.server) && existsSync(files.serverKey)) {
    const [caCert, caKey, serverCert, serverKey] = await Promise.all([files.ca, files.caKey, files.server, files.serverKey].map((f) => readFile(f, 'utf8')));
    return { ca: { certPem: caCert!, keyPem: caKey! }, server: { certPem: serverCert!, keyPem: serverKey! } };
  }
  const ca = await createCertificateAuthority('Roster Emulator Local CA');
  const server = await issueServerCertificate(ca, [PUBLIC_HOST]);
  if (files) {
    await writeFile(files.ca, ca.certPem);
    await writeFile(files.caKey, ca.keyPem, { mode: 0o600 });
    await writeFile(files.server, server.certPem);
    await writeFile(files.serverKey, server.keyPem, { mode: 0o600 });
  }
  return { ca, server };
}

async function loadOrCreateKeyring(dataDir: string | null): Promise<SigningKeyring> {
  const file = dataDir ? join(dataDir, 'signing-keys.json') : null;
  if (file && existsSync(file)) {
    return SigningKeyring.fromStored(JSON.parse(await readFile(file, 'utf8')) as StoredSigningKey[]);
  }
  const ring = await SigningKeyring.create();
  if (file) await writeFile(file, JSON.stringify(ring.toStored(), null, 2), { mode: 0o600 });
  return ring;
}

/** The tenant a request is for: the `{tenant}` path segment, or the `tid` of a bearer token. */
function tenantOfRequest(request: FastifyRequest, ctx: EmulatorContext): string | undefined {
  const params = request.params as Record<string, string> | undefined;
  if (params?.tenant) return ctx.directory.findTenant(params.tenant)?.id;
  const auth = request.headers.authorization;
  if (auth?.startsWith('Bearer ')) {
    try {
      const tid = decodeJwt(auth.slice(7)).tid;
      return typeof tid === 'string' ? tid : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function faultTargetOf(route: string): 'graph' | 'token' | undefined {
  if (route.includes(' /v1.0/')) return 'graph';
  if (route.endsWith('/oauth2/v2.0/token')) return 'token';
  return undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    emulatorLogEntry?: RequestLogEntry;
  }
}

function installRequestLogAndFaults(app: FastifyInstance, ctx: EmulatorContext): void {
  app.addHook('onRequest', async (request, reply) => {
    const route = `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`;
    if (route.includes(' /_emulator')) return;
    const tenant = tenantOfRequest(request, ctx);
    const entry = ctx.requestLog.record({ atMs: Date.now(), method: request.method, route, ...(tenant ? { tenant } : {}) });
    request.emulatorLogEntry = entry;
    const target = faultTargetOf(route);
    if (!target) return;
    const fault = ctx.faults.pick(target, tenant);
    if (!fault) return;
    entry.fault = fault.kind;
    await applyFault(fault, target, request, reply, ctx);
  });
  app.addHook('onResponse', async (request, reply) => {
    if (request.emulatorLogEntry) request.emulatorLogEntry.status = reply.statusCode;
  });
}

async function applyFault(
  fault: Fault,
  target: 'graph' | 'token',
  request: FastifyRequest,
  reply: FastifyReply,
  ctx: EmulatorContext,
): Promise<void> {
  const now = new Date(ctx.clock.nowMs());
  switch (fault.kind) {
    case 'delay':
      await new Promise((resolve) => setTimeout(resolve, fault.delayMs ?? 1000));
      return;
    case 'drop':
      request.raw.socket.destroy();
      return reply.hijack();
    case 'throttle':
    case 'unavailable': {
      const status = fault.kind === 'throttle' ? 429 : 503;
      if (fault.retryAfter !== undefined) reply.header('retry-after', fault.retryAfter);
      if (target === 'graph') {
        const code = status === 429 ? 'TooManyRequests' : 'ServiceUnavailable';
        const message = status === 429 ? 'Too many requests.' : 'Service is temporarily unavailable.';
        await reply.code(status).send(graphErrorBody(code, message, now));
      } else {
        const err =
          status === 429
            ? new IdentityError('temporarily_unavailable', 50196, 'The server terminated an operation because it encountered a client request loop.', { status })
            : new IdentityError('temporarily_unavailable', 50001, 'The service is temporarily unavailable.', { status });
        await reply.code(status).send(identityErrorBody(err, now));
      }
      return;
    }
  }
}

function installErrorHandler(app: FastifyInstance, ctx: EmulatorContext): void {
  app.setErrorHandler((err, request, reply) => {
    const now = new Date(ctx.clock.nowMs());
    if (err instanceof EmulatorError) {
      if (!err.expose) request.log.error(err);
      return err.respond(reply, now);
    }
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) request.log.error(err);
    const message = status >= 500 ? 'Internal error in the emulator.' : (err as Error).message;
    return reply.code(status).send({ error: { code: status >= 500 ? 'InternalError' : 'BadRequest', message } });
  });
}
