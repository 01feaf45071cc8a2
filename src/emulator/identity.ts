import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { accessTokenIssuerFor, GRAPH_AUDIENCE, issuerFor, type EmulatorContext } from './context.ts';
import { CONSUMER_TENANT_ID, directoryRoleTemplateIds, type AppRegistration, type GroupMembershipClaims, type Tenant, type UserRecord } from './model.ts';
import { signIdToken } from './tamper.ts';

/** The `{tenant}` path segment of an identity endpoint, resolved. */
export type PathTenant =
  | { kind: 'common' | 'organizations' | 'consumers'; segment: string }
  | { kind: 'tenant'; segment: string; tenant: Tenant };

export function resolvePathTenant(ctx: EmulatorContext, segment: string): PathTenant | undefined {
  const lower = segment.toLowerCase();
  if (lower === 'common' || lower === 'organizations' || lower === 'consumers') return { kind: lower, segment: lower };
  const tenant = ctx.directory.findTenant(lower);
  return tenant ? { kind: 'tenant', segment, tenant } : undefined;
}

export const CODE_LIFETIME_SECONDS = 600;
export const TOKEN_LIFETIME_SECONDS = 3599;
export const REFRESH_TOKEN_LIFETIME_SECONDS = 90 * 86_400;
const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);
const GRAPH_PREFIX = `${GRAPH_AUDIENCE}/`;

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

export function splitScopes(scope: string | undefined): string[] {
  return (scope ?? '').split(/\s+/).filter(Boolean);
}

/** Graph delegated scopes among the requested ones, unqualified (`User.Read`), as Graph tokens carry them. */
export function graphScopes(scopes: string[]): string[] {
  const result: string[] = [];
  for (const scope of scopes) {
    if (OIDC_SCOPES.has(scope.toLowerCase())) continue;
    const name = scope.toLowerCase().startsWith(GRAPH_PREFIX) ? scope.slice(GRAPH_PREFIX.length) : scope;
    if (name === '.default' || name === '') continue;
    if (!result.some((s) => s.toLowerCase() === name.toLowerCase())) result.push(name);
  }
  return result.length > 0 ? result : ['User.Read'];
}

export function hasScope(scopes: string[], name: string): boolean {
  return scopes.some((s) => s.toLowerCase() === name);
}

/** `sub` is pairwise: stable per (application, user), meaningless elsewhere. */
export function pairwiseSubject(appId: string, oid: string): string {
  return createHash('sha256').update(`${appId}:${oid}`).digest('base64url');
}

/** Opaque `login_hint` claim; the logout endpoint reads it back as `logout_hint`. */
export function loginHintFor(tenantId: string, userId: string, upn: string): string {
  return Buffer.from(JSON.stringify({ tid: tenantId, oid: userId, upn })).toString('base64url');
}

export function parseLoginHint(hint: string): { tid: string; oid: string } | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(hint, 'base64url').toString('utf8')) as { tid?: unknown; oid?: unknown };
    if (typeof parsed.tid === 'string' && typeof parsed.oid === 'string') return { tid: parsed.tid, oid: parsed.oid };
  } catch {
    // not one of ours: treated as no hint
  }
  return undefined;
}

export function clientInfoFor(tenantId: string, userId: string): string {
  return Buffer.from(JSON.stringify({ uid: userId, utid: tenantId })).toString('base64url');
}

export interface UserTokenInput {
  app: AppRegistration;
  tenant: Tenant;
  user: UserRecord;
  scopes: string[];
  sid: string;
  nonce?: string | undefined;
  /** "0" public client, "1" client secret, "2" certificate. */
  appidacr: '0' | '1' | '2';
}

