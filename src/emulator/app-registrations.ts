import { createPublicKey, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import type { Clock } from './clock.ts';
import { GRAPH_APP_ID } from './context.ts';
import { GraphError } from './errors.ts';
import { describeCertificate } from './pki.ts';
import {
  GROUP_MEMBERSHIP_CLAIMS,
  type AppRegistration,
  type ClientCertificate,
  type ClientSecret,
  type Directory,
  type GroupMembershipClaims,
  type OptionalClaims,
  type Tenant,
} from './model.ts';

/**
 * App registrations as Microsoft Graph shows and changes them
 * (`/applications`, `/servicePrincipals`): the Graph JSON of a registration,
 * and the checks of what a caller may write into one.
 */

/** Microsoft Graph's application permissions (app roles) by id, as `requiredResourceAccess` names them. */
export const GRAPH_APP_ROLE_IDS: Readonly<Record<string, string>> = {
  'df021288-bdef-4463-88db-98f22de89214': 'User.Read.All',
  '98830695-27a2-44f7-8c18-0c3ebc9698f6': 'GroupMember.Read.All',
  '5b567255-7703-4780-807c-7be8301ae99b': 'Group.Read.All',
  '7ab1d382-f21e-4acd-a863-ba3e13f7da61': 'Directory.Read.All',
  '741f803b-c850-494e-b5df-cde7c675a1ca': 'User.ReadWrite.All',
};
const ROLE_ID_BY_NAME = new Map(Object.entries(GRAPH_APP_ROLE_IDS).map(([id, name]) => [name.toLowerCase(), id]));

/** `addKey`/`removeKey` proofs: a JWT for this audience, issued by the application's object id. */
const PROOF_AUDIENCE = '00000002-0000-0000-c000-000000000000';
const PROOF_MAX_LIFETIME_SECONDS = 600;
const DEFAULT_SECRET_DAYS = 180;
const DAY_MS = 86_400_000;

/** The Graph object id of a registration, given on first use to registrations seeded before Graph managed them. */
export function objectIdOf(app: AppRegistration): string {
  app.objectId ??= randomUUID();
  return app.objectId;
}

/** Registrations homed in `tenant`, the ones its Graph `/applications` lists. */
export function appsOf(directory: Directory, tenant: Tenant): AppRegistration[] {
  return [...directory.apps.values()].filter((a) => a.homeTenantId === tenant.id);
}

export function findAppByObjectId(directory: Directory, tenant: Tenant, id: string): AppRegistration {
  const app = appsOf(directory, tenant).find((a) => objectIdOf(a) === id.toLowerCase());
  if (!app) throw new GraphError(404, 'Request_ResourceNotFound', `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`);
  return app;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function keyCredentialJson(cert: ClientCertificate): Record<string, unknown> {
  return {
    customKeyIdentifier: Buffer.from(cert.x5t, 'base64url').toString('hex').toUpperCase(),
    displayName: cert.displayName ?? null,
    endDateTime: iso(cert.expiresAtMs),
    key: null,
    keyId: cert.id,
    startDateTime: iso(cert.startMs ?? 0),
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
  };
}

export function passwordCredentialJson(secret: ClientSecret, secretText: string | null = null): Record<string, unknown> {
  return {
    customKeyIdentifier: null,
    displayName: secret.displayName ?? null,
    endDateTime: iso(secret.expiresAtMs),
    hint: secret.value.slice(0, 3),
    keyId: secret.id,
    secretText,
    startDateTime: iso(secret.startMs ?? 0),
  };
}

export function applicationJson(app: AppRegistration): Record<string, unknown> {
  const roles = app.requiredAppRoles.map((name) => ({ id: ROLE_ID_BY_NAME.get(name.toLowerCase()) ?? name, type: 'Role' }));
  return {
    id: objectIdOf(app),
    appId: app.appId,
    displayName: app.displayName,
    createdDateTime: app.createdDateTime ?? null,
    signInAudience: app.signInAudience,
    isFallbackPublicClient: app.publicClient ?? false,
    groupMembershipClaims: app.groupMembershipClaims === 'None' ? null : app.groupMembershipClaims,
    optionalClaims: app.optionalClaims ?? null,
    web: { redirectUris: [...app.redirectUris], logoutUrl: null, implicitGrantSettings: { enableAccessTokenIssuance: false, enableIdTokenIssuance: false } },
    requiredResourceAccess: roles.length > 0 ? [{ resourceAppId: GRAPH_APP_ID, resourceAccess: roles }] : [],
    keyCredentials: app.certificates.map(keyCredentialJson),
    passwordCredentials: app.secrets.map((s) => passwordCredentialJson(s)),
  };
}

function badRequest(message: string): GraphError {
  return new GraphError(400, 'Request_BadRequest', message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const WRITABLE = new Set(['displayName', 'signInAudience', 'web', 'requiredResourceAccess', 'groupMembershipClaims', 'optionalClaims', 'keyCredentials', 'isFallbackPublicClient']);

/** Applies a POST or PATCH body to a registration; every property is checked before anything changes. */
export function applyApplicationBody(app: AppRegistration, body: unknown, clock: Clock): void {
  if (!isRecord(body)) throw badRequest('The request body must be a JSON object.');
  for (const key of Object.keys(body)) {
    if (!WRITABLE.has(key)) throw badRequest(`Property '${key}' is read-only or not supported by the emulator.`);
  }
  const next: Partial<AppRegistration> = {};
  if ('displayName' in body) {
    if (typeof body.displayName !== 'string' || body.displayName.trim() === '') throw badRequest("Property 'displayName' must be a non-empty string.");
    next.displayName = body.displayName;
  }
  if ('signInAudience' in body) {
    if (body.signInAudience !== 'AzureADMyOrg' && body.signInAudience !== 'AzureADMultipleOrgs') {
      throw badRequest(`Invalid value specified for property 'signInAudience' of resource 'Application': ${JSON.stringify(body.signInAudience)}.`);
    }
    next.signInAudience = body.signInAudience;
  }
  if ('web' in body) {
    next.redirectUris = redirectUrisOf(body.web);
    // Entra accepts a sign-out return to the origin of a redirect URI.
    next.postLogoutRedirectUris = [...new Set(next.redirectUris.map((u) => `${new URL(u).origin}/`))];
  }
  if ('requiredResourceAccess' in body) next.requiredAppRoles = appRolesOf(body.requiredResourceAccess);
  if ('groupMembershipClaims' in body) {
    const value = body.groupMembershipClaims ?? 'None';
    if (typeof value !== 'string' || !(GROUP_MEMBERSHIP_CLAIMS as readonly string[]).includes(value)) {
      throw badRequest(`Invalid value specified for property 'groupMembershipClaims': ${JSON.stringify(value)}. Use one of ${GROUP_MEMBERSHIP_CLAIMS.join(', ')}.`);
    }
    next.groupMembershipClaims = value as GroupMembershipClaims;
  }
  if ('optionalClaims' in body) next.optionalClaims = optionalClaimsOf(body.optionalClaims);
  if ('isFallbackPublicClient' in body) {
    if (typeof body.isFallbackPublicClient !== 'boolean') throw badRequest("Property 'isFallbackPublicClient' must be a boolean.");
    next.publicClient = body.isFallbackPublicClient;
  }
  if ('keyCredentials' in body) next.certificates = keyCredentialsOf(app, body.keyCredentials, clock);
  Object.assign(app, next);
}

function redirectUrisOf(web: unknown): string[] {
  if (!isRecord(web)) throw badRequest("Property 'web' must be an object.");
  const uris = web.redirectUris ?? [];
  if (!Array.isArray(uris) || !uris.every((u) => typeof u === 'string')) throw badRequest("Property 'web.redirectUris' must be an array of strings.");
  for (const uri of uris as string[]) {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw badRequest(`Invalid value specified for property 'redirectUris': '${uri}' is not an absolute URI.`);
    }
    const loopback = url.hostname === 'localhost' || url.hostname === '127.0.0.1';
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
      throw badRequest(`Invalid value specified for property 'redirectUris': '${uri}' must use https (http is accepted for localhost only).`);
    }
  }
  return [...new Set(uris as string[])];
}

function appRolesOf(value: unknown): string[] {
  if (!Array.isArray(value)) throw badRequest("Property 'requiredResourceAccess' must be an array.");
  const roles: string[] = [];
  for (const resource of value) {
    if (!isRecord(resource) || typeof resource.resourceAppId !== 'string' || !Array.isArray(resource.resourceAccess)) {
      throw badRequest("Each 'requiredResourceAccess' entry needs 'resourceAppId' and a 'resourceAccess' array.");
    }
    for (const access of resource.resourceAccess) {
      if (!isRecord(access) || typeof access.id !== 'string' || (access.type !== 'Role' && access.type !== 'Scope')) {
        throw badRequest("Each 'resourceAccess' entry needs an 'id' and a 'type' of Role or Scope.");
      }
      // Only Graph's application permissions reach tokens; delegated scopes are asked for at sign-in.
      if (resource.resourceAppId !== GRAPH_APP_ID || access.type !== 'Role') continue;
      roles.push(GRAPH_APP_ROLE_IDS[access.id.toLowerCase()] ?? access.id);
    }
  }
  return [...new Set(roles)];
}

function optionalClaimsOf(value: unknown): OptionalClaims | null {
  if (value === null) return null;
  if (!isRecord(value)) throw badRequest("Property 'optionalClaims' must be an object.");
  const result: OptionalClaims = { idToken: [], accessToken: [], saml2Token: [] };
  for (const kind of ['idToken', 'accessToken', 'saml2Token'] as const) {
    const list = value[kind] ?? [];
    if (!Array.isArray(list) || !list.every((c) => isRecord(c) && typeof c.name === 'string' && c.name !== '')) {
      throw badRequest(`Property 'optionalClaims.${kind}' must be an array of claims, each with a 'name'.`);
    }
    result[kind] = (list as Record<string, unknown>[]).map((c) => ({
      name: c.name as string,
      source: typeof c.source === 'string' ? c.source : null,
      essential: c.essential === true,
      additionalProperties: Array.isArray(c.additionalProperties) ? c.additionalProperties.filter((p): p is string => typeof p === 'string') : [],
    }));
  }
  return result;
}

/** A certificate from a Graph `keyCredential` (`key` is the base64 DER or PEM of the certificate). */
export function certificateFromKeyCredential(value: unknown, clock: Clock): ClientCertificate {
  if (!isRecord(value)) throw badRequest('A key credential must be an object.');
  if (value.type !== undefined && value.type !== 'AsymmetricX509Cert') throw badRequest("Key credential 'type' must be AsymmetricX509Cert.");
  if (value.usage !== undefined && value.usage !== 'Verify') throw badRequest("Key credential 'usage' must be Verify.");
  if (typeof value.key !== 'string' || value.key === '') throw badRequest("Key credential 'key' is required: the certificate, base64 encoded.");
  let pem: string;
  try {
    const der = Buffer.from(value.key.includes('BEGIN CERTIFICATE') ? value.key.replace(/-----[^-]+-----|\s+/g, '') : value.key, 'base64');
    pem = new X509Certificate(der).toString();
  } catch {
    throw badRequest("Key credential 'key' is not a valid X.509 certificate.");
  }
  const info = describeCertificate(pem);
  const cert = new X509Certificate(pem);
  return {
    id: typeof value.keyId === 'string' && value.keyId ? value.keyId.toLowerCase() : randomUUID(),
    x5t: info.x5t,
    x5tS256: info.x5tS256,
    publicKeyPem: info.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    expiresAtMs: info.notAfter.getTime(),
    startMs: Math.max(new Date(cert.validFrom).getTime(), 0) || clock.nowMs(),
    ...(typeof value.displayName === 'string' ? { displayName: value.displayName } : {}),
  };
}

/** PATCH replaces the whole collection; Graph wants every kept certificate sent again with its `key`. */
function keyCredentialsOf(app: AppRegistration, value: unknown, clock: Clock): ClientCertificate[] {
  if (!Array.isArray(value)) throw badRequest("Property 'keyCredentials' must be an array.");
  const certs = value.map((entry) => certificateFromKeyCredential(entry, clock));
  const seen = new Set<string>();
  for (const cert of certs) {
    if (seen.has(cert.x5tS256)) throw badRequest('The same certificate appears twice in keyCredentials.');
    seen.add(cert.x5tS256);
    // A certificate already on the registration keeps its key id.
    const existing = app.certificates.find((c) => c.x5tS256 === cert.x5tS256);
    if (existing) cert.id = existing.id;
  }
  return certs;
}

/** `addPassword`: a new secret, whose text Graph shows only in this answer. */
export function addPassword(app: AppRegistration, body: unknown, clock: Clock): ClientSecret {
  const credential = isRecord(body) && isRecord(body.passwordCredential) ? body.passwordCredential : {};
  const now = clock.nowMs();
  let expiresAtMs = now + DEFAULT_SECRET_DAYS * DAY_MS;
  if (credential.endDateTime !== undefined) {
    const end = typeof credential.endDateTime === 'string' ? Date.parse(credential.endDateTime) : NaN;
    if (Number.isNaN(end) || end <= now) throw badRequest("passwordCredential 'endDateTime' must be a future date and time.");
    expiresAtMs = end;
  }
  const secret: ClientSecret = {
    id: randomUUID(),
    // Entra's secrets are 40 characters with a recognisable 3-character hint.
    value: `${randomBytes(3).toString('base64url').slice(0, 3)}8Q~${randomBytes(30).toString('base64url').slice(0, 34)}`,
    expiresAtMs,
    startMs: now,
    ...(typeof credential.displayName === 'string' ? { displayName: credential.displayName } : {}),
  };
  app.secrets.push(secret);
  return secret;
}

export function removePassword(app: AppRegistration, body: unknown): void {
  const keyId = isRecord(body) && typeof body.keyId === 'string' ? body.keyId.toLowerCase() : undefined;
  if (!keyId) throw badRequest("The request body must contain 'keyId'.");
  const index = app.secrets.findIndex((s) => s.id === keyId);
  if (index < 0) throw new GraphError(404, 'Request_ResourceNotFound', `No password credential found with keyId ${keyId}.`);
  app.secrets.splice(index, 1);
}

/**
 * `addKey` and `removeKey` need a proof of possession: a short JWT signed with
 * one of the registration's current, unexpired certificates.
 */
export async function verifyProof(app: AppRegistration, proof: unknown, clock: Clock): Promise<void> {
  const refuse = (why: string) => new GraphError(400, 'Request_BadRequest', `Key credential proof is invalid: ${why}`);
  if (typeof proof !== 'string' || proof === '') throw refuse("the request body must contain 'proof'.");
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    throw refuse('it is not a JWT.');
  }
  const cert = app.certificates.find((c) => c.x5t === header.x5t || c.x5tS256 === header['x5t#S256']);
  if (!cert) throw refuse('it is not signed by a certificate of this application.');
  if (cert.expiresAtMs <= clock.nowMs()) throw refuse('the certificate that signed it has expired; replace the certificates with PATCH instead.');
  try {
    const { payload } = await jwtVerify(proof, createPublicKey(cert.publicKeyPem), { audience: PROOF_AUDIENCE, issuer: objectIdOf(app), algorithms: ['RS256', 'PS256'], requiredClaims: ['exp', 'nbf'], clockTolerance: 300 });
    if (payload.exp! - payload.nbf! > PROOF_MAX_LIFETIME_SECONDS) throw refuse('its lifetime is longer than 10 minutes.');
  } catch (err) {
    if (err instanceof GraphError) throw err;
    throw refuse((err as Error).message);
  }
}

export async function addKey(app: AppRegistration, body: unknown, clock: Clock): Promise<ClientCertificate> {
  if (!isRecord(body)) throw badRequest('The request body must be a JSON object.');
  await verifyProof(app, body.proof, clock);
  const cert = certificateFromKeyCredential(body.keyCredential, clock);
  if (app.certificates.some((c) => c.x5tS256 === cert.x5tS256)) throw badRequest('This certificate is already a key credential of the application.');
  if (isRecord(body.passwordCredential)) throw badRequest('addKey with a password credential is not supported by the emulator; use addPassword.');
  app.certificates.push(cert);
  return cert;
}

export async function removeKey(app: AppRegistration, body: unknown, clock: Clock): Promise<void> {
  if (!isRecord(body)) throw badRequest('The request body must be a JSON object.');
  const keyId = typeof body.keyId === 'string' ? body.keyId.toLowerCase() : undefined;
  if (!keyId) throw badRequest("The request body must contain 'keyId'.");
  await verifyProof(app, body.proof, clock);
  const index = app.certificates.findIndex((c) => c.id === keyId);
  if (index < 0) throw new GraphError(404, 'Request_ResourceNotFound', `No key credential found with keyId ${keyId}.`);
  app.certificates.splice(index, 1);
}

/** A registration with Entra's defaults for whatever `fields` leaves out. */
export function newRegistration(fields: Pick<AppRegistration, 'appId' | 'displayName'> & Partial<AppRegistration>): AppRegistration {
  return {
    homeTenantId: null,
    signInAudience: 'AzureADMyOrg',
    redirectUris: [],
    postLogoutRedirectUris: [],
    secrets: [],
    certificates: [],
    requiredAppRoles: [],
    disabled: false,
    groupMembershipClaims: 'None',
    ...fields,
  };
}

/** A new registration homed in `tenant`, from a POST body. */
export function createApplication(directory: Directory, tenant: Tenant, body: unknown): AppRegistration {
  const app = newRegistration({ appId: randomUUID(), objectId: randomUUID(), displayName: '', homeTenantId: tenant.id, createdDateTime: directory.clock.nowIso() });
  applyApplicationBody(app, body, directory.clock);
  if (!app.displayName) throw badRequest("Property 'displayName' is required.");
  return directory.addApp(app);
}
