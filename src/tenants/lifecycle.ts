import { tenantEvent } from '../events/tenants.ts';
import type { Store } from '../store/database.ts';
import type { NewAuditEntry } from '../store/audit.ts';
import { transaction, type Repositories } from '../store/repositories.ts';
import type { TenantState } from '../store/tenants.ts';

export interface OffboardingResult {
  users: number;
  runs: number;
  sessions: number;
}

/**
 * What customers, operators and the sync do to a tenant after sign-up: leave
 * Roster, suspend, resume, and disconnect. Each is one transaction, with its
 * event, so a sync of the tenant running meanwhile either finishes first or
 * loses its lock and writes nothing.
 */
export class TenantLifecycle {
  readonly #store: Store;
  readonly #onChange: ((tenantId: string) => void) | undefined;

  /** `onChange` hears of every committed change of state (the Graph subscriptions follow it). */
  constructor(store: Store, options: { onChange?: (tenantId: string) => void } = {}) {
    this.#store = store;
    this.#onChange = options.onChange;
  }

  #changed<T>(tenantId: string, result: T): T {
    if (result !== false) this.#onChange?.(tenantId);
    return result;
  }

  /**
   * "Leave Roster": every session ends, the users, groups and runs are deleted, and the
   * tenant is marked offboarded. Signing up again later starts afresh, with the
   * new signer as its first admin.
   */
  async offboard(tenantId: string, reason: string, now: number, audit?: NewAuditEntry): Promise<OffboardingResult> {
    return this.#changed(tenantId, await transaction(this.#store, async (tx) => {
      if (audit) await tx.audit.record(audit, now);
      const before = await tx.tenants.get(tenantId);
      // Marking the tenant first makes a concurrent sync stop at its next page.
      await tx.tenants.changeState(tenantId, 'offboarded', reason, now, { forgetSignupAdmin: true });
      await tx.syncState.deleteForTenant(tenantId);
      const sessions = await tx.sessions.destroyForTenant(tenantId);
      const users = await tx.syncedUsers.deleteForTenant(tenantId);
      const runs = await tx.syncRuns.deleteForTenant(tenantId);
      await tx.syncedGroups.deleteForTenant(tenantId);
      await tx.groupRoles.deleteForTenant(tenantId);
      if (before && before.state !== 'offboarded') await appendTenantEvent(tx, tenantId, 'tenant.offboarded', now);
      return { users, runs, sessions };
    }));
  }

  /** An operator stops an active tenant: no syncs, no sign-ins, every session ends; its data stays. */
  /** `audit`, when given, is recorded in the same transaction, only if the tenant changed. */
  async suspend(tenantId: string, reason: string, now: number, audit?: NewAuditEntry): Promise<boolean> {
    return this.#changed(tenantId, await transaction(this.#store, async (tx) => {
      if (!(await tx.tenants.changeState(tenantId, 'suspended', reason, now, { from: 'active' }))) return false;
      await tx.sessions.destroyForTenant(tenantId);
      await appendTenantEvent(tx, tenantId, 'tenant.suspended', now);
      if (audit) await tx.audit.record(audit, now);
      return true;
    }));
  }

  async resume(tenantId: string, now: number, audit?: NewAuditEntry): Promise<boolean> {
    return this.#changed(tenantId, await transaction(this.#store, async (tx) => {
      if (!(await tx.tenants.changeState(tenantId, 'active', null, now, { from: 'suspended' }))) return false;
      await appendTenantEvent(tx, tenantId, 'tenant.resumed', now);
      if (audit) await tx.audit.record(audit, now);
      return true;
    }));
  }

  /** Roster's app is gone from the tenant: syncs stop and sessions end; the data stays for a reconnect. */
  async disconnect(tenantId: string, reason: string, now: number): Promise<void> {
    await transaction(this.#store, async (tx) => {
      const before = await tx.tenants.get(tenantId);
      await tx.tenants.setState(tenantId, 'disconnected', reason, now);
      await tx.sessions.destroyForTenant(tenantId);
      if (before && before.state !== 'disconnected') await appendTenantEvent(tx, tenantId, 'tenant.disconnected', now);
    });
    this.#onChange?.(tenantId);
  }
}

/** The tenant's event, with the tenant as the change left it, in the change's transaction. */
async function appendTenantEvent(tx: Repositories, tenantId: string, type: Parameters<typeof tenantEvent>[0], now: number): Promise<void> {
  const tenant = await tx.tenants.get(tenantId);
  if (tenant) await tx.events.append([tenantEvent(type, tenant)], now);
}

/** The event an activation is owed: a first sign-up (or a return after leaving), a reconnect, or none (already active, or suspended). */
export function activationEvent(before: TenantState | undefined, after: TenantState): 'tenant.signed_up' | 'tenant.reconnected' | null {
  if (after !== 'active' || before === 'active') return null;
  return before === 'disconnected' ? 'tenant.reconnected' : 'tenant.signed_up';
}

export { appendTenantEvent };
