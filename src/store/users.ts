import type { Kysely } from 'kysely';
import type { Database, UsersTable } from './schema.ts';

export interface SignedInIdentity {
  tenantId: string;
  objectId: string;
  displayName: string | null;
  /** Shown only; never used to find or link an account. */
  username: string | null;
  email: string | null;
}

export interface UserRecord {
  tenantId: string;
  id: string;
  displayName: string | null;
  userPrincipalName: string | null;
  mail: string | null;
  accountEnabled: boolean;
  deleted: boolean;
  rosterRole: UsersTable['roster_role'];
  lastSignInAt: number | null;
}

function toRecord(row: UsersTable): UserRecord {
  return {
    tenantId: row.tenant_id,
    id: row.id,
    displayName: row.display_name,
    userPrincipalName: row.user_principal_name,
    mail: row.mail,
    accountEnabled: row.account_enabled === 1,
    deleted: row.deleted_at !== null,
    rosterRole: row.roster_role,
    lastSignInAt: row.last_sign_in_at,
  };
}

export class UserRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** Looks a user up by `(tid, oid)`, the only identity Roster keys on. */
  async get(tenantId: string, id: string): Promise<UserRecord | undefined> {
    const row = await this.#db
      .selectFrom('users')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  /** Creates or refreshes the user at sign-in; mutable claims update the row, never its key. */
  async recordSignIn(identity: SignedInIdentity, now: number, role?: UsersTable['roster_role']): Promise<UserRecord> {
    const changes = {
      display_name: identity.displayName,
      user_principal_name: identity.username,
      mail: identity.email,
      last_sign_in_at: now,
      updated_at: now,
      ...(role ? { roster_role: role } : {}),
    };
    await this.#db
      .insertInto('users')
      .values({ tenant_id: identity.tenantId, id: identity.objectId, account_enabled: 1, roster_role: role ?? 'member', ...changes })
      .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet(changes))
      .execute();
    return (await this.get(identity.tenantId, identity.objectId))!;
  }

  async countInTenant(tenantId: string): Promise<number> {
    const row = await this.#db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }
}
