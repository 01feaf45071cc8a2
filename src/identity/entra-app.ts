import { ConfidentialClientApplication, CryptoProvider, LogLevel, type Configuration } from '@azure/msal-node';
import type { AppCredentials } from './credentials.ts';
import type { OutboundHttp } from './http.ts';
import type { AuthorityMetadata } from './metadata.ts';
import { BadClientCredentialsError, toIdentityError } from './errors.ts';

/** The scopes of a user sign-in: who they are, nothing more (no `offline_access`: Roster keeps no refresh tokens). */
const SIGN_IN_SCOPES = ['openid', 'profile', 'email'];

/** Sovereign clouds have their own Graph resource; anything else is asked for as global Graph. */
const SOVEREIGN_GRAPH_HOSTS = new Set(['graph.microsoft.us', 'dod-graph.microsoft.us', 'microsoftgraph.chinacloudapi.cn']);

export function graphDefaultScope(graphBaseUrl: URL): string {
  const origin = SOVEREIGN_GRAPH_HOSTS.has(graphBaseUrl.hostname) ? graphBaseUrl.origin : 'https://graph.microsoft.com';
  return `${origin}/.default`;
}

export interface PkcePair {
  verifier: string;
  challenge: string;
}

/** An app token for one tenant, and which credential obtained it. */
export interface AppToken {
  accessToken: string;
  expiresOn: Date | null;
}

/**
 * Roster's app registration in Entra ID: the only place that holds its
 * credentials and talks to the token endpoint. With both a certificate and a
 * secret configured (rotation), the certificate is tried first.
 */
export class EntraApp {
  readonly clientId: string;
  readonly metadata: AuthorityMetadata;
  readonly graphScope: string;
  #configs: Configuration[];
  /** Long-lived clients for app tokens: MSAL caches a token per tenant in each. */
  #appClients: ConfidentialClientApplication[];
  readonly #crypto = new CryptoProvider();
  readonly #http: OutboundHttp;
  /** Where the credentials came from; read again when the token endpoint refuses them (a rotated certificate file). */
  readonly #reload: (() => Promise<AppCredentials>) | undefined;
  #credentials: AppCredentials;

  constructor(options: { credentials: AppCredentials; metadata: AuthorityMetadata; http: OutboundHttp; graphBaseUrl: URL; reloadCredentials?: () => Promise<AppCredentials> }) {
    const { credentials, metadata, http } = options;
    this.clientId = credentials.clientId;
    this.metadata = metadata;
    this.graphScope = graphDefaultScope(options.graphBaseUrl);
    this.#http = http;
    this.#reload = options.reloadCredentials;
    this.#credentials = credentials;
    this.#configs = this.#configsFor(credentials);
    this.#appClients = this.#configs.map((config) => new ConfidentialClientApplication(config));
  }

