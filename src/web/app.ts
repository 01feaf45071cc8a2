import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import { fastifySSE } from '@fastify/sse';
import fastifyStatic from '@fastify/static';
import { Eta } from 'eta';
import type { Logger } from 'pino';
import type { EntraApp } from '../identity/entra-app.ts';
import { IdentityUnavailableError } from '../identity/errors.ts';
import type { IdTokenValidator } from '../identity/id-token.ts';
import { AuthRequestRepository } from '../store/auth-requests.ts';
import { databaseUnavailable, type Store } from '../store/database.ts';
import { SessionRepository } from '../store/sessions.ts';
import { TenantRepository } from '../store/tenants.ts';
import { randomToken } from '../store/tokens.ts';
import { UserRepository } from '../store/users.ts';
import type { TenantOnboarding } from '../tenants/onboarding.ts';
import type { OperatorIdentity } from '../config/config.ts';
import { formatters } from './format.ts';
import { registerObservability } from './observability.ts';
import { SyncStatusRepository } from '../store/sync-status.ts';
import { TenantLifecycle } from '../tenants/lifecycle.ts';
import type { SyncControl, Viewer, WebContext } from './context.ts';
import { registerAuthRoutes } from './routes/auth.ts';
import { registerPageRoutes } from './routes/pages.ts';
import { registerSignupRoutes } from './routes/signup.ts';
import { registerUserRoutes } from './routes/users.ts';
import { registerSyncRoutes } from './routes/sync.ts';
import { registerOrganisationRoutes } from './routes/organisation.ts';
import { registerOperatorRoutes } from './routes/operator.ts';

export interface WebDependencies {
  publicUrl: URL;
  session: { idleMinutes: number; absoluteHours: number };
  store: Store;
  entra: EntraApp;
  validator: IdTokenValidator;
  onboarding: TenantOnboarding;
  logger: Logger;
  now?: () => number;
  /** Directory sync as the pages drive it (a new organisation is synced at once); without it "Sync now" and held deletions are refused. */
  sync?: SyncControl;
  operators?: readonly OperatorIdentity[];
  metricsToken?: string | null;
}

const NO_SYNC: SyncControl = {
  requestSync: () => {
    throw new Error('directory sync is not running in this process');
  },
  confirmHeldDeletion: () => Promise.reject(new Error('directory sync is not running in this process')),
  discardHeldDeletion: () => Promise.reject(new Error('directory sync is not running in this process')),
};

/** A sign-in or sign-up must come back within this time. */
const AUTH_REQUEST_TTL_MS = 10 * 60_000;
const HERE = import.meta.dirname;
const SESSIONLESS_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

