import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import rateLimit from '@fastify/rate-limit';
import { fastifySSE } from '@fastify/sse';
import fastifyStatic from '@fastify/static';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Eta, type EtaConfig } from 'eta';
import type { Logger } from 'pino';
import type { EntraApp } from '../identity/entra-app.ts';
import type { IdTokenValidator } from '../identity/id-token.ts';
import type { Store } from '../store/database.ts';
import { repositoriesOf, webRepositoriesOf } from '../store/repositories.ts';
import { randomToken } from '../store/tokens.ts';
import type { TenantOnboarding } from '../tenants/onboarding.ts';
import type { OperatorIdentity } from '../config/config.ts';
import { formatters } from './format.ts';
import { registerObservability } from './observability.ts';
import { TenantLifecycle } from '../tenants/lifecycle.ts';
import { GroupRoles } from '../tenants/group-roles.ts';
import { OperatorActions } from '../tenants/operator-actions.ts';
import { ApiKeys } from '../tenants/api-keys.ts';
import { AuditRepository } from '../store/audit.ts';
import { API_PREFIX, registerApi } from '../api/plugin.ts';
import type { Pages, PageServices, SyncControl, WebContext } from './context.ts';
import { pageErrorHandler } from './error-page.ts';
import { SyncUnavailableError } from './errors.ts';
import { securityHeaders } from './security-headers.ts';
import { guard } from './guards.ts';
import { RequestLogController } from './logger.ts';
import type { WebExtension } from './plugins.ts';
import { viewerSource, type ViewerSource } from './viewer.ts';
import { adminClaimRoutes } from './routes/admin-claim.ts';
import { signInRoutes } from './routes/auth.ts';
import { overviewRoutes } from './routes/pages.ts';
import { signupRoutes } from './routes/signup.ts';
import { groupRoutes } from './routes/groups.ts';
import { userRoutes } from './routes/users.ts';
import { syncRoutes } from './routes/sync.ts';
import { organisationRoutes } from './routes/organisation.ts';
import { operatorRoutes } from './routes/operator.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { WebhookEndpoints } from '../events/endpoints.ts';
import { operatorAccessRoutes } from './routes/operator-access.ts';
import { graphNotificationRoutes } from './routes/graph-notifications.ts';
import type { NotificationReceiver } from './graph-notifications.ts';
import { GraphSubscriptionRepository } from '../store/graph-subscriptions.ts';
import { MetricsRepository } from '../store/metrics.ts';
import { LIFECYCLE_PATH, NOTIFICATION_PATH } from '../directory/subscriptions.ts';

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
  /**
   * Fastify's `trustProxy` (TRUST_PROXY): off by default; a hop count or the
   * proxies' addresses and CIDRs. Only then do rate limits key on the client
   * address from X-Forwarded-For. Redirect URIs still come from PUBLIC_URL.
   */
  trustProxy?: false | number | readonly string[];
  /** A product's own pages, registered after Roster's (see docs/extending.md). */
  plugins?: readonly WebExtension[];
  /** How often an open sync progress stream re-checks its session; 5 seconds unless set. */
  streamCheckMs?: number;
  /** Webhook endpoints as the operator pages manage them (with the configured rotation window); a default one over the store otherwise. */
  webhooks?: WebhookEndpoints;
  /** Requests per API key per minute on `/api/v1` (API_RATE_LIMIT_PER_MINUTE); 600 unless set. */
  apiRateLimitPerMinute?: number;
  /** Graph change notifications (NOTIFICATIONS=on): the endpoints Graph calls are served only with it. */
  notifications?: Pick<NotificationReceiver, 'syncSoon' | 'reauthorize' | 'counters'>;
}

const NO_SYNC: SyncControl = {
  requestSync: () => {
    throw new SyncUnavailableError();
  },
  confirmHeldDeletion: () => Promise.reject(new SyncUnavailableError()),
  discardHeldDeletion: () => Promise.reject(new SyncUnavailableError()),
};

/** A sign-in or sign-up must come back within this time. */
const AUTH_REQUEST_TTL_MS = 10 * 60_000;
const HERE = import.meta.dirname;
const SESSIONLESS_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
/** Graph's calls carry no session, cookie or CSRF token: checked by their own rules instead (security rule 34). */
const GRAPH_CALLBACK_PATHS = new Set([NOTIFICATION_PATH, LIFECYCLE_PATH]);
/** Responses that may open a session (the callbacks, and a sign-up finished by its retry): no cache may store them either. */
const NO_STORE_PATHS = new Set(['/auth/callback', '/signup/callback', '/signup/confirm']);

