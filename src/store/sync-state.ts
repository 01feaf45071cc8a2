import type { Kysely, Selectable, Updateable } from 'kysely';
import type { Database, GroupSyncStateTable, SyncStateTable } from './schema.ts';
import { newGroupSyncState, newSyncState } from './sync-status.ts';

export type SyncStateRow = Selectable<SyncStateTable>;
export type SyncHealthValue = SyncStateTable['health'];

export interface HealthChange {
  from: SyncHealthValue;
  to: SyncHealthValue;
}

/** Where a page leaves the tenant's sync: the cursor, and the run's end when the page ended it. */
export interface PageCursor {
  nextLink: string | null;
  deltaLink: string | null;
  status: 'running' | 'succeeded' | 'held';
  /** The hold's reason, when held. */
  error: string | null;
  now: number;
}

/** The cursor and health a sync keeps per tenant and kind of object: the users' in `sync_state`, the groups' in `group_sync_state`. */
export type SyncCursorRow = Pick<SyncStateRow, 'tenant_id' | 'delta_link' | 'next_link' | 'run_id' | 'run_kind' | 'health' | 'last_success_at' | 'last_error'>;
type CursorTable = 'sync_state' | 'group_sync_state';
type CursorValues = Updateable<GroupSyncStateTable>;

/**
 * A kind's cursor (delta and next links, saved with each page) and its health,
 * one row per tenant. The users' row also holds the tenant's lease.
 */
export class SyncCursorRepository {
  // Both tables share the cursor columns; typed as the users' table, which has them all.
  readonly #db: Kysely<Database>;
  readonly #table: CursorTable;

  constructor(db: Kysely<Database>, table: CursorTable) {
    this.#db = db;
    this.#table = table;
  }

  /** The tenant's cursor, created fresh on first use. */
  async ensure(tenantId: string, now: number): Promise<SyncCursorRow> {
    const fresh = this.#table === 'sync_state' ? newSyncState(tenantId, now) : newGroupSyncState(tenantId, now);
    await this.#db.insertInto(this.#table as 'group_sync_state').values(fresh).onConflict((oc) => oc.column('tenant_id').doNothing()).execute();
    return (await this.get(tenantId))!;
  }

  async get(tenantId: string): Promise<SyncCursorRow | undefined> {
    return this.#db
      .selectFrom(this.#table as 'group_sync_state')
      .select(['tenant_id', 'delta_link', 'next_link', 'run_id', 'run_kind', 'health', 'last_success_at', 'last_error'])
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
  }

  /** A new run owns the tenant's cursor; a pending "Sync now" is answered. */
  async beginRun(tenantId: string, runId: string, kind: 'full' | 'delta', now: number): Promise<void> {
    await this.#set(tenantId, { run_id: runId, run_kind: kind, next_link: null, updated_at: now });
    if (this.#table === 'sync_state') await this.#db.updateTable('sync_state').set({ requested_at: null }).where('tenant_id', '=', tenantId).execute();
  }

  /** The delta link is no longer valid: the next run is a full listing. */
  async forgetDeltaLink(tenantId: string, now: number): Promise<void> {
    await this.#set(tenantId, { delta_link: null, run_id: null, run_kind: null, next_link: null, updated_at: now });
  }

  /** A failed run starts over next time: its next link may be stale by then. Returns the health before and after. */
  async recordFailure(tenantId: string, health: SyncHealthValue, error: string, now: number): Promise<HealthChange> {
    const from = await this.#health(tenantId);
    await this.#set(tenantId, { health, last_error: error, run_id: null, run_kind: null, next_link: null, updated_at: now });
    return { from, to: health };
  }

  /**
   * Saves a page's cursor; written in the page's transaction, so a crash resumes after the last committed page.
   * Returns the health before and after when the page ended the run (succeeded or held), null otherwise.
   */
  async savePage(tenantId: string, cursor: PageCursor): Promise<HealthChange | null> {
    const { nextLink, deltaLink, status, error, now } = cursor;
    const from = status === 'running' ? null : await this.#health(tenantId);
    await this.#set(tenantId, {
      next_link: status === 'held' ? null : nextLink,
      ...(deltaLink ? { delta_link: deltaLink } : {}),
      ...(status === 'succeeded' ? { run_id: null, run_kind: null, last_success_at: now, last_error: null, health: 'ok' } : {}),
      ...(status === 'held' ? { last_error: error, health: 'held' } : {}),
      updated_at: now,
    });
    return from === null ? null : { from, to: status === 'held' ? 'held' : 'ok' };
  }

  /** A held run was decided: the tenant is healthy and free to sync again. Returns the health before and after. */
  async settleHeld(tenantId: string, now: number): Promise<HealthChange> {
    const from = await this.#health(tenantId);
    await this.#set(tenantId, { health: 'ok', last_error: null, run_id: null, run_kind: null, last_success_at: now, updated_at: now });
    return { from, to: 'ok' };
  }

  async #health(tenantId: string): Promise<SyncHealthValue> {
    const row = await this.#db.selectFrom(this.#table as 'group_sync_state').select('health').where('tenant_id', '=', tenantId).executeTakeFirst();
    return row?.health ?? 'ok';
  }

  async #set(tenantId: string, values: CursorValues): Promise<void> {
    await this.#db.updateTable(this.#table as 'group_sync_state').set(values).where('tenant_id', '=', tenantId).execute();
  }
}

/** The users' cursor and health, and the lease that lets one process at a time sync the tenant (users and groups alike). */
export class SyncStateRepository extends SyncCursorRepository {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    super(db, 'sync_state');
    this.#db = db;
  }

  async deleteForTenant(tenantId: string): Promise<void> {
    await this.#db.deleteFrom('sync_state').where('tenant_id', '=', tenantId).execute();
  }

  /** Who holds the tenant's lease, if anyone. */
  async leaseHolder(tenantId: string): Promise<{ owner: string | null; expiresAt: number | null }> {
    const row = await this.#db.selectFrom('sync_state').select(['lock_owner', 'lock_expires_at']).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    return { owner: row.lock_owner, expiresAt: row.lock_expires_at };
  }

  /** Takes the lease when it is free, lapsed, or held by `staleOwner` (a dead process); true when taken. */
  async takeLease(tenantId: string, lease: { owner: string; now: number; until: number; staleOwner?: string | null }): Promise<boolean> {
    const { owner, now, until, staleOwner } = lease;
    const result = await this.#db
      .updateTable('sync_state')
      .set({ lock_owner: owner, lock_expires_at: until })
      .where('tenant_id', '=', tenantId)
      .where((eb) => eb.or([eb('lock_owner', 'is', null), eb('lock_expires_at', '<', now), ...(staleOwner ? [eb('lock_owner', '=', staleOwner)] : [])]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Extends the lease of its holder; false when another process has taken it over. */
  async renewLease(tenantId: string, owner: string, until: number): Promise<boolean> {
    const result = await this.#db.updateTable('sync_state').set({ lock_expires_at: until }).where('tenant_id', '=', tenantId).where('lock_owner', '=', owner).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async releaseLease(tenantId: string, owner: string): Promise<void> {
    await this.#db.updateTable('sync_state').set({ lock_owner: null, lock_expires_at: null }).where('tenant_id', '=', tenantId).where('lock_owner', '=', owner).execute();
  }
}
