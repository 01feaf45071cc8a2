import { errors as joseErrors, type JWTPayload } from 'jose';
import { decodeProtectedHeader } from 'jose';
import { accessTokenIssuerFor, GRAPH_APP_ID, GRAPH_AUDIENCE, issuerFor, type EmulatorContext } from './context.ts';
import type { Tenant } from './model.ts';

/** Who is calling Graph, from a verified bearer token. */
export interface GraphCaller {
  tenant: Tenant;
  payload: JWTPayload;
  /** A user's token (`scp`), as opposed to an app-only token (`roles`). */
  delegated: boolean;
  scopes: ReadonlySet<string>;
  roles: ReadonlySet<string>;
  /** `oid`: the user (delegated) or service principal (app). */
  oid: string | undefined;
}

export interface GraphAuthFailure {
  status: 401;
  code: 'InvalidAuthenticationToken';
  message: string;
}

/** What real Graph sends with every 401. */
export const GRAPH_WWW_AUTHENTICATE =
  `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="${GRAPH_APP_ID}"`;

const MSG_EMPTY = 'Access token is empty.';
const MSG_NO_DOTS =
  "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format. (JWS): 'EncodedHeader.EndcodedPayload.EncodedSignature'. (JWE): 'EncodedProtectedHeader.EncodedEncryptedKey.EncodedInitializationVector.EncodedCiphertext.EncodedAuthenticationTag'.";
const MSG_UNPARSABLE = 'CompactToken parsing failed with error code: 80049217';
const MSG_EXPIRED = 'Access token has expired or is not yet valid.';
const MSG_SIGNATURE = 'Access token validation failure. Invalid signature.';
const MSG_AUDIENCE = 'Access token validation failure. Invalid audience.';
const MSG_ISSUER = 'Access token validation failure. Invalid issuer or tenant.';
const MSG_REVOKED = 'Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp';

/** Roles (app tokens) and scopes (delegated tokens) that allow reading every user. */
export const READ_USERS_ROLES = ['User.Read.All', 'User.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'];
const READ_USERS_SCOPES = [...READ_USERS_ROLES, 'User.ReadBasic.All', 'Directory.AccessAsUser.All'];
/** Scopes that allow reading the signed-in user (`/me`). */
const READ_ME_SCOPES = [...READ_USERS_SCOPES, 'User.Read', 'User.ReadWrite'];

export function canReadUsers(caller: GraphCaller): boolean {
  const granted = caller.delegated ? caller.scopes : caller.roles;
  return (caller.delegated ? READ_USERS_SCOPES : READ_USERS_ROLES).some((p) => granted.has(p));
}

/** Roles and scopes that allow reading groups and their members (GroupMember.Read.All is the least privileged). */
export const READ_GROUPS_ROLES = ['GroupMember.Read.All', 'GroupMember.ReadWrite.All', 'Group.Read.All', 'Group.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'];
const READ_GROUPS_SCOPES = [...READ_GROUPS_ROLES, 'Directory.AccessAsUser.All'];

export function canReadGroups(caller: GraphCaller): boolean {
  const granted = caller.delegated ? caller.scopes : caller.roles;
  return (caller.delegated ? READ_GROUPS_SCOPES : READ_GROUPS_ROLES).some((p) => granted.has(p));
}

export function canReadMe(caller: GraphCaller): boolean {
  return caller.delegated && READ_ME_SCOPES.some((p) => caller.scopes.has(p));
}

interface CachedToken {
  payload: JWTPayload;
  kid: string | undefined;
}

const CACHE_LIMIT = 10_000;

/**
 * Checks Graph bearer tokens. Verifying an RS256 signature on every page of a
 * million-user listing would dominate the hot path, so verified tokens are kept
 * (bounded) and only their lifetime and signing key are re-checked on a hit.
 */
export class GraphAuthenticator {
  readonly #ctx: EmulatorContext;
  readonly #cache = new Map<string, CachedToken>();

  constructor(ctx: EmulatorContext) {
    this.#ctx = ctx;
  }

  async authenticate(authorization: string | undefined): Promise<GraphCaller | GraphAuthFailure> {
    const token = bearerToken(authorization);
    if (!token) return fail(MSG_EMPTY);
    const now = this.#ctx.clock.nowSeconds();
    const cached = this.#cache.get(token);
    let payload: JWTPayload;
    if (cached) {
      if (!this.#ctx.keyring.kids.includes(cached.kid ?? '')) {
        this.#cache.delete(token);
        return fail(MSG_SIGNATURE);
      }
      if (!withinLifetime(cached.payload, now)) return fail(MSG_EXPIRED);
      payload = cached.payload;
    } else {
      if (!token.includes('.')) return fail(MSG_NO_DOTS);
      let kid: string | undefined;
      try {
        kid = decodeProtectedHeader(token).kid;
      } catch {
        return fail(MSG_UNPARSABLE);
      }
      try {
        payload = await this.#ctx.keyring.verify(token, now);
      } catch (err) {
        if (err instanceof joseErrors.JWTExpired) return fail(MSG_EXPIRED);
        if (err instanceof joseErrors.JWTClaimValidationFailed && err.claim === 'nbf') return fail(MSG_EXPIRED);
        if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return fail(MSG_UNPARSABLE);
        return fail(MSG_SIGNATURE);
      }
      if (this.#cache.size >= CACHE_LIMIT) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(token, { payload, kid });
    }
    return this.#authorize(payload);
  }

  #authorize(payload: JWTPayload): GraphCaller | GraphAuthFailure {
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!audiences.some((a) => a === GRAPH_AUDIENCE || a === GRAPH_APP_ID || a === `${GRAPH_AUDIENCE}/`)) return fail(MSG_AUDIENCE);
    const tid = typeof payload.tid === 'string' ? payload.tid.toLowerCase() : undefined;
    const tenant = tid ? this.#ctx.directory.tenants.get(tid) : undefined;
    if (!tenant) return fail(MSG_ISSUER);
    const issuers = [accessTokenIssuerFor(tenant.id), issuerFor(this.#ctx, tenant.id), `https://login.microsoftonline.com/${tenant.id}/v2.0`];
    if (payload.iss !== undefined && !issuers.includes(payload.iss)) return fail(MSG_ISSUER);
    const scp = typeof payload.scp === 'string' ? payload.scp : '';
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
    const delegated = payload.idtyp === 'user' || (payload.idtyp !== 'app' && scp !== '');
    if (!delegated && typeof payload.appid === 'string' && this.#ctx.directory.appTokenRevoked(tenant.id, payload.appid, payload.iat ?? 0)) return fail(MSG_REVOKED);
    return {
      tenant,
      payload,
      delegated,
      scopes: new Set(scp.split(' ').filter(Boolean)),
      roles: new Set(roles),
      oid: typeof payload.oid === 'string' ? payload.oid.toLowerCase() : undefined,
    };
  }
}

export function isAuthFailure(result: GraphCaller | GraphAuthFailure): result is GraphAuthFailure {
  return 'status' in result;
}

function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^\s*bearer\s+(\S*)\s*$/i.exec(header);
  return match?.[1] || undefined;
}

function withinLifetime(payload: JWTPayload, now: number): boolean {
  if (typeof payload.exp === 'number' && payload.exp <= now) return false;
  if (typeof payload.nbf === 'number' && payload.nbf > now) return false;
  return true;
}

function fail(message: string): GraphAuthFailure {
  return { status: 401, code: 'InvalidAuthenticationToken', message };
}
