import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { WebhookEndpoints } from '../events/endpoints.ts';
import type { AuditActor } from '../store/audit.ts';
import type { EventRepository } from '../store/events.ts';
import type { TenantRecord, TenantRepository } from '../store/tenants.ts';
import type { GroupRepository } from '../store/groups.ts';
import type { UserRepository } from '../store/users.ts';
import type { ApiKeyRecord, ApiKeys, ApiKeyScope } from '../tenants/api-keys.ts';
import type { OperatorActions } from '../tenants/operator-actions.ts';
import { ApiNotFoundError, MissingScopeError } from './errors.ts';

/** What the API's route plugins are handed: repositories and services, never the store itself. */
export interface ApiServices {
  tenants: TenantRepository;
  users: UserRepository;
  groups: GroupRepository;
  actions: OperatorActions;
  keys: ApiKeys;
  /** The outbox, read as the event feed. */
  events: EventRepository;
  webhooks: WebhookEndpoints;
}

/**
 * One resource's routes (`src/api/routes/<resource>.ts`): an encapsulated
 * Fastify plugin with TypeBox schemas, registered behind the API's key check,
 * rate limit and problem+json error handler.
 */
export type ApiRoutePlugin = FastifyPluginAsyncTypebox<ApiServices>;

declare module 'fastify' {
  interface FastifyRequest {
    /** The API key of an authenticated `/api/v1` request. */
    apiKey: ApiKeyRecord | null;
  }
}

/** The key of a request behind the API's key check. */
export function apiKeyOf(request: FastifyRequest): ApiKeyRecord {
  if (!request.apiKey) throw new Error('an API route ran without the key check');
  return request.apiKey;
}

/** A route's scope check, run before its input is validated (an other-scope key learns nothing of the route). */
export function requireScope(scope: ApiKeyScope): onRequestAsyncHookHandler {
  return async (request) => {
    if (!apiKeyOf(request).scopes.includes(scope)) throw new MissingScopeError(scope);
  };
}

/** The audit log's "who" for an API call: the key's id and name, from the client's address. */
export function apiActor(request: FastifyRequest): AuditActor {
  const key = apiKeyOf(request);
  return { kind: 'api_key', id: key.id, name: key.name, source: request.ip };
}

/** The tenant if this key may see it; 404 alike for a tenant that does not exist and one of another tenant (rule 31). */
export async function visibleTenant(request: FastifyRequest, tenants: TenantRepository, tenantId: string): Promise<TenantRecord> {
  const key = apiKeyOf(request);
  const id = tenantId.toLowerCase();
  if (key.tenantId !== null && key.tenantId !== id) throw new ApiNotFoundError('Roster has no tenant with this id that this API key may see.');
  const tenant = await tenants.get(id);
  if (!tenant) throw new ApiNotFoundError('Roster has no tenant with this id that this API key may see.');
  return tenant;
}