/** The repositories and services behind the pages, the one place that sees the store. */
function pageServices(deps: WebDependencies): PageServices {
  const now = deps.now ?? Date.now;
  const lifecycle = new TenantLifecycle(deps.store, deps.sync?.tenantStateChanged ? { onChange: (id) => deps.sync?.tenantStateChanged?.(id) } : {});
  const sync = deps.sync ?? NO_SYNC;
  return {
    ...webRepositoriesOf(deps.store, {
      session: { idleMs: deps.session.idleMinutes * 60_000, absoluteMs: deps.session.absoluteHours * 3_600_000 },
      authRequestTtlMs: AUTH_REQUEST_TTL_MS,
    }),
    lifecycle,
    sync,
    actions: new OperatorActions({ store: deps.store, lifecycle, sync, now }),
    apiKeys: new ApiKeys(deps.store, now),
    audit: new AuditRepository(deps.store.db),
    webhooks: deps.webhooks ?? new WebhookEndpoints({ store: deps.store, now }),
    groupRoles: new GroupRoles(deps.store, now),
  };
}

/**
 * Eta keeps compiled templates (`cache`), but works out each template's file
 * path again on every render, layout and include: a users page does it fifty
 * times. The views folder never changes while Roster runs, so each answer is
 * kept; a path Eta refuses is refused again each time (nothing is kept).
 */
class ViewsEta extends Eta {
  constructor(options: Partial<EtaConfig>) {
    super(options);
    const resolve = this.resolvePath;
    const paths = new Map<string, string>();
    this.resolvePath = function (template, resolveOptions) {
      const key = `${resolveOptions?.filepath ?? ''}\n${template}`;
      let path = paths.get(key);
      if (path === undefined) {
        path = resolve.call(this, template, resolveOptions);
        paths.set(key, path);
      }
      return path;
    };
  }
}

/** Roster's layout, message pages and guards over one Eta instance. */
function pagesKit(now: () => number): Pages {
  const eta = new ViewsEta({ views: join(HERE, 'views'), autoEscape: true, cache: true });
  const pages: Pages = {
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
    page: (reply, page, status = 200) => pages.render(reply, 'fragment', page, status),
    message: (_request, reply, status, page) => pages.render(reply, 'message', { heading: page.heading ?? page.title, tone: page.tone ?? (status >= 400 ? 'bad' : 'info'), links: [], ...page }, status),
    guard: (access) => guard(pages, access),
  };
  return pages;
}

export async function buildWebApp(deps: WebDependencies): Promise<FastifyInstance> {
  const now = deps.now ?? Date.now;
  const secureCookies = deps.publicUrl.protocol === 'https:';
  const services = pageServices(deps);
  const pages = pagesKit(now);
  const operators = deps.operators ?? [];
  const viewers = viewerSource(services, operators, now);

  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new RequestLogController(),
    // Only the client address comes from X-Forwarded-For, and only from trusted proxies; redirect URIs and origins come from PUBLIC_URL.
    trustProxy: trustedProxies(deps.trustProxy ?? false),
    ajv: { customOptions: { allErrors: false, coerceTypes: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const ctx: WebContext = {
    ...pages,
    ...services,
    publicUrl: deps.publicUrl,
    secureCookies,
    cookieNames: secureCookies
      ? { session: '__Host-roster_session', binding: '__Host-roster_binding' }
      : { session: 'roster_session', binding: 'roster_binding' },
    entra: deps.entra,
    validator: deps.validator,
    onboarding: deps.onboarding,
    operators,
    browserBinding(request, reply) {
      const existing = request.cookies[ctx.cookieNames.binding];
      if (existing && existing.length >= 43) return existing;
      const value = randomToken();
      reply.setCookie(ctx.cookieNames.binding, value, { path: '/', httpOnly: true, sameSite: 'lax', secure: secureCookies });
      return value;
    },
  };

  await registerPlatform(app, deps);
  app.decorateRequest('viewer', null);
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0]!;
    // The API takes no cookies, only bearer keys a browser never adds by itself: no session, no cross-site forgery to refuse.
    if (path === API_PREFIX || path.startsWith(`${API_PREFIX}/`)) return;
    if (deps.notifications && GRAPH_CALLBACK_PATHS.has(path)) return;
    if (!isSafeMethod(request.method) && !isSameOriginRequest(request, deps.publicUrl)) {
      return reply.code(403).type('text/plain; charset=utf-8').send('Cross-site request refused.');
    }
    // Probes and assets need no session: no database work, no cookie changes.
    if (SESSIONLESS_PATHS.has(path) || path.startsWith('/assets/')) return;
    request.viewer = await resumeViewer(viewers, ctx.cookieNames.session, request, reply);
    // A signed-in person's pages, and the callbacks that sign people in, stay out of every cache.
    if (request.viewer || NO_STORE_PATHS.has(path)) reply.header('cache-control', 'no-store');
  });
  await registerObservability(app, {
    metrics: new MetricsRepository(deps.store),
    metricsToken: deps.metricsToken ?? null,
    now,
    ...(deps.notifications ? { notifications: { counters: deps.notifications.counters, subscriptions: new GraphSubscriptionRepository(deps.store.db) } } : {}),
  });

  app.setErrorHandler(pageErrorHandler(pages));
  app.setNotFoundHandler((request, reply) =>
    pages.message(request, reply, 404, { title: 'Page not found', message: 'There is no page at this address.', links: [{ href: '/', label: 'Go to the home page', primary: true }] }),
  );

  await registerRoutes(app, { deps, services, pages, ctx, viewers });
  return app;
}

