import type { FastifyInstance, FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ApiKeyRejectedError, InvalidInputError } from '../tenants/errors.ts';
import type { ApiRoutePlugin, ApiServices } from './context.ts';
import { RateLimitedError } from './errors.ts';
import { problemErrorHandler, sendProblem } from './problems.ts';
import { eventRoutes } from './routes/events.ts';
import { groupRoutes } from './routes/groups.ts';
import { operatorRoutes } from './routes/operator.ts';
import { tenantRoutes } from './routes/tenants.ts';
import { userRoutes } from './routes/users.ts';
import { webhookRoutes } from './routes/webhooks.ts';

export const API_PREFIX = '/api/v1';

/** Each resource's routes; a new resource is one file in `routes/` and one line here. */
const API_ROUTES: ApiRoutePlugin[] = [tenantRoutes, userRoutes, groupRoutes, operatorRoutes, eventRoutes, webhookRoutes];

export interface ApiOptions {
  services: ApiServices;
  /** Requests per key per window (API_RATE_LIMIT_PER_MINUTE). */
  rateLimit: { max: number; timeWindowMs: number };
}

const SCOPE_WORDS = '`directory:read` (tenants, users), `events:read`, `webhooks:manage`, `tenants:manage` (suspend, resume, sync now, held deletions)';

/** The key from `Authorization: Bearer <key>`; anything else is the same 401 as a wrong key. */
function bearerOf(request: FastifyRequest): string {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer ([^\s]+)$/i.exec(header.trim()) : null;
  if (!match) throw new ApiKeyRejectedError();
  return match[1]!;
}

/**
 * TypeBox's conversion of query strings is lenient (`limit=1.5` becomes 1):
 * integer parameters must be written as whole numbers before it runs.
 */
function strictQueryNumbers(request: FastifyRequest): void {
  const properties = (request.routeOptions.schema?.querystring as { properties?: Record<string, { type?: string }> } | undefined)?.properties ?? {};
  const query = request.query as Record<string, unknown>;
  for (const [name, schema] of Object.entries(properties)) {
    const value = query[name];
    if (schema.type === 'integer' && value !== undefined && (typeof value !== 'string' || !/^-?\d{1,15}$/.test(value))) {
      throw new InvalidInputError(name, `"${name}" must be a whole number.`);
    }
  }
}

/**
 * Roster for programs: `/api/v1` as an encapsulated plugin with its own error
 * handler (problem+json; the pages keep theirs), the OpenAPI document built by
 * `@fastify/swagger` from the routes' TypeBox schemas, its reference page
 * served by `@fastify/swagger-ui` from local assets, and every resource route
 * behind the API key check and a per-key rate limit.
 */
export async function registerApi(app: FastifyInstance, options: ApiOptions): Promise<void> {
  await app.register(
    async (api) => {
      api.decorateRequest('apiKey', null);
      // TypeBox's own validator converts query and path strings to the schema's types (`limit=50` is a number), which the pages' Ajv does not.
      api.setValidatorCompiler(TypeBoxValidatorCompiler);
      api.setErrorHandler(problemErrorHandler);
      api.setNotFoundHandler((_request, reply) => sendProblem(reply, 404, 'not_found', 'There is no API route at this address.'));
      await api.register(swagger, {
        openapi: {
          openapi: '3.1.0',
          info: { title: 'Roster API', version: '1.0.0', description: `The directory Roster keeps, and the operator's actions, for programs. Authenticate with \`Authorization: Bearer <API key>\`; scopes: ${SCOPE_WORDS}. Errors are RFC 9457 problem documents.` },
          components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API key (roster_sk_...), created by an operator.' } } },
          security: [{ bearer: [] }],
          tags: [
            { name: 'tenants', description: 'Organisations signed up to Roster.' },
            { name: 'users', description: "Each tenant's directory of users." },
            { name: 'groups', description: "Each tenant's groups and memberships, direct or through nesting." },
            { name: 'operator', description: 'Suspend, resume, sync now and held deletions.' },
            { name: 'events', description: 'The event feed: every change, in order, from a cursor.' },
            { name: 'webhooks', description: 'Webhook endpoints (Standard Webhooks) and their deliveries.' },
          ],
        },
      });
      api.get('/openapi.json', { schema: { hide: true } }, async () => api.swagger());
      await api.register(swaggerUi, { routePrefix: '/docs', staticCSP: true, uiConfig: { deepLinking: true } });

      await api.register(async (secured) => {
        const limiter = secured.createRateLimit({ max: options.rateLimit.max, timeWindow: options.rateLimit.timeWindowMs, keyGenerator: (request: FastifyRequest) => request.apiKey?.id ?? request.ip });
        secured.addHook('onRequest', async (request, reply) => {
          request.apiKey = await options.services.keys.authenticate(bearerOf(request));
          const limit = await limiter(request);
          if (limit.isAllowed) return;
          reply.header('ratelimit-limit', String(limit.max));
          reply.header('ratelimit-remaining', String(limit.remaining));
          reply.header('ratelimit-reset', String(limit.ttlInSeconds));
          if (limit.isExceeded) {
            reply.header('retry-after', String(Math.max(1, limit.ttlInSeconds)));
            throw new RateLimitedError(Math.max(1, limit.ttlInSeconds));
          }
        });
        secured.addHook('preValidation', async (request) => {
          strictQueryNumbers(request);
          // A POST without a body is an empty one, so actions need no `{}` and their schemas still refuse unknown fields.
          if (request.body === undefined || request.body === null) request.body = {};
        });
        const typed = secured.withTypeProvider<TypeBoxTypeProvider>();
        for (const routes of API_ROUTES) await typed.register(routes, options.services);
      });
    },
    { prefix: API_PREFIX },
  );
}
