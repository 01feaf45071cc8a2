import type { Kysely, Selectable } from 'kysely';
import type { Database, TenantsTable } from './schema.ts';

export type TenantState = TenantsTable['state'];

export interface TenantRecord {
  id: string;
  displayName: string;
  domains: string[];
  state: TenantState;
  stateReason: string | null;
  signupContext: Record<string, unknown> | null;
  signedUpByOid: string | null;
  /** Users in Roster's copy (soft-deleted included). */
  userCount: number;
  createdAt: number;
  updatedAt: number;
}

export interface ConfirmedSignup {
  id: string;
  displayName: string;
  domains: string[];
  signedUpByOid: string | null;
  signupContext: Record<string, unknown> | null;
}

/** A tenant row as Roster's record of it. */
export function tenantRecordOf(row: Selectable<TenantsTable>): TenantRecord {
  return {
    id: row.id,
    displayName: row.display_name,
    domains: JSON.parse(row.domains) as string[],
    state: row.state,
    stateReason: row.state_reason,
    signupContext: row.signup_context ? (JSON.parse(row.signup_context) as Record<string, unknown>) : null,
    signedUpByOid: row.signed_up_by_oid,
    userCount: Number(row.user_count),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export class TenantRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  async get(id: string): Promise<TenantRecord | undefined> {
    const row = await this.#db.selectFrom('tenants').selectAll().where('id', '=', id.toLowerCase()).executeTakeFirst();
    return row ? tenantRecordOf(row) : undefined;
  }

  async list(): Promise<TenantRecord[]> {
    const rows = await this.#db.selectFrom('tenants').selectAll().orderBy('display_name').execute();
    return rows.map(tenantRecordOf);
  }

  /** Tenants in id order after `after` (keyset), optionally only one (a key limited to a tenant). */
  async pageById(page: { after?: string; limit: number; only?: string | null }): Promise<TenantRecord[]> {
    let query = this.#db.selectFrom('tenants').selectAll();
    if (page.only) query = query.where('id', '=', page.only.toLowerCase());
    if (page.after !== undefined) query = query.where('id', '>', page.after);
    const rows = await query.orderBy('id').limit(page.limit).execute();
    return rows.map(tenantRecordOf);
  }

  /**
   * Records a tenant whose consent Roster has confirmed. Idempotent: a second
   * sign-up, a reconnect after a disconnection and a return after offboarding
   * all leave one active row with fresh name and domains. A suspended tenant
   * is left as it is (only an operator resumes it): the returned record says so.
   */
  async activate(signup: ConfirmedSignup, now: number): Promise<TenantRecord> {
    const values = {
      display_name: signup.displayName,
      domains: JSON.stringify(signup.domains),
      state: 'active' as const,
      state_reason: null,
      signup_context: signup.signupContext ? JSON.stringify(signup.signupContext) : null,
      updated_at: now,
    };
    await this.#db
      .insertInto('tenants')
      .values({ id: signup.id.toLowerCase(), created_at: now, signed_up_by_oid: signup.signedUpByOid, ...values })
      .onConflict((oc) =>
        oc
          .column('id')
          // The first signer stays recorded; one is recorded again only after the tenant left (offboarding clears it).
          .doUpdateSet((eb) => ({ ...values, signed_up_by_oid: eb.fn.coalesce('tenants.signed_up_by_oid', 'excluded.signed_up_by_oid') }))
          .where('tenants.state', '!=', 'suspended'),
      )
      .execute();
    return (await this.get(signup.id))!;
  }

  /**
   * Notes a sign-up whose consent is still propagating; never downgrades a
   * known tenant. A pending row left by an earlier attempt starts afresh.
   */
  async markPending(id: string, now: number): Promise<void> {
    await this.#db
      .insertInto('tenants')
      .values({ id: id.toLowerCase(), display_name: id.toLowerCase(), domains: '[]', state: 'pending', state_reason: 'consent is propagating', signup_context: null, signed_up_by_oid: null, created_at: now, updated_at: now })
      .onConflict((oc) => oc.column('id').doUpdateSet({ created_at: now, updated_at: now }).where('tenants.state', '=', 'pending'))
      .execute();
  }

  /** Records who signed the organisation up, once: the first proven admin of that tenant. */
  async recordSignupAdmin(id: string, oid: string, now: number): Promise<boolean> {
    const result = await this.#db
      .updateTable('tenants')
      .set({ signed_up_by_oid: oid, updated_at: now })
      .where('id', '=', id.toLowerCase())
      .where('signed_up_by_oid', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async setState(id: string, state: TenantState, reason: string | null, now: number): Promise<void> {
    await this.changeState(id, state, reason, now);
  }

  /**
   * Moves a tenant to `state`, only from the state `from` when given; true when
   * it moved. `forgetSignupAdmin` clears who signed up (leaving Roster).
   */
  async changeState(id: string, state: TenantState, reason: string | null, now: number, options: { from?: TenantState; forgetSignupAdmin?: boolean } = {}): Promise<boolean> {
    let update = this.#db
      .updateTable('tenants')
      .set({ state, state_reason: reason, updated_at: now, ...(options.forgetSignupAdmin ? { signed_up_by_oid: null } : {}) })
      .where('id', '=', id.toLowerCase());
    if (options.from) update = update.where('state', '=', options.from);
    const result = await update.executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}