  #configsFor(credentials: AppCredentials): Configuration[] {
    const metadata = this.metadata;
    const http = this.#http;
    const authorityHost = new URL(metadata.authorityHost);
    const base = {
      clientId: credentials.clientId,
      authority: `${metadata.authorityHost}/organizations`,
      knownAuthorities: [authorityHost.host],
      authorityMetadata: metadata.raw,
    };
    const system: Configuration['system'] = {
      networkClient: http.msalNetworkModule(),
      loggerOptions: { piiLoggingEnabled: false, logLevel: LogLevel.Error, loggerCallback: () => {} },
    };
    const configs: Configuration[] = [];
    if (credentials.certificate) {
      const cert = credentials.certificate;
      configs.push({
        auth: { ...base, clientCertificate: { thumbprintSha256: cert.thumbprintSha256, privateKey: cert.privateKeyPem, x5c: cert.certificatePem } },
        system,
      });
    }
    if (credentials.clientSecret) configs.push({ auth: { ...base, clientSecret: credentials.clientSecret }, system });
    if (configs.length === 0) throw new Error('the app registration needs a client secret or a certificate');
    return configs;
  }

  /**
   * Reads the credentials again; true when they changed. `roster setup
   * --rotate-credential` replaces the certificate file in one rename, so a
   * running process picks the new certificate up the first time the old one
   * is refused, without a restart.
   */
  async #reloadCredentials(): Promise<boolean> {
    if (!this.#reload) return false;
    let next: AppCredentials;
    try {
      next = await this.#reload();
    } catch {
      return false;
    }
    const same = next.clientSecret === this.#credentials.clientSecret && next.certificate?.thumbprintSha256 === this.#credentials.certificate?.thumbprintSha256;
    if (same) return false;
    this.#credentials = next;
    this.#configs = this.#configsFor(next);
    this.#appClients = this.#configs.map((config) => new ConfidentialClientApplication(config));
    return true;
  }

  async newPkcePair(): Promise<PkcePair> {
    return this.#crypto.generatePkceCodes();
  }

  /** The authorization request for a user sign-in (code flow, PKCE S256, nonce). */
  async signInUrl(request: { redirectUri: string; state: string; nonce: string; codeChallenge: string; loginHint?: string; prompt?: string }): Promise<string> {
    const client = new ConfidentialClientApplication(this.#configs[0]!);
    const url = new URL(await client.getAuthCodeUrl({
      scopes: SIGN_IN_SCOPES,
      redirectUri: request.redirectUri,
      state: request.state,
      nonce: request.nonce,
      codeChallenge: request.codeChallenge,
      codeChallengeMethod: 'S256',
      responseMode: 'query',
      ...(request.loginHint ? { loginHint: request.loginHint } : {}),
      ...(request.prompt ? { prompt: request.prompt } : {}),
    }));
    // MSAL always appends `offline_access` to an authorization request; a sign-in asks only for who the person is.
    url.searchParams.set('scope', SIGN_IN_SCOPES.join(' '));
    return url.href;
  }

  /**
   * Redeems an authorization code and returns the raw ID token, which the
   * caller must validate: MSAL checks only its nonce. A fresh client per
   * sign-in keeps users' tokens out of a cache that would only grow.
   */
  async redeemCode(request: { code: string; redirectUri: string; codeVerifier: string; nonce: string }): Promise<string> {
    return this.#withEachCredential(async (config) => {
      const client = new ConfidentialClientApplication(config);
      const result = await client.acquireTokenByCode({
        code: request.code,
        redirectUri: request.redirectUri,
        codeVerifier: request.codeVerifier,
        scopes: SIGN_IN_SCOPES,
        // Passing the nonce lets MSAL accept the token; Roster validates it again.
        ...({ nonce: request.nonce } as object),
      } as Parameters<ConfidentialClientApplication['acquireTokenByCode']>[0]);
      if (!result?.idToken) throw new Error('the token endpoint returned no ID token');
      return result.idToken;
    });
  }

  /** A client-credentials token for Graph in one tenant; cached by MSAL per tenant. */
  async appToken(tenantId: string, options: { forceRefresh?: boolean } = {}): Promise<AppToken> {
    return this.#withEachCredential(async (_config, index) => {
      const result = await this.#appClients[index]!.acquireTokenByClientCredential({
        scopes: [this.graphScope],
        authority: `${this.metadata.authorityHost}/${tenantId}`,
        skipCache: options.forceRefresh ?? false,
      });
      if (!result?.accessToken) throw new Error('the token endpoint returned no access token');
      return { accessToken: result.accessToken, expiresOn: result.expiresOn ?? null };
    });
  }

  /**
   * Where an admin grants Roster's application permissions for their
   * organisation: the tenant's own endpoint, so consent can only be granted
   * for the directory whose administrator already signed in.
   */
  adminConsentUrl(request: { tenantId: string; redirectUri: string; state: string }): string {
    const url = new URL(`/${encodeURIComponent(request.tenantId)}/v2.0/adminconsent`, this.metadata.adminConsentEndpoint);
    url.searchParams.set('client_id', this.clientId);
    url.searchParams.set('scope', this.graphScope);
    url.searchParams.set('redirect_uri', request.redirectUri);
    url.searchParams.set('state', request.state);
    return url.href;
  }

  logoutUrl(request: { postLogoutRedirectUri: string; logoutHint: string | null }): string {
    const url = new URL(this.metadata.endSessionEndpoint);
    url.searchParams.set('post_logout_redirect_uri', request.postLogoutRedirectUri);
    if (request.logoutHint) url.searchParams.set('logout_hint', request.logoutHint);
    return url.href;
  }

  /**
   * Certificate first; on an `invalid_client` answer the next credential
   * (rotation in progress). What finally fails is thrown as a typed identity error.
   */
  async #withEachCredential<T>(attempt: (config: Configuration, index: number) => Promise<T>, reloaded = false): Promise<T> {
    let lastError: Error | undefined;
    for (let index = 0; index < this.#configs.length; index++) {
      try {
        return await attempt(this.#configs[index]!, index);
      } catch (err) {
        lastError = toIdentityError(err);
        if (!(lastError instanceof BadClientCredentialsError)) throw lastError;
      }
    }
    if (!reloaded && (await this.#reloadCredentials())) return this.#withEachCredential(attempt, true);
    throw lastError!;
  }
}
