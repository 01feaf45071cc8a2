import { z } from 'zod';
import { GraphError, graphErrorBody } from './graph-errors.ts';
import type { OutboundHttp } from './http.ts';

/**
 * What Roster needs of its app registration, and the Microsoft Graph calls
 * that read and change it (`/applications`, `/servicePrincipals`). Shared by
 * `roster setup` (which makes the registration so) and `roster doctor`
 * (which says what differs).
 */

export const GRAPH_RESOURCE_APP_ID = '00000003-0000-0000-c000-000000000000';

/** Microsoft Graph application permissions Roster's daemon uses: users now, group memberships once groups sync. */
export const REQUIRED_APP_ROLES = [
  { name: 'User.Read.All', id: 'df021288-bdef-4463-88db-98f22de89214' },
  { name: 'GroupMember.Read.All', id: '98830695-27a2-44f7-8c18-0c3ebc9698f6' },
] as const;

/** `groupMembershipClaims` values under which ID tokens carry `wids`, which sign-up reads to know an administrator. */
export const WIDS_EMITTING_CLAIMS = ['DirectoryRole', 'SecurityGroup', 'All'];
export const REQUIRED_GROUP_MEMBERSHIP_CLAIMS = 'DirectoryRole';
/** Optional ID token claims Roster reads: `login_hint` lets sign-out skip Entra's account picker. */
export const REQUIRED_ID_TOKEN_CLAIMS = ['login_hint'];
export const REQUIRED_SIGN_IN_AUDIENCE = 'AzureADMultipleOrgs';
/** Roster's own paths that Entra sends people back to: sign-in, admin consent, and the home page after sign-out. */
export const CALLBACK_PATHS = ['/auth/callback', '/signup/callback', '/'];
export const EXPIRY_WARNING_DAYS = 30;

export function requiredRedirectUris(publicUrl: URL): string[] {
  return CALLBACK_PATHS.map((path) => new URL(path, publicUrl).href);
}

const credentialSchema = z.object({ keyId: z.string(), displayName: z.string().nullish(), endDateTime: z.string().nullish() });
export const applicationSchema = z.object({
  id: z.string(),
  appId: z.string(),
  displayName: z.string().nullish(),
  signInAudience: z.string().nullish(),
  groupMembershipClaims: z.string().nullish(),
  optionalClaims: z
    .object({ idToken: z.array(z.object({ name: z.string() }).passthrough()).nullish() })
    .passthrough()
    .nullish(),
  web: z.object({ redirectUris: z.array(z.string()).nullish() }).passthrough().nullish(),
  requiredResourceAccess: z
    .array(z.object({ resourceAppId: z.string(), resourceAccess: z.array(z.object({ id: z.string(), type: z.string() })) }))
    .nullish(),
  keyCredentials: z.array(credentialSchema.extend({ customKeyIdentifier: z.string().nullish(), type: z.string().nullish() })).nullish(),
  passwordCredentials: z.array(credentialSchema.extend({ hint: z.string().nullish() })).nullish(),
});
export type GraphApplication = z.infer<typeof applicationSchema>;

export function redirectUrisOf(app: GraphApplication): string[] {
  return app.web?.redirectUris ?? [];
}

export function grantedRoleIds(app: GraphApplication): Set<string> {
  const ids = new Set<string>();
  for (const resource of app.requiredResourceAccess ?? []) {
    if (resource.resourceAppId !== GRAPH_RESOURCE_APP_ID) continue;
    for (const access of resource.resourceAccess) if (access.type === 'Role') ids.add(access.id.toLowerCase());
  }
  return ids;
}

export function idTokenClaimNames(app: GraphApplication): Set<string> {
  return new Set((app.optionalClaims?.idToken ?? []).map((c) => c.name));
}

/** One thing about the registration that Roster needs otherwise, with the exact fix. */
export interface RegistrationProblem {
  item: string;
  problem: string;
  fix: string;
}

/**
 * Compares a registration with what Roster needs. `certificateSha1` is the
 * thumbprint of the certificate Roster is configured with, when it uses one.
 */