export async function buildWebApp(deps: WebDependencies): Promise<FastifyInstance> {
  const now = deps.now ?? Date.now;
  const secureCookies = deps.publicUrl.protocol === 'https:';
  const eta = new Eta({ views: join(HERE, 'views'), autoEscape: true, cache: true });

  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Redirect URIs and origins come from PUBLIC_URL, never from Host or X-Forwarded-* headers.
    trustProxy: false,
    ajv: { customOptions: { allErrors: false, coerceTypes: false } },
  });

  const ctx: WebContext = {
    publicUrl: deps.publicUrl,
    secureCookies,
    cookieNames: secureCookies
      ? { session: '__Host-roster_session', binding: '__Host-roster_binding' }
      : { session: 'roster_session', binding: 'roster_binding' },
    entra: deps.entra,
    validator: deps.validator,
    onboarding: deps.onboarding,
    store: deps.store,
    tenants: new TenantRepository(deps.store.db),
    users: new UserRepository(deps.store.db, deps.store.engine),
    sessions: new SessionRepository(deps.store.db, {
      idleMs: deps.session.idleMinutes * 60_000,
      absoluteMs: deps.session.absoluteHours * 3_600_000,
    }),
    authRequests: new AuthRequestRepository(deps.store.db, AUTH_REQUEST_TTL_MS),
    syncStatus: new SyncStatusRepository(deps.store.db),
    lifecycle: new TenantLifecycle(deps.store.db),
    sync: deps.sync ?? NO_SYNC,
    operators: deps.operators ?? [],
    now,
    render(reply, template, data, status = 200) {
      const viewer = reply.request.viewer;
      const html = eta.render(template, {
        viewer: viewer ? { name: viewer.name, tenantName: viewer.tenantName, csrfToken: viewer.csrfToken, isAdmin: viewer.isAdmin, isOperator: viewer.isOperator } : null,
        path: reply.request.url.split('?')[0],
        fmt: formatters(now()),
        ...data,
      });
      return reply.code(status).type('text/html; charset=utf-8').send(html);
    },
    message(_request, reply, status, page) {
      return ctx.render(reply, 'message', { heading: page.heading ?? page.title, tone: page.tone ?? (status >= 400 ? 'bad' : 'info'), links: [], ...page }, status);
    },
    browserBinding(request, reply) {
      const existing = request.cookies[ctx.cookieNames.binding];
      if (existing && existing.length >= 43) return existing;
      const value = randomToken();
      reply.setCookie(ctx.cookieNames.binding, value, { path: '/', httpOnly: true, sameSite: 'lax', secure: secureCookies });
      return value;
    },
  };

  await app.register(cookie);
  await app.register(formbody);
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        // Chromium applies form-action to the redirects that follow a form post (sign-up, sign-out).
        formAction: ["'self'", ...new Set([deps.entra.metadata.adminConsentEndpoint, deps.entra.metadata.endSessionEndpoint].map((u) => new URL(u).origin))],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    strictTransportSecurity: secureCookies ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'same-origin' },
    crossOriginEmbedderPolicy: false,
  });
  await app.register(rateLimit, { global: false });
  await app.register(fastifySSE, { heartbeatInterval: 15_000 });
  await app.register(fastifyStatic, { root: join(HERE, 'assets'), prefix: '/assets/', maxAge: '1h' });

  app.decorateRequest('viewer', null);
  app.addHook('onRequest', async (request, reply) => {
    if (!isSafeMethod(request.method) && !isSameOriginRequest(request, deps.publicUrl)) {
      return reply.code(403).type('text/plain; charset=utf-8').send('Cross-site request refused.');
    }
    // Probes and assets need no session: no database work, no cookie changes.
    if (SESSIONLESS_PATHS.has(request.url.split('?')[0]!) || request.url.startsWith('/assets/')) return;
    request.viewer = await resumeViewer(ctx, request, reply);
  });
  await registerObservability(app, { store: deps.store, metricsToken: deps.metricsToken ?? null, now });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: SchemaFailure[]; validationContext?: string }, request, reply) => {
    const unavailable = databaseUnavailable(err);
    if (unavailable) {
      request.log.warn({ err: unavailable }, 'request failed: the database is unavailable');
      reply.header('retry-after', '30');
      return ctx.message(request, reply, 503, { title: 'Roster is briefly unavailable', message: 'Roster cannot reach its database at the moment, so it could not finish your request.', next: 'Try again in a minute.' });
    }
    if (err instanceof IdentityUnavailableError) {
      request.log.warn({ err }, 'request failed: the identity provider is unreachable');
      reply.header('retry-after', '30');
      return ctx.message(request, reply, 503, { title: 'Microsoft could not be reached', message: 'Roster could not reach Microsoft\'s sign-in service, so it could not finish your request.', next: 'Try again in a minute.' });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) request.log.error({ err }, 'request failed');
    if (status === 429) return ctx.message(request, reply, 429, { title: 'Too many attempts', message: 'Too many requests came from your network in a short time.', next: 'Wait a minute, then try again.' });
    if (status === 400 || err.validation) {
      return ctx.message(request, reply, 400, { title: 'That request was not valid', message: `Roster could not use the request: ${err.validation ? describeSchemaFailure(err.validation, err.validationContext) : err.message}.`, next: 'Go back and try again.' });
    }
    return ctx.message(request, reply, status, {
      title: status === 500 ? 'Something went wrong' : 'Request refused',
      message: status === 500 ? 'Roster hit an unexpected problem and did not finish your request.' : err.message,
      next: 'Try again. If it keeps happening, contact support.',
    });
  });
  app.setNotFoundHandler((request, reply) =>
    ctx.message(request, reply, 404, { title: 'Page not found', message: 'There is no page at this address.', links: [{ href: '/', label: 'Go to the home page', primary: true }] }),
  );

  registerPageRoutes(app, ctx);
  registerUserRoutes(app, ctx);
  registerSyncRoutes(app, ctx);
  registerOrganisationRoutes(app, ctx);
  registerOperatorRoutes(app, ctx);
  registerAuthRoutes(app, ctx);
  registerSignupRoutes(app, ctx);
  return app;
}

