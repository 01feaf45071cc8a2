import type { FastifyInstance, FastifyReply } from 'fastify';
import { issuerFor, type EmulatorContext } from '../context.ts';
import { IdentityError, sendIdentityError } from '../errors.ts';
import { isConsumerTenantId, resolvePathTenant } from '../identity.ts';
import { CONSUMER_TENANT_ID } from '../model.ts';

const CACHE_CONTROL = 'max-age=86400, private';

export function tenantNotFound(segment: string): IdentityError {
  return new IdentityError(
    'invalid_tenant',
    90002,
    `Tenant '${segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
  );
}

/** The tenant segment every URL of the document carries, and the issuer; undefined for an unknown tenant. */
function describeTenant(ctx: EmulatorContext, segment: string): { urlTenant: string; issuer: string; regionScope: string | null } | undefined {
  if (isConsumerTenantId(segment)) return { urlTenant: CONSUMER_TENANT_ID, issuer: issuerFor(ctx, CONSUMER_TENANT_ID), regionScope: null };
  const resolved = resolvePathTenant(ctx, segment);
  if (!resolved) return undefined;
  switch (resolved.kind) {
    case 'common':
    case 'organizations':
      return { urlTenant: resolved.kind, issuer: issuerFor(ctx), regionScope: null };
    case 'consumers':
      return { urlTenant: 'consumers', issuer: issuerFor(ctx, CONSUMER_TENANT_ID), regionScope: null };
    case 'tenant':
      return { urlTenant: resolved.tenant.id, issuer: issuerFor(ctx, resolved.tenant.id), regionScope: regionOf(resolved.tenant.countryLetterCode) };
  }
}

/** Entra reports a coarse region per tenant (`NA`, `EU`, `AS`, ...), from the country it was created in. */
function regionOf(country: string): string {
  const eu = new Set(['GB', 'DE', 'FR', 'NL', 'BE', 'IE', 'ES', 'IT', 'PT', 'SE', 'NO', 'DK', 'FI', 'PL', 'AT', 'CH', 'CZ']);
  const as = new Set(['JP', 'CN', 'IN', 'SG', 'KR', 'HK', 'TW']);
  const oc = new Set(['AU', 'NZ']);
  if (eu.has(country)) return 'EU';
  if (as.has(country)) return 'AS';
  if (oc.has(country)) return 'OC';
  return 'NA';
}

export function registerDiscoveryRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  const notFound = (reply: FastifyReply, segment: string) => sendIdentityError(reply, tenantNotFound(segment), new Date(ctx.clock.nowMs()));

  app.get<{ Params: { tenant: string } }>('/:tenant/v2.0/.well-known/openid-configuration', async (request, reply) => {
    const described = describeTenant(ctx, request.params.tenant);
    if (!described) return notFound(reply, request.params.tenant);
    const t = described.urlTenant;
    const authority = ctx.urls.authority;
    return reply.header('cache-control', CACHE_CONTROL).send({
      token_endpoint: `${authority}/${t}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${authority}/${t}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: described.issuer,
      request_uri_parameter_supported: false,
      authorization_endpoint: `${ctx.urls.pages}/${t}/oauth2/v2.0/authorize`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${ctx.urls.pages}/${t}/oauth2/v2.0/logout`,
      claims_supported: [
        'sub',
        'iss',
        'cloud_instance_name',
        'cloud_instance_host_name',
        'cloud_graph_host_name',
        'msgraph_host',
        'aud',
        'exp',
        'iat',
        'auth_time',
        'acr',
        'nonce',
        'preferred_username',
        'name',
        'tid',
        'ver',
        'at_hash',
        'c_hash',
        'email',
      ],
      tenant_region_scope: described.regionScope,
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: new URL(ctx.urls.graph).host,
      rbac_url: 'https://pas.windows.net',
    });
  });

  app.get<{ Params: { tenant: string } }>('/:tenant/discovery/v2.0/keys', async (request, reply) => {
    if (!describeTenant(ctx, request.params.tenant)) return notFound(reply, request.params.tenant);
    return reply.header('cache-control', CACHE_CONTROL).send(ctx.keyring.jwks(issuerFor(ctx)));
  });
}
