import type { Store } from '../store/database.ts';
import type { NewAuditEntry } from '../store/audit.ts';
import { transaction } from '../store/repositories.ts';

export interface OffboardingResult {
  users: number;
  runs: number;
  sessions: number;
}

/**
 * What customers, operators and the sync do to a tenant after sign-up: leave
 * Roster, suspend, resume, and disconnect. Each is one transaction, so a sync
 * of the tenant running meanwhile either finishes first or loses its lock and
 * writes nothing.
 */
export class TenantLifecycle {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  /**
   * "Leave Roster": every session ends, the users, groups and runs are deleted, and the
   * tenant is marked offboarded. Signing up again later starts afresh, with the
   * new signer as its first admin.
   */
  async offboard(tenantId: string, reason: string, now: number, audit?: NewAuditEntry): Promise<OffboardingResult> {
    return transaction(this.#store, async (tx) => {
      if (audit) await tx.audit.record(audit, now);
      // Marking the tenant first makes a concurrent sync stop at its next page.
      await tx.tenants.changeState(tenantId, 'offboarded', reason, now, { forgetSignupAdmin: true });
      await tx.syncState.deleteForTenant(tenantId);
      const sessions = await tx.sessions.destroyForTenant(tenantId);
      const users = await tx.syncedUsers.deleteForTenant(tenantId);
      const runs = await tx.syncRuns.deleteForTenant(tenantId);
      await tx.syncedGroups.deleteForTenant(tenantId);
      return { users, runs, sessions };
    });
  }

  /** An operator stops an active tenant: no syncs, no sign-ins, every session ends; its data stays. */
  /** `audit`, when given, is recorded in the same transaction, only if the tenant changed. */
  async suspend(tenantId: string, reason: string, now: number, audit?: NewAuditEntry): Promise<boolean> {
    return transaction(this.#store, async (tx) => {
      if (!(await tx.tenants.changeState(tenantId, 'suspended', reason, now, { from: 'active' }))) return false;
      await tx.sessions.destroyForTenant(tenantId);
      if (audit) await tx.audit.record(audit, now);
      return true;
    });
  }

  async resume(tenantId: string, now: number, audit?: NewAuditEntry): Promise<boolean> {
    return transaction(this.#store, async (tx) => {
      if (!(await tx.tenants.changeState(tenantId, 'active', null, now, { from: 'suspended' }))) return false;
      if (audit) await tx.audit.record(audit, now);
      return true;
    });
  }

  /** Roster's app is gone from the tenant: syncs stop and sessions end; the data stays for a reconnect. */
  async disconnect(tenantId: string, reason: string, now: number): Promise<void> {
    await transaction(this.#store, async (tx) => {
      await tx.tenants.setState(tenantId, 'disconnected', reason, now);
      await tx.sessions.destroyForTenant(tenantId);
    });
  }
}
