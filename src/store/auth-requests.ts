import type { Kysely } from 'kysely';
import type { AuthRequestsTable, Database } from './schema.ts';
import { hashToken, randomToken } from './tokens.ts';

export interface NewAuthRequest {
  kind: AuthRequestsTable['kind'];
  /** The browser-binding cookie's value; the callback must come from the same browser. */
  browserBinding: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string | null;
  context: Record<string, unknown> | null;
}

export interface PendingAuthRequest extends NewAuthRequest {
  createdAt: number;
}

/**
 * Sign-ins and sign-ups in flight, keyed by the hash of their `state`. Taking
 * one deletes it, so a `state` works once.
 */
export class AuthRequestRepository {
  readonly #db: Kysely<Database>;
  readonly #ttlMs: number;

  constructor(db: Kysely<Database>, ttlMs: number) {
    this.#db = db;
    this.#ttlMs = ttlMs;
  }

  /** Stores the request and returns its `state`. */
  async create(request: NewAuthRequest, now: number): Promise<string> {
    const state = randomToken();
    await this.#db
      .insertInto('auth_requests')
      .values({
        state_hash: hashToken(state),
        kind: request.kind,
        browser_binding_hash: hashToken(request.browserBinding),
        nonce: request.nonce,
        code_verifier: request.codeVerifier,
        return_to: request.returnTo,
        context: request.context ? JSON.stringify(request.context) : null,
        created_at: now,
        expires_at: now + this.#ttlMs,
      })
      .execute();
    return state;
  }

  /**
   * Consumes the request for `state` if it exists, has not expired, is of the
   * expected kind and belongs to this browser. A request from another browser
   * or of another kind leaves it untouched, so nobody can spoil someone
   * else's sign-in by replaying their `state`.
   */
  async take(state: string, kind: AuthRequestsTable['kind'], browserBinding: string, now: number): Promise<PendingAuthRequest | undefined> {
    const row = await this.#db
      .deleteFrom('auth_requests')
      .where('state_hash', '=', hashToken(state))
      .where('kind', '=', kind)
      .where('browser_binding_hash', '=', hashToken(browserBinding))
      .returningAll()
      .executeTakeFirst();
    if (!row || row.expires_at <= now) return undefined;
    return {
      kind: row.kind,
      browserBinding,
      nonce: row.nonce,
      codeVerifier: row.code_verifier,
      returnTo: row.return_to,
      context: row.context ? (JSON.parse(row.context) as Record<string, unknown>) : null,
      createdAt: row.created_at,
    };
  }

  async deleteExpired(now: number): Promise<number> {
    const result = await this.#db.deleteFrom('auth_requests').where('expires_at', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