/** The token response of the authorization-code and refresh-token grants. */
export async function issueUserTokens(ctx: EmulatorContext, input: UserTokenInput): Promise<Record<string, unknown>> {
  const { app, tenant, user, scopes } = input;
  const now = ctx.clock.nowSeconds();
  const exp = now + TOKEN_LIFETIME_SECONDS + 1;
  const graph = graphScopes(scopes);
  const oidc = ['openid', 'profile', 'email'].filter((s) => hasScope(scopes, s));
  const scp = [...graph, ...oidc].join(' ');
  const p = user.props;
  const accessClaims: Record<string, unknown> = {
    aud: GRAPH_AUDIENCE,
    iss: accessTokenIssuerFor(tenant.id),
    iat: now,
    nbf: now,
    exp,
    acct: 0,
    amr: ['pwd'],
    app_displayname: app.displayName,
    appid: app.appId,
    appidacr: input.appidacr,
    idtyp: 'user',
    name: p.displayName,
    oid: p.id,
    scp,
    sub: pairwiseSubject(`${app.appId}:graph`, p.id),
    tid: tenant.id,
    unique_name: p.userPrincipalName,
    upn: p.userPrincipalName,
    uti: randomToken(16),
    ver: '1.0',
  };
  if (p.userType === 'Guest') accessClaims.idp = guestIdp(ctx, p.mail);
  if (p.givenName) accessClaims.given_name = p.givenName;
  if (p.surname) accessClaims.family_name = p.surname;
  const body: Record<string, unknown> = {
    token_type: 'Bearer',
    scope: scp,
    expires_in: TOKEN_LIFETIME_SECONDS,
    ext_expires_in: TOKEN_LIFETIME_SECONDS,
    access_token: await ctx.keyring.sign(accessClaims),
  };
  if (hasScope(scopes, 'offline_access')) {
    const refreshToken = randomToken(48);
    ctx.grants.refreshTokens.set(refreshToken, {
      clientId: app.appId,
      tenantId: tenant.id,
      userId: p.id,
      sid: input.sid,
      scopes,
      expiresAtMs: ctx.clock.nowMs() + REFRESH_TOKEN_LIFETIME_SECONDS * 1000,
    });
    body.refresh_token = refreshToken;
  }
  if (hasScope(scopes, 'openid')) body.id_token = await signIdToken(ctx, idTokenClaims(ctx, input, now));
  body.client_info = clientInfoFor(tenant.id, p.id);
  return body;
}

function idTokenClaims(ctx: EmulatorContext, input: UserTokenInput, now: number): Record<string, unknown> {
  const { app, tenant, user, scopes } = input;
  const p = user.props;
  const claims: Record<string, unknown> = {
    aud: app.appId,
    iss: issuerFor(ctx, tenant.id),
    iat: now,
    nbf: now,
    exp: now + 3600,
  };
  if (hasScope(scopes, 'email') && p.mail) claims.email = p.mail;
  if (p.userType === 'Guest') claims.idp = guestIdp(ctx, p.mail);
  claims.login_hint = loginHintFor(tenant.id, p.id, p.userPrincipalName);
  if (hasScope(scopes, 'profile')) {
    claims.name = p.displayName;
    claims.oid = p.id;
    claims.preferred_username = p.userPrincipalName;
  }
  if (input.nonce !== undefined) claims.nonce = input.nonce;
  claims.rh = randomToken(12);
  claims.sid = input.sid;
  claims.sub = pairwiseSubject(app.appId, p.id);
  claims.tid = tenant.id;
  claims.uti = randomToken(16);
  claims.ver = '2.0';
  const wids = APPS_EMITTING_WIDS.has(app.groupMembershipClaims) ? directoryRoleTemplateIds(user) : [];
  // Entra leaves the claim out, rather than sending an empty list, for users without roles.
  if (wids.length > 0) claims.wids = wids;
  return claims;
}

/** Settings of `groupMembershipClaims` under which Entra emits `wids` in ID tokens. */
const APPS_EMITTING_WIDS: ReadonlySet<GroupMembershipClaims> = new Set(['DirectoryRole', 'All', 'SecurityGroup']);

/** A guest's `idp`: the issuer of its home tenant when the emulator holds it, else personal accounts. */
function guestIdp(ctx: EmulatorContext, mail: string | null): string {
  const home = mail ? ctx.directory.findTenant(mail.slice(mail.lastIndexOf('@') + 1)) : undefined;
  return home ? accessTokenIssuerFor(home.id) : 'live.com';
}

/** App-only Graph token of the client-credentials grant (v1 shape). */
export async function issueAppToken(
  ctx: EmulatorContext,
  app: AppRegistration,
  tenant: Tenant,
  servicePrincipalId: string,
  roles: string[],
  appidacr: '1' | '2',
): Promise<Record<string, unknown>> {
  const now = ctx.clock.nowSeconds();
  const claims: Record<string, unknown> = {
    aud: GRAPH_AUDIENCE,
    iss: accessTokenIssuerFor(tenant.id),
    iat: now,
    nbf: now,
    exp: now + TOKEN_LIFETIME_SECONDS + 1,
    app_displayname: app.displayName,
    appid: app.appId,
    appidacr,
    idp: accessTokenIssuerFor(tenant.id),
    idtyp: 'app',
    oid: servicePrincipalId,
    sub: servicePrincipalId,
    tid: tenant.id,
    uti: randomToken(16),
    ver: '1.0',
  };
  if (roles.length > 0) claims.roles = [...roles];
  return {
    token_type: 'Bearer',
    expires_in: TOKEN_LIFETIME_SECONDS,
    ext_expires_in: TOKEN_LIFETIME_SECONDS,
    access_token: await ctx.keyring.sign(claims),
  };
}

/** Personal accounts' tenant: known to discovery even though the emulator holds no such users. */
export function isConsumerTenantId(value: string): boolean {
  return value.toLowerCase() === CONSUMER_TENANT_ID;
}

export function newSessionId(): string {
  return randomUUID();
}
