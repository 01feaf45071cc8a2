import { createRemoteJWKSet, customFetch, errors, jwtVerify, type JWK, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { IdentityError } from './errors.ts';
import type { OutboundHttp } from './http.ts';
import type { AuthorityMetadata } from './metadata.ts';

/** Personal Microsoft accounts all carry this tenant id; a business app refuses them. */
export const PERSONAL_ACCOUNT_TENANT_ID = '9188040d-6c67-4c5b-b112-36a304b66dad';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Allowed clock skew between Roster and the identity provider. */
const CLOCK_TOLERANCE_SECONDS = 120;

/** After a token names an unknown key, the key set is refetched at most this often. */
const UNKNOWN_KEY_REFETCH_MS = 5 * 60_000;
/** Keys are refreshed in the background at this age even when nothing is unknown. */
const KEY_SET_MAX_AGE_MS = 6 * 60 * 60_000;

export interface ValidatedIdentity {
  tenantId: string;
  objectId: string;
  name: string | null;
  preferredUsername: string | null;
  email: string | null;
  /** Opaque hint for the logout endpoint. */
  loginHint: string | null;
  /** Directory role template ids (`wids`) of this sign-in; empty when the claim is not emitted. */
  directoryRoles: string[];
  claims: JWTPayload;
}

/** An ID token Roster must not trust; `reason` is for logs, never for the page. */
export class IdTokenRejectedError extends IdentityError {
  readonly reason: string;
  constructor(reason: string) {
    super(`ID token rejected: ${reason}`, { status: 400, code: 'id_token_rejected' });
    this.reason = reason;
  }
}

/**
 * Validates Entra v2 ID tokens for a multi-tenant app, in the order Microsoft
 * documents: signature (RS256 only) by a published key, `tid` a GUID, `iss`
 * equal to the template with that `tid`, the key's own `issuer` matching the
 * same way, audience, times, nonce. Whether the tenant may sign in is the
 * caller's next question, answered from Roster's registry.
 */
export class IdTokenValidator {
  readonly #keys: ReturnType<typeof createRemoteJWKSet>;
  readonly #metadata: AuthorityMetadata;
  readonly #clientId: string;
  readonly #now: () => number;
  #lastForcedReloadAt = Number.NEGATIVE_INFINITY;

  constructor(http: OutboundHttp, metadata: AuthorityMetadata, clientId: string, now: () => number = Date.now) {
    this.#metadata = metadata;
    this.#clientId = clientId;
    this.#now = now;
    this.#keys = createRemoteJWKSet(new URL(metadata.jwksUri), {
      cooldownDuration: UNKNOWN_KEY_REFETCH_MS,
      cacheMaxAge: KEY_SET_MAX_AGE_MS,
      [customFetch]: (url, init) => http.fetch(url, init as never) as unknown as Promise<Response>,
    });
  }

  async validate(idToken: string, expectedNonce: string): Promise<ValidatedIdentity> {
    let keyIssuer: string | undefined;
    const resolveKey: JWTVerifyGetKey = async (header, token) => {
      const key = await this.#keyFor(header, token);
      keyIssuer = (this.#keys.jwks()?.keys.find((k) => k.kid === header.kid) as (JWK & { issuer?: string }) | undefined)?.issuer;
      return key;
    };

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, resolveKey, {
        algorithms: ['RS256'],
        audience: this.#clientId,
        requiredClaims: ['iss', 'aud', 'exp', 'iat', 'sub', 'tid'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        currentDate: new Date(this.#now()),
      }));
    } catch (err) {
      if (err instanceof errors.JOSEError) throw new IdTokenRejectedError(`${err.code}: ${err.message}`);
      throw err;
    }

    const tid = payload.tid;
    if (typeof tid !== 'string' || !GUID.test(tid)) throw new IdTokenRejectedError('tid is not a GUID');
    const expectedIssuer = this.#metadata.issuerTemplate.replace('{tenantid}', tid);
    if (payload.iss !== expectedIssuer) throw new IdTokenRejectedError(`iss ${String(payload.iss)} is not the issuer of tenant ${tid}`);
    if (keyIssuer !== undefined && keyIssuer.replace('{tenantid}', tid) !== expectedIssuer) {
      throw new IdTokenRejectedError(`the signing key is for issuer ${keyIssuer}, not ${expectedIssuer}`);
    }
    if (payload.nonce !== expectedNonce) throw new IdTokenRejectedError('nonce does not match this sign-in');
    if (typeof payload.oid !== 'string' || payload.oid === '') throw new IdTokenRejectedError('oid is missing (the profile scope was not granted)');
    const wids = payload.wids;
    if (wids !== undefined && !(Array.isArray(wids) && wids.every((id) => typeof id === 'string' && GUID.test(id)))) {
      throw new IdTokenRejectedError('wids is not a list of role template ids');
    }

    const text = (claim: unknown): string | null => (typeof claim === 'string' && claim !== '' ? claim : null);
    return {
      tenantId: tid.toLowerCase(),
      objectId: payload.oid,
      name: text(payload.name),
      preferredUsername: text(payload.preferred_username),
      email: text(payload.email),
      loginHint: text(payload.login_hint),
      directoryRoles: ((wids as string[] | undefined) ?? []).map((id) => id.toLowerCase()),
      claims: payload,
    };
  }

  /**
   * jose refetches for an unknown `kid` only outside its cooldown after any
   * fetch, so a key published just after a routine refresh would be refused
   * for minutes. One extra refetch per interval covers an emergency rollover
   * without letting forged `kid`s hammer the identity provider.
   */
  async #keyFor(...args: Parameters<JWTVerifyGetKey>) {
    try {
      return await this.#keys(...args);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || this.#now() - this.#lastForcedReloadAt < UNKNOWN_KEY_REFETCH_MS) throw err;
      this.#lastForcedReloadAt = this.#now();
      await this.#keys.reload();
      return await this.#keys(...args);
    }
  }
}
