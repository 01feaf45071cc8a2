import { z } from 'zod';
import { IdentityError } from './errors.ts';
import type { OutboundHttp } from './http.ts';

const discoverySchema = z.object({
  issuer: z.string(),
  authorization_endpoint: z.url(),
  token_endpoint: z.url(),
  end_session_endpoint: z.url(),
  jwks_uri: z.url(),
});

/**
 * What Roster needs to know about its identity provider, read from the
 * `organizations` discovery document. Browser-facing endpoints may live on
 * another origin than the token endpoint (the emulator does this), so URLs are
 * taken from the document rather than assembled from the authority host.
 */
export interface AuthorityMetadata {
  /** `https://host` of the authority (token endpoint, keys). */
  authorityHost: string;
  /** The `{tenantid}` issuer template. */
  issuerTemplate: string;
  authorizationEndpoint: string;
  endSessionEndpoint: string;
  jwksUri: string;
  /** Where admin consent is requested: the authorization endpoint's origin. */
  adminConsentEndpoint: string;
  /** The discovery document itself, handed to MSAL so it does not fetch it again. */
  raw: string;
}

/** The authority's discovery document could not be read or is not a multi-tenant Entra one (at start-up). */
export class AuthorityUnavailableError extends IdentityError {
  constructor(message: string) {
    super(message, { status: 503, code: 'authority_unavailable' });
  }
}

export async function loadAuthorityMetadata(http: OutboundHttp, authorityHost: URL): Promise<AuthorityMetadata> {
  const url = new URL('/organizations/v2.0/.well-known/openid-configuration', authorityHost);
  let text: string;
  try {
    const response = await http.fetch(url, { signal: AbortSignal.timeout(10_000) });
    text = await response.text();
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
  } catch (err) {
    throw new AuthorityUnavailableError(`the identity provider at ${authorityHost.origin} did not answer its discovery document (${url.href}): ${(err as Error).message}`);
  }
  const parsed = discoverySchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new AuthorityUnavailableError(`the discovery document at ${url.href} is not an OpenID Connect configuration`);
  const doc = parsed.data;
  if (!doc.issuer.includes('{tenantid}')) {
    throw new AuthorityUnavailableError(`the discovery document at ${url.href} has no {tenantid} issuer template: is this a multi-tenant Entra authority?`);
  }
  return {
    authorityHost: authorityHost.origin,
    issuerTemplate: doc.issuer,
    authorizationEndpoint: doc.authorization_endpoint,
    endSessionEndpoint: doc.end_session_endpoint,
    jwksUri: doc.jwks_uri,
    adminConsentEndpoint: new URL('/organizations/v2.0/adminconsent', doc.authorization_endpoint).href,
    raw: text,
  };
}
