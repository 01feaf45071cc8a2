import type { Store } from '../store/database.ts';
import type { AuditActor } from '../store/audit.ts';
import { repositoriesOf, type Repositories } from '../store/repositories.ts';
import { SyncStatusRepository, type SyncRun } from '../store/sync-status.ts';
import type { TenantRecord } from '../store/tenants.ts';
import { TenantNotFoundError, TenantStateConflictError } from './errors.ts';
import type { TenantLifecycle } from './lifecycle.ts';

/** What operator actions ask of directory sync: the web app's SyncControl, or the CLI's own runs. */
export interface SyncRequests {
  requestSync(tenantId: string, options?: { full?: boolean }): void;
  confirmHeldDeletion(tenantId: string): Promise<number>;
  discardHeldDeletion(tenantId: string): Promise<void>;
}

export type HeldDecision = 'confirm' | 'discard';

/** A tenant whose last run holds a mass deletion for an operator's decision. */
export interface HeldDeletion {
  tenant: TenantRecord;
  /** Whose run is held: the users' or the groups'. */
  objects: 'users' | 'groups';
  run: SyncRun;
}

/**
 * The operator's actions on a tenant (suspend, resume, sync now, held
 * deletions), shared by the console, the API and the CLI, so each has one
 * outcome and one audit entry whichever surface asked.
 */
export class OperatorActions {
  readonly #repos: Repositories;
  readonly #syncStatus: SyncStatusRepository;
  readonly #lifecycle: TenantLifecycle;
  readonly #sync: SyncRequests;
  readonly #now: () => number;

  constructor(options: { store: Store; lifecycle: TenantLifecycle; sync: SyncRequests; now?: () => number }) {
    this.#repos = repositoriesOf(options.store);
    this.#syncStatus = new SyncStatusRepository(options.store.db);
    this.#lifecycle = options.lifecycle;
    this.#sync = options.sync;
    this.#now = options.now ?? Date.now;
  }

  async #tenant(tenantId: string): Promise<TenantRecord> {
    const tenant = await this.#repos.tenants.get(tenantId);
    if (!tenant) throw new TenantNotFoundError();
    return tenant;
  }

  /** An active tenant stops: no syncs, no sign-ins, every session ends; its data stays. */
  async suspend(tenantId: string, actor: AuditActor): Promise<TenantRecord> {
    const tenant = await this.#tenant(tenantId);
    const now = this.#now();
    const reason = `suspended by an operator on ${new Date(now).toISOString().slice(0, 10)}`;
    if (!(await this.#lifecycle.suspend(tenant.id, reason, now, { actor, action: 'tenant.suspend', tenantId: tenant.id }))) {
      throw new TenantStateConflictError('Only an active tenant can be suspended.');
    }
    return this.#tenant(tenant.id);
  }

  /** A suspended tenant is active again, and synced at once where this process runs syncs. */
  async resume(tenantId: string, actor: AuditActor): Promise<TenantRecord> {
    const tenant = await this.#tenant(tenantId);
    if (!(await this.#lifecycle.resume(tenant.id, this.#now(), { actor, action: 'tenant.resume', tenantId: tenant.id }))) {
      throw new TenantStateConflictError('Only a suspended tenant can be resumed.');
    }
    this.#sync.requestSync(tenant.id);
    return this.#tenant(tenant.id);
  }

  /** "Sync now": recorded as asked (the pages show it queued), then started or queued. */
  async requestSync(tenantId: string, actor: AuditActor, options: { full?: boolean } = {}): Promise<void> {
    const tenant = await this.#tenant(tenantId);
    if (tenant.state !== 'active') throw new TenantStateConflictError('Only an active tenant can be synced.');
    const now = this.#now();
    await this.#syncStatus.request(tenant.id, now);
    await this.#repos.audit.record({ actor, action: 'tenant.sync', tenantId: tenant.id, detail: { full: options.full ?? false } }, now);
    this.#sync.requestSync(tenant.id, options.full ? { full: true } : {});
  }

  /** The held run of a tenant, or null: the users' run first, then the groups' (the engine decides them in that order). */
  async heldDeletion(tenantId: string): Promise<HeldDeletion | null> {
    const tenant = await this.#tenant(tenantId);
    const status = await this.#syncStatus.status(tenant.id);
    if (status.current?.status === 'held') return { tenant, objects: 'users', run: status.current };
    if ((await this.#syncStatus.groupStatus(tenant.id)).health !== 'held') return null;
    const [run] = await this.#syncStatus.runs(tenant.id, 1, 'groups');
    return run?.status === 'held' ? { tenant, objects: 'groups', run } : null;
  }

  /** Every tenant with a held mass deletion (of users or of groups), optionally only one tenant. */
  async heldDeletions(only: string | null = null): Promise<HeldDeletion[]> {
    const candidates = only === null ? (await this.#repos.tenants.list()).map((t) => t.id) : [only];
    const found = await Promise.all(candidates.map((id) => this.heldDeletion(id).catch((err: unknown) => (err instanceof TenantNotFoundError ? null : Promise.reject(err)))));
    return found.filter((h): h is HeldDeletion => h !== null);
  }

  /** Applies or discards a held mass deletion; `removed` counts the users a confirmation removed. */
  async decideHeld(tenantId: string, decision: HeldDecision, actor: AuditActor): Promise<{ removed: number | null }> {
    const held = await this.heldDeletion(tenantId);
    if (!held) throw new TenantStateConflictError('This tenant has no sync waiting for a decision.');
    const removed = decision === 'confirm' ? await this.#sync.confirmHeldDeletion(held.tenant.id) : (await this.#sync.discardHeldDeletion(held.tenant.id), null);
    await this.#repos.audit.record({ actor, action: `held.${decision}`, tenantId: held.tenant.id, target: held.run.id, detail: { objects: held.objects, ...(removed === null ? {} : { removed }) } }, this.#now());
    return { removed };
  }
}