/** The pages, each resource a plugin given the repositories and services it uses; the API; Graph's callbacks; the product's own plugins. */
async function registerRoutes(
  app: FastifyInstance,
  parts: { deps: WebDependencies; services: PageServices; pages: Pages; ctx: WebContext; viewers: ViewerSource },
): Promise<void> {
  const { deps, services, pages, ctx, viewers } = parts;
  const now = pages.now;
  const { tenants, users, syncStatus, lifecycle, sync } = services;
  await app.register(overviewRoutes, { pages, syncStatus, users });
  await app.register(adminClaimRoutes, { pages, users, audit: services.audit });
  await app.register(userRoutes, { pages, users, syncStatus, groups: services.groups, audit: services.audit });
  await app.register(groupRoutes, { pages, groups: services.groups, syncStatus });
  await app.register(syncRoutes, { pages, syncStatus, sync, actions: services.actions, viewers, streamCheckMs: deps.streamCheckMs ?? 5_000 });
  await app.register(organisationRoutes, { pages, users, syncStatus, lifecycle, sessionCookie: ctx.cookieNames.session, groups: services.groups, groupRoles: services.groupRoles });
  await app.register(operatorRoutes, { pages, tenants, syncStatus, actions: services.actions });
  await app.register(operatorAccessRoutes, { pages, tenants, apiKeys: services.apiKeys, audit: services.audit });
  await app.register(webhookRoutes, { pages, webhooks: services.webhooks });
  await app.register(signInRoutes, ctx);
  await app.register(signupRoutes, ctx);
  await registerApi(app, {
    services: { tenants, users, groups: services.groups, actions: services.actions, keys: services.apiKeys, events: repositoriesOf(deps.store).events, webhooks: services.webhooks },
    rateLimit: { max: deps.apiRateLimitPerMinute ?? 600, timeWindowMs: 60_000 },
  });
  if (deps.notifications) await app.register(graphNotificationRoutes, { ...deps.notifications, subscriptions: new GraphSubscriptionRepository(deps.store.db), now });
  for (const extension of deps.plugins ?? []) {
    await app.register(extension.plugin, { pages, tenants, users, syncStatus, ...(extension.prefix ? { prefix: extension.prefix } : {}) });
  }
}

/** Cookies, forms, security headers, rate limits, Server-Sent Events and the static assets. */
async function registerPlatform(app: FastifyInstance, deps: WebDependencies): Promise<void> {
  const secureCookies = deps.publicUrl.protocol === 'https:';
  await app.register(cookie);
  await app.register(formbody);
  const headers = securityHeaders({
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
  app.addHook('onRequest', (_request, reply, done) => {
    for (const [name, value] of headers) reply.raw.setHeader(name, value);
    done();
  });
  await app.register(rateLimit, { global: false });
  await app.register(fastifySSE, { heartbeatInterval: 15_000 });
  await app.register(fastifyStatic, { root: join(HERE, 'assets'), prefix: '/assets/', maxAge: '1h' });
}

/** Fastify's trustProxy for a hop count (as proxy-addr counts hops) or a list of addresses and CIDRs. */
function trustedProxies(setting: false | number | readonly string[]): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (setting === false) return false;
  if (typeof setting === 'number') return (_address, hop) => hop < setting;
  return [...setting];
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

/** The session behind the cookie, re-checked on every request; a session that ended loses its cookie. */
async function resumeViewer(viewers: ViewerSource, cookieName: string, request: FastifyRequest, reply: FastifyReply) {
  const sessionId = request.cookies[cookieName];
  if (!sessionId) return null;
  const viewer = await viewers.resume(sessionId);
  if (!viewer) reply.clearCookie(cookieName, { path: '/' });
  return viewer;
}
