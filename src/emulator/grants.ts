/** Who signed in, and in which browser session. */
export interface SignedInUser {
  tenantId: string;
  userId: string;
  /** Session id (`sid` claim). */
  sid: string;
}

export interface AuthorizationCode extends SignedInUser {
  clientId: string;
  redirectUri: string;
  pathTenant: string;
  scopes: string[];
  nonce: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: string | undefined;
  expiresAtMs: number;
  redeemed: boolean;
}

export interface RefreshTokenGrant extends SignedInUser {
  clientId: string;
  scopes: string[];
  expiresAtMs: number;
}

/**
 * Authorization codes and refresh tokens issued and not yet expired. They are
 * saved with the directory, so a restart in the middle of a sign-in does not
 * lose the code the browser is carrying back to the app.
 */
export class GrantStore {
  readonly codes = new Map<string, AuthorizationCode>();
  readonly refreshTokens = new Map<string, RefreshTokenGrant>();

  /** Drops expired codes and refresh tokens so long-running emulators stay small. */
  pruneExpired(nowMs: number): void {
    for (const [key, code] of this.codes) if (code.expiresAtMs <= nowMs) this.codes.delete(key);
    for (const [key, grant] of this.refreshTokens) if (grant.expiresAtMs <= nowMs) this.refreshTokens.delete(key);
  }
}
