import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../store/schema.ts';

/** How long a sync may go without committing a page before another process may take the tenant over. */
export const LOCK_LEASE_MS = 2 * 60_000;

export class TenantBusyError extends Error {}

/**
 * One sync per tenant at a time, across processes and machines, through a
 * lease in `sync_state`: taken when free or lapsed, renewed with each page,
 * released at the end. A holder on this machine whose process has died (a
 * crash, a kill) is recognised at once instead of after the lease.
 */
export class TenantLock {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(6).toString('hex')}`;
  readonly #db: Kysely<Database>;
  readonly #now: () => number;

  constructor(db: Kysely<Database>, now: () => number) {
    this.#db = db;
    this.#now = now;
  }

  async acquire(tenantId: string): Promise<void> {
    const now = this.#now();
    const current = await this.#db.selectFrom('sync_state').select(['lock_owner', 'lock_expires_at']).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    const stale = current.lock_owner !== null && holderIsGoneFromThisHost(current.lock_owner);
    const result = await this.#db
      .updateTable('sync_state')
      .set({ lock_owner: this.owner, lock_expires_at: now + LOCK_LEASE_MS })
      .where('tenant_id', '=', tenantId)
      .where((eb) =>
        eb.or([
          eb('lock_owner', 'is', null),
          eb('lock_expires_at', '<', now),
          ...(stale && current.lock_owner ? [eb('lock_owner', '=', current.lock_owner)] : []),
        ]),
      )
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) throw new TenantBusyError(`tenant ${tenantId} is being synced by ${current.lock_owner}`);
  }

  /** Renews the lease inside a page's transaction; fails the page if another process took the tenant over. */
  async renew(trx: Transaction<Database>, tenantId: string): Promise<void> {
    const result = await trx
      .updateTable('sync_state')
      .set({ lock_expires_at: this.#now() + LOCK_LEASE_MS })
      .where('tenant_id', '=', tenantId)
      .where('lock_owner', '=', this.owner)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) throw new TenantBusyError(`lost the sync lock of tenant ${tenantId}`);
  }

  async release(tenantId: string): Promise<void> {
    await this.#db.updateTable('sync_state').set({ lock_owner: null, lock_expires_at: null }).where('tenant_id', '=', tenantId).where('lock_owner', '=', this.owner).execute();
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
