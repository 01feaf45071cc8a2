import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { authenticateClient, readClientCredentials } from '../client-auth.ts';
import { GRAPH_AUDIENCE, type EmulatorContext } from '../context.ts';
import { IdentityError } from '../errors.ts';
import { formFields, type FormFields } from '../form.ts';
import { issueAppToken, issueUserTokens, resolvePathTenant, splitScopes, type PathTenant } from '../identity.ts';
import type { AppRegistration, Tenant } from '../model.ts';
import { tenantNotFound } from './discovery.ts';

export function registerTokenRoutes(app: FastifyInstance, ctx: EmulatorContext): void {
  app.post<{ Params: { tenant: string } }>('/:tenant/oauth2/v2.0/token', async (request, reply) => {
    const body = formFields(request.body);
    const path = resolvePathTenant(ctx, request.params.tenant);
    if (!path) throw tenantNotFound(request.params.tenant);
    const creds = readClientCredentials(body, request.headers.authorization);
    const grantType = body.grant_type;
    if (!grantType) throw missingParameter('grant_type');
    if (!['authorization_code', 'refresh_token', 'client_credentials', ...DEVICE_CODE_GRANTS].includes(grantType)) {
      throw new IdentityError('unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType}'.`);
    }
    if (!creds.clientId) throw missingParameter('client_id');
    const registration = ctx.directory.apps.get(creds.clientId);
    if (!registration) throw appNotFound(creds.clientId, request.params.tenant);
    if (registration.disabled) throw appDisabled(registration);
    // What an assertion's `aud` may name: this token endpoint (as called or by tenant GUID), the v1 endpoint, or the issuer.
    const segments = path.kind === 'tenant' ? [request.params.tenant, path.tenant.id] : [request.params.tenant];
    const audiences = segments.flatMap((t) => [`${ctx.urls.authority}/${t}/oauth2/v2.0/token`, `${ctx.urls.authority}/${t}/oauth2/token`, `${ctx.urls.authority}/${t}/v2.0`]);

    let result: Record<string, unknown>;
    if (grantType === 'client_credentials') {
      result = await clientCredentials(ctx, path, registration, body, async () => authenticateClient(ctx, registration, creds, audiences));
    } else if (DEVICE_CODE_GRANTS.includes(grantType)) {
      // A public client (isFallbackPublicClient) has no credential to show; any other app authenticates as usual.
      const authenticate = async () => (registration.publicClient ? ('0' as const) : authenticateClient(ctx, registration, creds, audiences));
      result = await redeemDeviceCode(ctx, path, registration, body, authenticate);
    } else {
      const appidacr = await authenticateClient(ctx, registration, creds, audiences);
      result = grantType === 'authorization_code' ? await redeemCode(ctx, path, registration, body, appidacr) : await redeemRefreshToken(ctx, path, registration, body, appidacr);
    }
    return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(result);
  });
}

/** RFC 8628's name, and the short one Entra also accepts (MSAL sends it). */
const DEVICE_CODE_GRANTS = ['urn:ietf:params:oauth:grant-type:device_code', 'device_code'];
/** Polls closer together than the interval are answered with `slow_down`; timers may fire a little early. */
const POLL_SLACK_MS = 250;

async function redeemDeviceCode(
  ctx: EmulatorContext,
  path: PathTenant,
  app: AppRegistration,
  body: FormFields,
  authenticate: () => Promise<'0' | '1' | '2'>,
): Promise<Record<string, unknown>> {
  if (!body.device_code) throw missingParameter('device_code');
  const entry = ctx.deviceCodes.byDeviceCode(body.device_code);
  if (!entry || entry.clientId !== app.appId) {
    throw new IdentityError('invalid_grant', 70000, "The provided value for the input parameter 'device_code' is not valid.");
  }
  const appidacr = await authenticate();
  if (entry.expiresAtMs <= ctx.clock.nowMs()) {
    ctx.deviceCodes.finish(entry);
    throw new IdentityError('expired_token', 70020, "The provided value for the input parameter 'device_code' is not valid. This device code has expired.");
  }
  if (!entry.outcome) {
    // Real time, not the emulator's clock: it is the terminal's polling pace that is judged.
    const now = Date.now();
    const tooSoon = entry.lastPollMs !== null && now - entry.lastPollMs < entry.intervalSeconds * 1000 - POLL_SLACK_MS;
    entry.lastPollMs = now;
    if (tooSoon) throw new IdentityError('slow_down', 70016, 'OAuth 2.0 device flow error. Polling too fast: wait the interval between requests.');
    throw new IdentityError('authorization_pending', 70016, 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.');
  }
  ctx.deviceCodes.finish(entry);
  if (!entry.outcome.approved) throw new IdentityError('authorization_declined', 70000, 'The user has declined the authentication request.');
  const { account, scopes } = entry.outcome;
  if (path.kind === 'tenant' && path.tenant.id !== account.tenantId) {
    throw new IdentityError('invalid_grant', 700005, 'Provided device code is intended to use against other tenant, thus rejected.');
  }
  const { tenant, user } = requireSignedInUser(ctx, app, account.tenantId, account.userId);
  return issueUserTokens(ctx, { app, tenant, user, scopes, sid: account.sid, appidacr });
}

function missingParameter(name: string): IdentityError {
  return new IdentityError('invalid_request', 900144, `The request body must contain the following parameter: '${name}'.`);
}

function appNotFound(clientId: string, tenant: string): IdentityError {
  return new IdentityError(
    'unauthorized_client',
    700016,
    `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
  );
}

function appDisabled(app: AppRegistration): IdentityError {
  return new IdentityError('unauthorized_client', 7000112, `Application '${app.appId}'(${app.displayName}) is disabled.`);
}

function missingServicePrincipal(ctx: EmulatorContext, app: AppRegistration, tenant: Tenant): IdentityError {
  if (ctx.directory.missingServicePrincipalError === 7000229) {
    return new IdentityError(
      'invalid_client',
      7000229,
      `The client application ${app.appId} is missing service principal in the tenant ${tenant.id}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119`,
    );
  }
  return appNotFound(app.appId, tenant.id);
}

function consentRequired(app: AppRegistration): IdentityError {
  return new IdentityError(
    'invalid_grant',
    65001,
    `The user or administrator has not consented to use the application with ID '${app.appId}' named '${app.displayName}'. Send an interactive authorization request for this user and resource.`,
    { suberror: 'consent_required' },
  );
}

async function clientCredentials(
  ctx: EmulatorContext,
  path: PathTenant,
  app: AppRegistration,
  body: FormFields,
  authenticate: () => Promise<'1' | '2'>,
): Promise<Record<string, unknown>> {
  if (path.kind !== 'tenant') {
    // Seen from Entra for app-only requests without a tenant in the path.
    throw new IdentityError('invalid_request', 50059, 'No tenant-identifying information found in either the request or implied by any provided credentials.');
  }
  const tenant = path.tenant;
  const scopes = splitScopes(body.scope);
  if (scopes.length === 0) throw missingParameter('scope');
  if (scopes.length !== 1 || !scopes[0]!.endsWith('/.default')) {
    throw new IdentityError(
      'invalid_scope',
      70011,
      `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${scopes.join(' ')} is not valid. The scope format is invalid. Scope must be in a valid URI form <https://example/scope> or a valid Guid <guid/scope>.`,
    );
  }
  const resource = scopes[0]!.slice(0, -'/.default'.length).replace(/\/$/, '');
  if (resource.toLowerCase() !== GRAPH_AUDIENCE && resource !== '00000003-0000-0000-c000-000000000000') {
    throw new IdentityError(
      'invalid_resource',
      500011,
      `The resource principal named ${resource} was not found in the tenant named ${tenant.displayName}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
    );
  }
  const sp = tenant.servicePrincipals.get(app.appId);
  if (!sp) throw missingServicePrincipal(ctx, app, tenant);
  const appidacr = await authenticate();
  if (ctx.clock.nowMs() < sp.readyAtMs) throw consentRequired(app);
  return issueAppToken(ctx, app, tenant, sp.id, sp.appRoles, appidacr);
}

function verifierMatches(verifier: string, challenge: string, method: string | undefined): boolean {
  if ((method ?? 'plain').toLowerCase() === 'plain') return verifier === challenge;
  return createHash('sha256').update(verifier).digest('base64url') === challenge;
}

/** A code may be redeemed at the path it was issued for, or at its user's own tenant. */
function pathAccepts(path: PathTenant, issuedPath: string, tenantId: string): boolean {
  if (path.kind === 'tenant') return path.tenant.id === tenantId;
  return path.segment === issuedPath.toLowerCase();
}

async function redeemCode(ctx: EmulatorContext, path: PathTenant, app: AppRegistration, body: FormFields, appidacr: '1' | '2'): Promise<Record<string, unknown>> {
  const value = body.code;
  if (!value) throw missingParameter('code');
  const code = ctx.grants.codes.get(value);
  if (!code || code.expiresAtMs <= ctx.clock.nowMs() || code.clientId !== app.appId) {
    throw new IdentityError('invalid_grant', 70008, 'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.');
  }
  if (code.redeemed) {
    throw new IdentityError('invalid_grant', 54005, 'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.');
  }
  if (!pathAccepts(path, code.pathTenant, code.tenantId)) {
    throw new IdentityError(
      'invalid_grant',
      700005,
      'Provided Authorization Code is intended to use against other tenant, thus rejected.',
    );
  }
  if (body.redirect_uri !== code.redirectUri) {
    throw new IdentityError(
      'invalid_grant',
      500112,
      `The reply address '${body.redirect_uri ?? ''}' does not match the reply address '${code.redirectUri}' provided when requesting Authorization code.`,
    );
  }
  if (code.codeChallenge !== undefined) {
    if (!body.code_verifier) throw missingParameter('code_verifier');
    if (!verifierMatches(body.code_verifier, code.codeChallenge, code.codeChallengeMethod)) {
      throw new IdentityError('invalid_grant', 501481, 'The Code_Verifier does not match the code_challenge supplied in the authorization request.');
    }
  }
  const { tenant, user } = requireSignedInUser(ctx, app, code.tenantId, code.userId);
  code.redeemed = true;
  ctx.grants.pruneExpired(ctx.clock.nowMs());
  return issueUserTokens(ctx, { app, tenant, user, scopes: code.scopes, sid: code.sid, nonce: code.nonce, appidacr });
}

async function redeemRefreshToken(ctx: EmulatorContext, path: PathTenant, app: AppRegistration, body: FormFields, appidacr: '1' | '2'): Promise<Record<string, unknown>> {
  const value = body.refresh_token;
  if (!value) throw missingParameter('refresh_token');
  const grant = ctx.grants.refreshTokens.get(value);
  if (!grant || grant.clientId !== app.appId) {
    throw new IdentityError('invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid.');
  }
  if (grant.expiresAtMs <= ctx.clock.nowMs()) {
    const issued = new Date(grant.expiresAtMs - 90 * 86_400_000).toISOString();
    throw new IdentityError(
      'invalid_grant',
      700082,
      `The refresh token has expired due to inactivity. The token was issued on ${issued} and was inactive for 90.00:00:00.`,
    );
  }
  if (path.kind === 'tenant' && path.tenant.id !== grant.tenantId) {
    throw new IdentityError('invalid_grant', 700005, 'Provided refresh token is intended to use against other tenant, thus rejected.');
  }
  const { tenant, user } = requireSignedInUser(ctx, app, grant.tenantId, grant.userId);
  const requested = splitScopes(body.scope);
  const scopes = requested.length > 0 ? requested : grant.scopes;
  // Entra returns a new refresh token each time; the previous one stays valid until it expires.
  return issueUserTokens(ctx, { app, tenant, user, scopes, sid: grant.sid, appidacr });
}

/** The user behind a code or refresh token, still present, enabled, and with the app still consented in their tenant. */
function requireSignedInUser(ctx: EmulatorContext, app: AppRegistration, tenantId: string, userId: string) {
  const tenant = ctx.directory.tenants.get(tenantId);
  const user = tenant?.usersById.get(userId);
  if (!tenant || !user) {
    throw new IdentityError('invalid_grant', 50034, 'The user account does not exist in the directory. To sign into this application, the account must be added to the directory.');
  }
  if (!user.props.accountEnabled) {
    throw new IdentityError('invalid_grant', 50057, 'The user account is disabled.');
  }
  if (!tenant.servicePrincipals.has(app.appId)) throw consentRequired(app);
  return { tenant, user };
}