interface SchemaFailure {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

/** What a pattern-checked field accepts, in words (Ajv's own message shows the regular expression). */
const FIELD_FORMATS: Record<string, string> = {
  id: 'must be an id in GUID form (like 3f2504e0-4f89-41d3-9a0c-0305e82c3301)',
  page: 'must be a page number: 1, 2, 3 and so on',
  tenant: 'must be a tenant id in GUID form',
};

/** Which field failed the schema and what it accepts, in words a person can act on. */
function describeSchemaFailure(failures: SchemaFailure[], context: string | undefined): string {
  const first = failures[0];
  if (!first) return `the ${context ?? 'request'} is not valid`;
  const field = first.instancePath.replace(/^\//, '').replace(/\//g, '.') || String(first.params.missingProperty ?? first.params.additionalProperty ?? context ?? 'request');
  switch (first.keyword) {
    case 'enum':
      return `"${field}" must be equal to one of the allowed values: ${(first.params.allowedValues as unknown[]).join(', ')}`;
    case 'pattern':
      return `"${field}" ${FIELD_FORMATS[field] ?? 'is not in the expected format'}`;
    case 'required':
      return `"${field}" is missing`;
    case 'maxLength':
      return `"${field}" is longer than ${String(first.params.limit)} characters`;
    case 'type':
      return `"${field}" must be a single ${String(first.params.type)} value`;
    default:
      return `"${field}" ${first.message ?? 'is not valid'}`;
  }
}

function isSafeMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
}

/** CSRF defence for every state-changing request: the browser must say it comes from our own pages. */
function isSameOriginRequest(request: FastifyRequest, publicUrl: URL): boolean {
  const site = request.headers['sec-fetch-site'];
  if (typeof site === 'string') return site === 'same-origin';
  const origin = request.headers.origin;
  return typeof origin === 'string' && origin === publicUrl.origin;
}

/**
 * The session behind the cookie, re-checked on every request against Roster's
 * records: a tenant that left or was disconnected, or a user removed or
 * disabled by a sync, no longer has a session.
 */
async function resumeViewer(ctx: WebContext, request: FastifyRequest, reply: FastifyReply): Promise<Viewer | null> {
  const sessionId = request.cookies[ctx.cookieNames.session];
  if (!sessionId) return null;
  const session = await ctx.sessions.resume(sessionId, ctx.now());
  const tenant = session ? await ctx.tenants.get(session.tenantId) : undefined;
  const user = session ? await ctx.users.get(session.tenantId, session.userId) : undefined;
  if (!session || !tenant || tenant.state !== 'active' || !user || user.deleted || !user.accountEnabled) {
    if (session) await ctx.sessions.destroy(sessionId);
    reply.clearCookie(ctx.cookieNames.session, { path: '/' });
    return null;
  }
  return {
    sessionId,
    tenant,
    user,
    name: user.displayName ?? user.userPrincipalName ?? 'you',
    tenantName: tenant.displayName,
    csrfToken: session.csrfToken,
    loginHint: session.loginHint,
    isAdmin: user.rosterRole === 'admin',
    isOperator: ctx.operators.some((o) => o.tenantId === tenant.id && o.objectId === user.id),
  };
}
