import { KeyObject, verify } from 'node:crypto';
import { createRemoteJWKSet, customFetch, errors, type CryptoKey, type JWK, type JWSHeaderParameters, type JWTPayload } from 'jose';
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
  readonly #verifiers = new WeakMap<CryptoKey, KeyVerifier>();
  readonly #verifiersByKid = new Map<string, KeyVerifier>();
  #lookupsInFlight = 0;
  #lookupsStarted = 0;

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
    const jws = parseCompactJws(idToken);
    const { header } = jws;
    if (header.alg !== 'RS256') throw new IdTokenRejectedError(`alg ${JSON.stringify(header.alg)} is not allowed (RS256 only)`);
    // Extensions (crit, and b64 which only takes effect through crit) are never used by Entra; refusing them keeps RS256 over the encoded payload the only meaning.
    if (Object.hasOwn(header, 'crit') || Object.hasOwn(header, 'b64')) throw new IdTokenRejectedError('the header carries JWS extensions (crit/b64)');
    if (typeof header.kid !== 'string' || header.kid === '') throw new IdTokenRejectedError('the header names no key (kid)');

    const { verifier, keyIssuer } = (this.#keys.fresh ? this.#verifiersByKid.get(header.kid) : undefined) ?? (await this.#lookUpVerifier(header, header.kid));
    // node:crypto verifies on this thread; WebCrypto would queue each check on the thread pool and cost several times the RSA work.
    if (!verify('sha256', jws.signingInput, verifier, jws.signature)) throw new IdTokenRejectedError('signature verification failed');

    const payload = parseJsonObject(jws.payload, 'payload') as JWTPayload;
    checkRegisteredClaims(payload, this.#clientId, Math.floor(this.#now() / 1000));

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
  async #keyFor(header: JWSHeaderParameters): Promise<CryptoKey> {
    try {
      return await this.#keys(header);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || this.#now() - this.#lastForcedReloadAt < UNKNOWN_KEY_REFETCH_MS) throw err;
      this.#lastForcedReloadAt = this.#now();
      await this.#keys.reload();
      return await this.#keys(header);
    }
  }

  /**
   * Asks the key set for the token's key. The set changes only inside such a
   * lookup (a refetch happens in one), so the answer is remembered by kid only
   * when this lookup ran alone from start to end: then no refetch it did not
   * see can have dropped the key. Any lookup forgets what was remembered, and
   * the set's routine refresh goes through a lookup too (`fresh` turns false).
   */
  async #lookUpVerifier(header: Readonly<Record<string, unknown>>, kid: string): Promise<KeyVerifier> {
    this.#verifiersByKid.clear();
    const alone = this.#lookupsInFlight === 0;
    const started = ++this.#lookupsStarted;
    this.#lookupsInFlight++;
    try {
      const entry = this.#verifierFor(await this.#keyFor(header as JWSHeaderParameters), kid);
      if (alone && started === this.#lookupsStarted) this.#verifiersByKid.set(kid, entry);
      return entry;
    } catch (err) {
      if (err instanceof errors.JOSEError) throw new IdTokenRejectedError(`${err.code}: ${err.message}`);
      throw err;
    } finally {
      this.#lookupsInFlight--;
    }
  }

  /**
   * The key set hands out one CryptoKey per published key until it is
   * refetched, so the KeyObject and the key's own `issuer` are worked out once
   * per key rather than once per token.
   */
  #verifierFor(key: CryptoKey, kid: string): KeyVerifier {
    const known = this.#verifiers.get(key);
    if (known) return known;
    const verifier = KeyObject.from(key);
    const { modulusLength } = verifier.asymmetricKeyDetails ?? {};
    if (verifier.type !== 'public' || verifier.asymmetricKeyType !== 'rsa' || modulusLength === undefined || modulusLength < 2048) {
      throw new IdTokenRejectedError(`key ${kid} is not an RSA public key of at least 2048 bits`);
    }
    const modulus = modulusHex(verifier.export({ format: 'jwk' }).n);
    // Matched on the key material too, so a kid published twice cannot lend another entry's issuer.
    const published = this.#keys.jwks()?.keys.find((jwk) => jwk.kid === kid && modulusHex(jwk.n) === modulus) as (JWK & { issuer?: unknown }) | undefined;
    // The set was refetched between the lookup and here; the next token will see the new set.
    if (!published) throw new IdTokenRejectedError(`key ${kid} is no longer published`);
    const entry: KeyVerifier = { verifier, keyIssuer: typeof published.issuer === 'string' ? published.issuer : undefined };
    this.#verifiers.set(key, entry);
    return entry;
  }
}

