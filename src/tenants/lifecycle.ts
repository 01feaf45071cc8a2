import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.ts';

export interface OffboardingResult {
  users: number;
  runs: number;
  sessions: number;
}

/**
 * What customers and operators do to a tenant after sign-up: leave Roster,
 * suspend and resume. Each is one transaction, so a sync of the tenant running
 * meanwhile either finishes first or loses its lock and writes nothing.
 */
export class TenantLifecycle {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /**
   * "Leave Roster": every session ends, the users and runs are deleted, and the
   * tenant is marked offboarded. Signing up again later starts afresh, with the
   * new signer as its first admin.
   */
  async offboard(tenantId: string, reason: string, now: number): Promise<OffboardingResult> {
    return this.#db.transaction().execute(async (trx) => {
      // Marking the tenant first makes a concurrent sync stop at its next page.
      await trx.updateTable('tenants').set({ state: 'offboarded', state_reason: reason, signed_up_by_oid: null, updated_at: now }).where('id', '=', tenantId).execute();
      await trx.deleteFrom('sync_state').where('tenant_id', '=', tenantId).execute();
      const sessions = await trx.deleteFrom('sessions').where('tenant_id', '=', tenantId).executeTakeFirst();
      const users = await trx.deleteFrom('users').where('tenant_id', '=', tenantId).executeTakeFirst();
      const runs = await trx.deleteFrom('sync_runs').where('tenant_id', '=', tenantId).executeTakeFirst();
      return { users: Number(users.numDeletedRows), runs: Number(runs.numDeletedRows), sessions: Number(sessions.numDeletedRows) };
    });
  }

  /** An operator stops an active tenant: no syncs, no sign-ins, every session ends; its data stays. */
  async suspend(tenantId: string, reason: string, now: number): Promise<boolean> {
    return this.#db.transaction().execute(async (trx) => {
      const result = await trx.updateTable('tenants').set({ state: 'suspended', state_reason: reason, updated_at: now }).where('id', '=', tenantId).where('state', '=', 'active').executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) return false;
      await trx.deleteFrom('sessions').where('tenant_id', '=', tenantId).execute();
      return true;
    });
  }

  async resume(tenantId: string, now: number): Promise<boolean> {
    const result = await this.#db.updateTable('tenants').set({ state: 'active', state_reason: null, updated_at: now }).where('id', '=', tenantId).where('state', '=', 'suspended').executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}
