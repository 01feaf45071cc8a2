import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { SyncStateRepository } from '../store/sync-state.ts';
import { TenantBusyError } from './errors.ts';

export { TenantBusyError };

/** How long a sync may go without committing a page before another process may take the tenant over. */
export const LOCK_LEASE_MS = 2 * 60_000;

/**
 * One sync per tenant at a time, across processes and machines, through a
 * lease in `sync_state`: taken when free or lapsed, renewed with each page,
 * released at the end. A holder on this machine whose process has died (a
 * crash, a kill) is recognised at once instead of after the lease.
 */
export class TenantLock {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(6).toString('hex')}`;
  readonly #syncState: SyncStateRepository;
  readonly #now: () => number;

  constructor(syncState: SyncStateRepository, now: () => number) {
    this.#syncState = syncState;
    this.#now = now;
  }

  async acquire(tenantId: string): Promise<void> {
    const now = this.#now();
    const { owner: holder } = await this.#syncState.leaseHolder(tenantId);
    const staleOwner = holder !== null && holderIsGoneFromThisHost(holder) ? holder : null;
    const taken = await this.#syncState.takeLease(tenantId, { owner: this.owner, now, until: now + LOCK_LEASE_MS, staleOwner });
    if (!taken) throw new TenantBusyError(`tenant ${tenantId} is being synced by ${holder}`);
  }

  /** Renews the lease through a page's transaction; fails the page if another process took the tenant over. */
  async renew(syncState: SyncStateRepository, tenantId: string): Promise<void> {
    if (!(await syncState.renewLease(tenantId, this.owner, this.#now() + LOCK_LEASE_MS))) throw new TenantBusyError(`lost the sync lock of tenant ${tenantId}`);
  }

  async release(tenantId: string): Promise<void> {
    await this.#syncState.releaseLease(tenantId, this.owner);
  }
}

function holderIsGoneFromThisHost(owner: string): boolean {
  const [host, pid] = owner.split(':');
  if (host !== hostname() || !pid) return false;
  if (Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
