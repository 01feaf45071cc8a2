import { createPublicKey } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { EmulatorContext } from './context.ts';
import { IdentityError } from './errors.ts';
import type { AppRegistration } from './model.ts';

export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Client clocks drift; Entra allows a few minutes either way on client assertions. */
const ASSERTION_SKEW_SECONDS = 300;

export interface ClientCredentials {
  clientId: string | undefined;
  secret: string | undefined;
  assertionType: string | undefined;
  assertion: string | undefined;
}

/** Reads client_id and the credential from the form body or an HTTP Basic header. */
export function readClientCredentials(body: Record<string, string | undefined>, authorization: string | undefined): ClientCredentials {
  let clientId = body.client_id;
  let secret = body.client_secret;
  if (authorization?.toLowerCase().startsWith('basic ')) {
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      // RFC 6749 2.3.1: both halves are form-urlencoded before joining.
      const id = decodeFormComponent(decoded.slice(0, colon));
      clientId ??= id;
      if (id === clientId) secret ??= decodeFormComponent(decoded.slice(colon + 1));
    }
  }
  return { clientId, secret, assertionType: body.client_assertion_type, assertion: body.client_assertion };
}

function decodeFormComponent(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}

/**
 * Authenticates a confidential client: its secret, or a JWT signed with one of
 * its certificates. Returns `appidacr` ("1" secret, "2" certificate).
 * `audiences` are the token endpoint URLs an assertion may name.
 */
export async function authenticateClient(ctx: EmulatorContext, app: AppRegistration, creds: ClientCredentials, audiences: string[]): Promise<'1' | '2'> {
  if (creds.assertion !== undefined || creds.assertionType !== undefined) {
    if (creds.assertionType !== JWT_BEARER_ASSERTION) {
      throw new IdentityError('invalid_request', 900144, "The request body must contain the following parameter: 'client_assertion_type'.", { status: 400 });
    }
    await verifyAssertion(ctx, app, creds.assertion ?? '', audiences);
    return '2';
  }
  if (creds.secret === undefined || creds.secret === '') {
    throw new IdentityError('invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
  }
  const secret = app.secrets.find((s) => s.value === creds.secret);
  if (!secret) {
    throw new IdentityError(
      'invalid_client',
      7000215,
      `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${app.appId}'.`,
    );
  }
  if (secret.expiresAtMs <= ctx.clock.nowMs()) {
    throw new IdentityError(
      'invalid_client',
      7000222,
      `The provided client secret keys for app '${app.appId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.`,
    );
  }
  return '1';
}

async function verifyAssertion(ctx: EmulatorContext, app: AppRegistration, assertion: string, audiences: string[]): Promise<void> {
  const invalid = (reason: string) => new IdentityError('invalid_client', 700027, `Client assertion failed signature validation. [Reason - ${reason}]`);
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(assertion);
  } catch {
    throw new IdentityError('invalid_client', 50027, 'JWT token is invalid or malformed.');
  }
  const s256 = typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : undefined;
  const x5t = typeof header.x5t === 'string' ? header.x5t : undefined;
  const cert = s256 ? app.certificates.find((c) => c.x5tS256 === s256) : x5t ? app.certificates.find((c) => c.x5t === x5t) : undefined;
  if (!cert) {
    throw invalid(`The key was not found., Thumbprint of key used by client: '${s256 ?? x5t ?? ''}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${app.appId}'.`);
  }
  if (cert.expiresAtMs <= ctx.clock.nowMs()) throw invalid('The key used is expired.');
  // PS256 goes with the SHA-256 thumbprint, RS256 with either (older clients).
  const algorithms = s256 ? ['PS256', 'RS256'] : ['RS256'];
  try {
    // The assertion is minted with the client's real clock, so real time judges it (ctx.clock may be moved by tests).
    await jwtVerify(assertion, createPublicKey(cert.publicKeyPem), {
      algorithms,
      issuer: app.appId,
      subject: app.appId,
      audience: audiences,
      clockTolerance: ASSERTION_SKEW_SECONDS,
      requiredClaims: ['exp', 'jti'],
    });
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) {
      throw new IdentityError('invalid_client', 700024, 'Client assertion is not within its valid time range.');
    }
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      if (err.claim === 'aud') {
        throw new IdentityError('invalid_client', 700023, `Client assertion audience claim does not match Realm issuer. Expected one of: ${audiences.join(', ')}.`);
      }
      if (err.claim === 'iss' || err.claim === 'sub') {
        throw new IdentityError('invalid_client', 700021, "Client assertion application identifier doesn't match 'client_id' parameter.");
      }
      throw new IdentityError('invalid_client', 50027, `Client assertion is missing or has an invalid '${err.claim}' claim.`);
    }
    throw invalid('The key was found but the signature did not verify.');
  }
}