export function checkRegistration(app: GraphApplication, expected: { publicUrl: URL; certificateSha1?: string | null; nowMs: number }): RegistrationProblem[] {
  const problems: RegistrationProblem[] = [];
  const rerun = 'or run roster setup, which sets it';
  if (app.signInAudience !== REQUIRED_SIGN_IN_AUDIENCE) {
    problems.push({
      item: 'sign-in audience',
      problem: `is ${app.signInAudience ?? 'unset'}: organisations other than yours cannot sign up`,
      fix: `Authentication -> Supported account types: "Accounts in any organizational directory" (signInAudience ${REQUIRED_SIGN_IN_AUDIENCE}), ${rerun}`,
    });
  }
  for (const uri of requiredRedirectUris(expected.publicUrl)) {
    if (!redirectUrisOf(app).includes(uri)) {
      problems.push({ item: 'redirect URIs', problem: `${uri} is missing: sign-in would fail with AADSTS50011`, fix: `Authentication -> Web -> add redirect URI ${uri}, ${rerun}` });
    }
  }
  const granted = grantedRoleIds(app);
  for (const role of REQUIRED_APP_ROLES) {
    if (!granted.has(role.id)) {
      problems.push({
        item: 'permissions',
        problem: `Microsoft Graph application permission ${role.name} is not requested`,
        fix: `API permissions -> Add a permission -> Microsoft Graph -> Application permissions -> ${role.name} (${role.id}), then grant admin consent; ${rerun}`,
      });
    }
  }
  if (!WIDS_EMITTING_CLAIMS.includes(app.groupMembershipClaims ?? 'None')) {
    problems.push({
      item: 'claims',
      problem: `groupMembershipClaims is ${app.groupMembershipClaims ?? 'None'}: ID tokens carry no wids, so no administrator can sign an organisation up`,
      fix: `Token configuration -> Add groups claim -> Directory roles (groupMembershipClaims ${REQUIRED_GROUP_MEMBERSHIP_CLAIMS}), ${rerun}`,
    });
  }
  const claims = idTokenClaimNames(app);
  for (const name of REQUIRED_ID_TOKEN_CLAIMS) {
    if (!claims.has(name)) {
      problems.push({ item: 'claims', problem: `optional ID token claim ${name} is missing`, fix: `Token configuration -> Add optional claim -> ID -> ${name}, ${rerun}` });
    }
  }
  const soon = expected.nowMs + EXPIRY_WARNING_DAYS * 86_400_000;
  for (const cred of [...(app.keyCredentials ?? []).map((c) => ({ ...c, kind: 'certificate' })), ...(app.passwordCredentials ?? []).map((c) => ({ ...c, kind: 'secret' }))]) {
    const end = cred.endDateTime ? Date.parse(cred.endDateTime) : NaN;
    if (Number.isNaN(end) || end > soon) continue;
    problems.push({
      item: 'credentials',
      problem: `${cred.kind} ${cred.keyId}${cred.displayName ? ` (${cred.displayName})` : ''} ${end <= expected.nowMs ? 'has expired' : `expires on ${new Date(end).toISOString().slice(0, 10)}`}`,
      fix: 'run roster setup --rotate-credential, restart Roster, then roster setup --drop-old',
    });
  }
  if (expected.certificateSha1 && !(app.keyCredentials ?? []).some((c) => c.customKeyIdentifier?.toLowerCase() === expected.certificateSha1!.toLowerCase())) {
    problems.push({
      item: 'credentials',
      problem: `the certificate in ENTRA_CLIENT_CERTIFICATE (SHA-1 ${expected.certificateSha1.toUpperCase()}) is not on the registration`,
      fix: 'Certificates & secrets -> Upload certificate (the certificate part of that PEM file), or run roster setup --rotate-credential',
    });
  }
  return problems;
}

/** Graph refused or failed an app registration call; its refusals are the administrator's to read. */
export class GraphAdminError extends GraphError {
  constructor(status: number, code: string, message: string) {
    super(status, code, message, { status: status >= 500 ? 502 : status, code: `graph_${code}`, expose: true });
  }
}

/** The Graph calls that manage an app registration, with a delegated token of the vendor's administrator. */
export class RegistrationClient {
  readonly #http: OutboundHttp;
  readonly #graph: string;
  readonly #token: string;

  constructor(http: OutboundHttp, graphBaseUrl: URL, accessToken: string) {
    this.#http = http;
    this.#graph = `${graphBaseUrl.origin}/v1.0`;
    this.#token = accessToken;
  }

  async #call(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await this.#http.fetch(`${this.#graph}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.#token}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (!response.ok) {
      // not Graph's envelope: keep the start of the body
      const body = graphErrorBody(text);
      const code = body.code ?? 'Unknown';
      const message = body.message ?? text.slice(0, 300);
      throw new GraphAdminError(response.status, code, `Graph ${method} ${path.split('?')[0]} answered ${response.status} ${code}: ${message}`);
    }
    return text ? JSON.parse(text) : undefined;
  }

  async findApplication(appId: string): Promise<GraphApplication | null> {
    const list = (await this.#call('GET', `/applications?$filter=${encodeURIComponent(`appId eq '${appId}'`)}`)) as { value: unknown[] };
    return list.value.length > 0 ? applicationSchema.parse(list.value[0]) : null;
  }

  async getApplication(id: string): Promise<GraphApplication> {
    return applicationSchema.parse(await this.#call('GET', `/applications/${encodeURIComponent(id)}`));
  }

  async createApplication(body: Record<string, unknown>): Promise<GraphApplication> {
    return applicationSchema.parse(await this.#call('POST', '/applications', body));
  }

  async updateApplication(id: string, body: Record<string, unknown>): Promise<void> {
    await this.#call('PATCH', `/applications/${encodeURIComponent(id)}`, body);
  }

  async addPassword(id: string, displayName: string): Promise<{ keyId: string; secretText: string; endDateTime: string }> {
    const result = (await this.#call('POST', `/applications/${encodeURIComponent(id)}/addPassword`, { passwordCredential: { displayName } })) as Record<string, string>;
    return { keyId: result.keyId!, secretText: result.secretText!, endDateTime: result.endDateTime! };
  }

  async removePassword(id: string, keyId: string): Promise<void> {
    await this.#call('POST', `/applications/${encodeURIComponent(id)}/removePassword`, { keyId });
  }

  async addKey(id: string, keyCredential: Record<string, unknown>, proof: string): Promise<void> {
    await this.#call('POST', `/applications/${encodeURIComponent(id)}/addKey`, { keyCredential, passwordCredential: null, proof });
  }

  async removeKey(id: string, keyId: string, proof: string): Promise<void> {
    await this.#call('POST', `/applications/${encodeURIComponent(id)}/removeKey`, { keyId, proof });
  }

  async findServicePrincipal(appId: string): Promise<{ id: string } | null> {
    const list = (await this.#call('GET', `/servicePrincipals?$filter=${encodeURIComponent(`appId eq '${appId}'`)}`)) as { value: { id: string }[] };
    return list.value[0] ?? null;
  }

  async createServicePrincipal(appId: string): Promise<{ id: string }> {
    return (await this.#call('POST', '/servicePrincipals', { appId })) as { id: string };
  }
}
