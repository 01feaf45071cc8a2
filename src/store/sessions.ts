import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';
import { hashToken, randomToken } from './tokens.ts';

const LAST_SEEN_PRECISION_MS = 60_000;
/** Ids per statement, well under SQLite's 32,766 parameters. */
const USERS_PER_STATEMENT = 1000;

export interface SessionLimits {
  idleMs: number;
  absoluteMs: number;
}

export interface SessionRecord {
  tenantId: string;
  userId: string;
  csrfToken: string;
  loginHint: string | null;
  /** Directory role template ids of the sign-in (`wids`), as validated then. */
  directoryRoles: string[];
  createdAt: number;
  expiresAt: number;
}

/**
 * Server-side sessions. The browser holds a random id; the table holds only its
 * hash, so reading the table gives nobody a usable cookie.
 */
export class SessionRepository {
  readonly #db: Kysely<Database>;
  readonly #limitsGiven: SessionLimits | undefined;

  /** Without `limits` the repository can only end sessions (as a sync or a tenant's lifecycle does). */
  constructor(db: Kysely<Database>, limits?: SessionLimits) {
    this.#db = db;
    this.#limitsGiven = limits;
  }

  get #limits(): SessionLimits {
    if (!this.#limitsGiven) throw new Error('this SessionRepository was built without session limits, so it cannot create or resume sessions');
    return this.#limitsGiven;
  }

  /** A brand-new session (never a reused id); returns the id for the cookie. */
  async create(tenantId: string, userId: string, now: number, loginHint: string | null = null, directoryRoles: readonly string[] = []): Promise<{ id: string; session: SessionRecord }> {
    const id = randomToken();
    const session: SessionRecord = { tenantId, userId, csrfToken: randomToken(), loginHint, directoryRoles: [...directoryRoles], createdAt: now, expiresAt: now + this.#limits.absoluteMs };
    await this.#db
      .insertInto('sessions')
      .values({
        id_hash: hashToken(id),
        tenant_id: tenantId,
        user_id: userId,
        csrf_token: session.csrfToken,
        login_hint: loginHint,
        directory_roles: JSON.stringify(session.directoryRoles),
        created_at: now,
        last_seen_at: now,
        expires_at: session.expiresAt,
      })
      .execute();
    return { id, session };
  }

  /**
   * The live session for a cookie value, or undefined; an expired one is
   * deleted on the way. `touch: false` checks without counting as activity.
   */
  async resume(id: string, now: number, options: { touch?: boolean } = {}): Promise<SessionRecord | undefined> {
    const idHash = hashToken(id);
    const row = await this.#db.selectFrom('sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
    if (!row) return undefined;
    if (row.expires_at <= now || row.last_seen_at <= this.#idleCutoff(now)) {
      await this.#db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
      return undefined;
    }
    // A write per request would dominate page cost; the idle clock needs only minute precision.
    if (options.touch !== false && now - row.last_seen_at >= LAST_SEEN_PRECISION_MS) {
      await this.#db.updateTable('sessions').set({ last_seen_at: now }).where('id_hash', '=', idHash).execute();
    }
    return {
      tenantId: row.tenant_id,
      userId: row.user_id,
      csrfToken: row.csrf_token,
      loginHint: row.login_hint,
      directoryRoles: JSON.parse(row.directory_roles) as string[],
      createdAt: row.created_at,
      expiresAt: row.expires_at,
    };
  }

  async destroy(id: string): Promise<void> {
    await this.#db.deleteFrom('sessions').where('id_hash', '=', hashToken(id)).execute();
  }

  /** Ends the sessions of these users of the tenant (any number of them: deleted in batches of a statement's size). */
  async destroyForUsers(tenantId: string, userIds: readonly string[]): Promise<number> {
    let ended = 0;
    for (let i = 0; i < userIds.length; i += USERS_PER_STATEMENT) {
      const result = await this.#db.deleteFrom('sessions').where('tenant_id', '=', tenantId).where('user_id', 'in', userIds.slice(i, i + USERS_PER_STATEMENT)).executeTakeFirst();
      ended += Number(result.numDeletedRows);
    }
    return ended;
  }

  /** The users of the tenant with a session (to re-check them). */
  async userIdsOf(tenantId: string): Promise<string[]> {
    const rows = await this.#db.selectFrom('sessions').select('user_id').distinct().where('tenant_id', '=', tenantId).execute();
    return rows.map((row) => row.user_id);
  }

  async destroyForTenant(tenantId: string): Promise<number> {
    const result = await this.#db.deleteFrom('sessions').where('tenant_id', '=', tenantId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /** Deletes every session past its absolute end or idle for longer than the idle limit; returns how many. */
  async deleteExpired(now: number): Promise<number> {
    const result = await this.#db
      .deleteFrom('sessions')
      .where((eb) => eb.or([eb('expires_at', '<=', now), eb('last_seen_at', '<=', this.#idleCutoff(now))]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /**
   * A session whose last_seen_at is at or before this has been idle too long.
   * last_seen_at may lag the last use by up to its precision, so a session used
   * within the idle window is still live: resuming and purging agree on that.
   */
  #idleCutoff(now: number): number {
    return now - this.#limits.idleMs - LAST_SEEN_PRECISION_MS;
  }
}
