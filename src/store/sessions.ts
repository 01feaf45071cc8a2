import type { InferResult, Kysely, Selectable } from 'kysely';
import type { Database, SessionsTable } from './schema.ts';
import { tenantRecordOf, type TenantRecord } from './tenants.ts';
import { userRecordOf, type UserRecord } from './users.ts';
import { CompiledOnce } from './compiled-query.ts';
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

/** A session with the tenant and user it belongs to, as of one read. */
export interface SignedInRecord {
  session: SessionRecord;
  tenant: TenantRecord | undefined;
  user: UserRecord | undefined;
  /** The tenant lets in only the members of its access-list groups. */
  tenantHasAccessList: boolean;
}

function sessionRecordOf(row: Omit<Selectable<SessionsTable>, 'id_hash' | 'last_seen_at'>): SessionRecord {
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

/** The session with its tenant, its user and whether the tenant has an access list, in one statement. */
function signedInQuery(db: Kysely<Database>, values: { idHash: string }) {
  return db
    .selectFrom('sessions as s')
    .leftJoin('tenants as t', 't.id', 's.tenant_id')
    .leftJoin('users as u', (join) => join.onRef('u.tenant_id', '=', 's.tenant_id').onRef('u.id', '=', 's.user_id'))
    .select([
      's.tenant_id',
      's.user_id',
      's.csrf_token',
      's.login_hint',
      's.directory_roles',
      's.created_at',
      's.last_seen_at',
      's.expires_at',
      't.id as t_id',
      't.display_name as t_display_name',
      't.domains as t_domains',
      't.state as t_state',
      't.state_reason as t_state_reason',
      't.signup_context as t_signup_context',
      't.signed_up_by_oid as t_signed_up_by_oid',
      't.user_count as t_user_count',
      't.created_at as t_created_at',
      't.updated_at as t_updated_at',
      'u.id as u_id',
      'u.display_name as u_display_name',
      'u.user_principal_name as u_user_principal_name',
      'u.mail as u_mail',
      'u.account_enabled as u_account_enabled',
      'u.deleted_at as u_deleted_at',
      'u.roster_role as u_roster_role',
      'u.mapped_role as u_mapped_role',
      'u.last_sign_in_at as u_last_sign_in_at',
      (eb) => eb.exists(eb.selectFrom('group_role_mappings as m').select('m.group_id').whereRef('m.tenant_id', '=', 's.tenant_id').where('m.grants', '=', 'access')).as('access_listed'),
    ])
    .where('s.id_hash', '=', values.idHash);
}

type SignedInRow = InferResult<ReturnType<typeof signedInQuery>>[number];

/**
 * Server-side sessions. The browser holds a random id; the table holds only its
 * hash, so reading the table gives nobody a usable cookie.
 */
export class SessionRepository {
  readonly #db: Kysely<Database>;
  readonly #limitsGiven: SessionLimits | undefined;
  readonly #signedIn: CompiledOnce<'idHash', SignedInRow>;

  /** Without `limits` the repository can only end sessions (as a sync or a tenant's lifecycle does). */
  constructor(db: Kysely<Database>, limits?: SessionLimits) {
    this.#db = db;
    this.#limitsGiven = limits;
    this.#signedIn = new CompiledOnce(db, ['idHash'], signedInQuery);
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
    if (!row || !(await this.#stillLive(idHash, row, now, options))) return undefined;
    return sessionRecordOf(row);
  }

  /**
   * `resume` with the session's tenant and user read in the same statement,
   * and whether the tenant has an access list: a page checks all of them on
   * every request, and one round trip costs a fraction of four. The tenant or
   * user is undefined when its row is gone; judging them is the caller's.
   */
  async resumeSignedIn(id: string, now: number, options: { touch?: boolean } = {}): Promise<SignedInRecord | undefined> {
    const idHash = hashToken(id);
    const [row] = await this.#signedIn.execute({ idHash });
    if (!row || !(await this.#stillLive(idHash, row, now, options))) return undefined;
    const tenant =
      row.t_id === null
        ? undefined
        : tenantRecordOf({
            id: row.t_id,
            display_name: row.t_display_name!,
            domains: row.t_domains!,
            state: row.t_state!,
            state_reason: row.t_state_reason,
            signup_context: row.t_signup_context,
            signed_up_by_oid: row.t_signed_up_by_oid,
            user_count: row.t_user_count!,
            created_at: row.t_created_at!,
            updated_at: row.t_updated_at!,
          });
    const user =
      row.u_id === null
        ? undefined
        : userRecordOf({
            tenant_id: row.tenant_id,
            id: row.u_id,
            display_name: row.u_display_name,
            user_principal_name: row.u_user_principal_name,
            mail: row.u_mail,
            account_enabled: row.u_account_enabled!,
            deleted_at: row.u_deleted_at,
            roster_role: row.u_roster_role!,
            mapped_role: row.u_mapped_role,
            last_sign_in_at: row.u_last_sign_in_at,
          });
    // SQLite answers 0 or 1, PostgreSQL a boolean.
    return { session: sessionRecordOf(row), tenant, user, tenantHasAccessList: Boolean(row.access_listed) };
  }

  /** Deletes a session past its limits; moves the idle clock of a live one (at most once a minute). */
  async #stillLive(idHash: string, row: Pick<SessionsTable, 'expires_at' | 'last_seen_at'>, now: number, options: { touch?: boolean }): Promise<boolean> {
    if (row.expires_at <= now || row.last_seen_at <= this.#idleCutoff(now)) {
      await this.#db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
      return false;
    }
    // A write per request would dominate page cost; the idle clock needs only minute precision.
    if (options.touch !== false && now - row.last_seen_at >= LAST_SEEN_PRECISION_MS) {
      await this.#db.updateTable('sessions').set({ last_seen_at: now }).where('id_hash', '=', idHash).execute();
    }
    return true;
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
