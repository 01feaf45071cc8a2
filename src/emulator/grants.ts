import { z } from 'zod';

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

// ---- saved state ---------------------------------------------------------------

const signedIn = { tenantId: z.string(), userId: z.string(), sid: z.string(), clientId: z.string(), scopes: z.array(z.string()), expiresAtMs: z.number() };
const optionalString = z.string().optional();
const codeRecord = z.strictObject({
  type: z.literal('code'),
  value: z.string().min(1),
  ...signedIn,
  redirectUri: z.string(),
  pathTenant: z.string(),
  nonce: optionalString,
  codeChallenge: optionalString,
  codeChallengeMethod: optionalString,
  redeemed: z.boolean(),
});
const refreshTokenRecord = z.strictObject({ type: z.literal('refreshToken'), value: z.string().min(1), ...signedIn });
const grantRecord = z.discriminatedUnion('type', [codeRecord, refreshTokenRecord]);

export const GRANT_RECORD_TYPES: ReadonlySet<string> = new Set(['code', 'refreshToken']);

/** The store's unexpired grants as saved-state records (JSON drops the `undefined` fields). */
export function grantRecords(store: GrantStore, nowMs: number): unknown[] {
  const records: unknown[] = [];
  for (const [value, code] of store.codes) if (code.expiresAtMs > nowMs) records.push({ type: 'code', value, ...code });
  for (const [value, grant] of store.refreshTokens) if (grant.expiresAtMs > nowMs) records.push({ type: 'refreshToken', value, ...grant });
  return records;
}

/** Restores one saved grant; the message of a refused record says which field is wrong. */
export function loadGrantRecord(store: GrantStore, value: unknown): string | undefined {
  const parsed = grantRecord.safeParse(value);
  if (!parsed.success) return parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  const record = parsed.data;
  if (record.type === 'refreshToken') {
    const { type: _type, value: key, ...grant } = record;
    store.refreshTokens.set(key, grant);
  } else {
    const { type: _type, value: key, nonce, codeChallenge, codeChallengeMethod, ...code } = record;
    store.codes.set(key, { ...code, nonce, codeChallenge, codeChallengeMethod });
  }
  return undefined;
}