/** An RSA modulus as hex without leading zero octets, however its JWK `n` was padded. */
function modulusHex(n: unknown): string | undefined {
  return typeof n === 'string' ? Buffer.from(n, 'base64url').toString('hex').replace(/^(00)+/, '') : undefined;
}

interface KeyVerifier {
  verifier: KeyObject;
  /** The key's JWKS `issuer` (a `{tenantid}` template for shared keys); undefined when the key set does not say. */
  keyIssuer: string | undefined;
}

interface CompactJws {
  header: Readonly<Record<string, unknown>>;
  payload: Buffer;
  signingInput: Buffer;
  signature: Buffer;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Strict base64url: no padding, whitespace or foreign characters (Buffer would skip them silently). */
function decodeBase64url(part: string, label: string): Buffer {
  if (!BASE64URL.test(part) || part.length % 4 === 1) throw new IdTokenRejectedError(`the ${label} is not base64url`);
  return Buffer.from(part, 'base64url');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A JSON object (not an array or a scalar) from UTF-8; duplicate members resolve to the last, as JSON.parse and jose do. */
function parseJsonObject(bytes: Buffer, label: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch {
    throw new IdTokenRejectedError(`the ${label} is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new IdTokenRejectedError(`the ${label} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

/** Every token signed with one key has the same header text, so the last one parsed is kept (frozen, as it is shared). */
let lastHeader: { encoded: string; header: Readonly<Record<string, unknown>> } = { encoded: '', header: {} };

function parseHeader(encoded: string): Readonly<Record<string, unknown>> {
  const header = Object.freeze(parseJsonObject(decodeBase64url(encoded, 'header'), 'header'));
  lastHeader = { encoded, header };
  return header;
}

/**
 * JWS compact serialization: exactly three base64url parts. The signature
 * covers the first two exactly as received, so they are checked to be plain
 * ASCII before they become the signing input's bytes.
 */
function parseCompactJws(token: string): CompactJws {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) throw new IdTokenRejectedError('not a compact JWS (three dot-separated parts)');
  const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string];
  const header = encodedHeader === lastHeader.encoded ? lastHeader.header : parseHeader(encodedHeader);
  const payload = decodeBase64url(encodedPayload, 'payload');
  return {
    header,
    payload,
    signingInput: Buffer.from(`${encodedHeader}.${encodedPayload}`, 'latin1'),
    signature: decodeBase64url(encodedSignature, 'signature'),
  };
}

const REQUIRED_CLAIMS = ['iss', 'aud', 'exp', 'iat', 'sub', 'tid'] as const;

/** The registered-claim rules `jwtVerify` applied: presence, audience, and times within the clock tolerance. */
function checkRegisteredClaims(payload: JWTPayload, clientId: string, nowSeconds: number): void {
  for (const claim of REQUIRED_CLAIMS) {
    if (!Object.hasOwn(payload, claim)) throw new IdTokenRejectedError(`missing required "${claim}" claim`);
  }
  const { aud } = payload;
  if (!(aud === clientId || (Array.isArray(aud) && aud.includes(clientId)))) throw new IdTokenRejectedError('unexpected "aud" claim value');
  for (const claim of ['iat', 'nbf', 'exp'] as const) {
    const value = payload[claim];
    if (value !== undefined && !Number.isFinite(value)) throw new IdTokenRejectedError(`"${claim}" claim must be a number`);
  }
  if (payload.nbf !== undefined && payload.nbf > nowSeconds + CLOCK_TOLERANCE_SECONDS) throw new IdTokenRejectedError('"nbf" claim timestamp check failed');
  if (payload.exp! <= nowSeconds - CLOCK_TOLERANCE_SECONDS) throw new IdTokenRejectedError('"exp" claim timestamp check failed (expired)');
}
