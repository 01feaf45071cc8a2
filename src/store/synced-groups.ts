import { CompiledQuery, sql, type ExpressionBuilder, type Kysely } from 'kysely';
import type { Engine } from './database.ts';
import type { Database, GroupMembersTable, GroupsTable } from './schema.ts';
import { byShape, inBatches, type RoundKind } from './synced-users.ts';

/** Every column a sync writes from Graph, and `deleted_at`: what decides whether an item changed a group. */
export const GROUP_DATA_COLUMNS = [
  'display_name',
  'description',
  'group_types',
  'security_enabled',
  'mail_enabled',
  'mail',
  'membership_rule',
  'kind',
  'dynamic',
  'deleted_at',
] as const satisfies readonly (keyof GroupsTable)[];
export type GroupDataColumn = (typeof GROUP_DATA_COLUMNS)[number];

export type StoredMembership = Pick<GroupMembersTable, 'member_type' | 'seen_run_id'>;
type StoredPair = Pick<GroupMembersTable, 'group_id' | 'member_id'> & StoredMembership;
/** A group as a sync compares it, with the stored memberships among those its page mentions. */
export type StoredGroup = Pick<GroupsTable, 'id' | 'seen_run_id' | GroupDataColumn> & { members: Map<string, StoredMembership> };
/** Columns one write sets on a group (the key and `tenant_id` are added by the repository). */
export type GroupRowWrite = { id: string } & Partial<Omit<GroupsTable, 'tenant_id' | 'id'>>;
export type MembershipWrite = Omit<GroupMembersTable, 'tenant_id'>;
/** A membership as a write reports it back: which rows it really inserted or deleted. */
export type MembershipRow = Pick<GroupMembersTable, 'group_id' | 'member_id' | 'member_type'>;
/** A group as it was when a round removed it. */
export type RemovedGroup = Pick<GroupsTable, 'id' | GroupDataColumn>;

/** What the end of a round removed: the counts the run records, and the rows the events describe. */
export interface PendingRemoval {
  removed: number;
  memberships: MembershipRow[];
  groups: RemovedGroup[];
}

const MEMBERSHIP_KEY = ['group_id', 'member_id', 'member_type'] as const;

const MEMBERSHIP_COLUMNS = 'tenant_id, group_id, member_id, member_type, seen_run_id';
/** PostgreSQL: plain membership inserts over one array per column, the tenant once: one plan whatever the count. */
const POSTGRES_PLAIN_INSERT = `insert into group_members (${MEMBERSHIP_COLUMNS}) select $1, r.* from unnest($2::text[], $3::text[], $4::text[], $5::text[]) as r`;
/** Rows per plain insert on PostgreSQL: its five parameters bound nothing, this one statement's size. */
const PLAIN_BATCH = 10_000;

/** A row that was there already: PostgreSQL's unique_violation. */
function isDuplicate(err: unknown): boolean {
  return (err as { code?: unknown }).code === '23505';
}

/**
 * The batched writes a directory sync makes to a tenant's groups and direct
 * memberships, and the marks (`seen_run_id`) that say what a round removes at
 * its end, as for users.
 */
export class SyncedGroupRepository {
  readonly #db: Kysely<Database>;
  readonly #engine: Engine;

  constructor(db: Kysely<Database>, engine: Engine) {
    this.#db = db;
    this.#engine = engine;
  }

  /** The stored groups among `groupIds`, each with its stored memberships among the `[group, member]` pairs a page names. */
  async stored(tenantId: string, groupIds: readonly string[], pairs: readonly (readonly [string, string])[]): Promise<Map<string, StoredGroup>> {
    const stored = new Map<string, StoredGroup>();
    for (const batch of inBatches(groupIds)) {
      const rows = await this.#db.selectFrom('groups').select(['id', 'seen_run_id', ...GROUP_DATA_COLUMNS]).where('tenant_id', '=', tenantId).where('id', 'in', batch).execute();
      for (const row of rows) stored.set(row.id, { ...row, members: new Map() });
    }
    // Pairs, not the product of groups and members.
    const known = pairs.filter(([group]) => stored.has(group));
    for (const row of await this.#storedPairs(tenantId, known)) stored.get(row.group_id)!.members.set(row.member_id, { member_type: row.member_type, seen_run_id: row.seen_run_id });
    return stored;
  }

  /** The stored memberships among `pairs`. */
  async #storedPairs(tenantId: string, pairs: readonly (readonly [string, string])[]): Promise<StoredPair[]> {
    const rows: StoredPair[] = [];
    for (const batch of inBatches(pairs, this.#pairBatch)) {
      rows.push(...(await this.#db.selectFrom('group_members').select(['group_id', 'member_id', 'member_type', 'seen_run_id']).where('tenant_id', '=', tenantId).where(this.#among(batch)).execute()));
    }
    return rows;
  }

  /**
   * `(group_id, member_id)` among the pairs. PostgreSQL takes them as two array
   * parameters: a `values` list of them cost more to plan than to run (200
   * statements a page of 100,000 memberships). SQLite probes the index for
   * each row of a `values` list, 500 pairs a statement.
   */
  #among(pairs: readonly (readonly [string, string])[]) {
    const list =
      this.#engine === 'postgres'
        ? sql`select * from unnest(${pairs.map(([group]) => group)}::text[], ${pairs.map(([, member]) => member)}::text[])`
        : sql`values ${sql.join(pairs.map(([group, member]) => sql`(${group}, ${member})`))}`;
    return sql<boolean>`(group_id, member_id) in (${list})`;
  }

  get #pairBatch(): number {
    return this.#engine === 'postgres' ? 100_000 : 500;
  }

  /** Creates or updates groups; rows that set the same columns share a statement. */
  async upsert(tenantId: string, rows: readonly GroupRowWrite[]): Promise<void> {
    for (const { columns, rows: group } of byShape(rows, ['id'])) {
      for (const batch of inBatches(group)) {
        await this.#db
          .insertInto('groups')
          .values(batch.map((row) => ({ ...row, tenant_id: tenantId }) as GroupsTable))
          .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet((eb) => Object.fromEntries(columns.map((c) => [c, eb.ref(`excluded.${c}`)])) as never))
          .execute();
      }
    }
  }

  /** Sets the same bookkeeping values on many groups at once. */
  async touch(tenantId: string, ids: readonly string[], values: Pick<Partial<GroupsTable>, 'synced_at' | 'seen_run_id'>): Promise<void> {
    for (const batch of inBatches(ids)) await this.#db.updateTable('groups').set(values).where('tenant_id', '=', tenantId).where('id', 'in', batch).execute();
  }

  /**
   * Adds or re-marks memberships. A row whose `seen_run_id` is null (a delta
   * round) keeps the mark a full listing gave it.
   */
  async addMembers(tenantId: string, rows: readonly MembershipWrite[]): Promise<void> {
    const keep = rows.filter((row) => row.seen_run_id === null).map(({ seen_run_id: _kept, ...row }) => row);
    const shapes = [...byShape(rows.filter((row) => row.seen_run_id !== null), ['group_id', 'member_id']), ...byShape(keep, ['group_id', 'member_id'])];
    for (const { columns, rows: group } of shapes) {
      // 1,000 rows of five values stay far under SQLite's parameter limit.
      for (const batch of inBatches(group)) {
        await this.#db
          .insertInto('group_members')
          .values(batch.map((row) => ({ ...row, tenant_id: tenantId })))
          .onConflict((oc) => oc.columns(['tenant_id', 'group_id', 'member_id']).doUpdateSet((eb) => Object.fromEntries(columns.map((c) => [c, eb.ref(`excluded.${c}`)])) as never))
          .execute();
      }
    }
  }

  /**
   * Inserts memberships the page's read did not find; returns those really
   * inserted (`on conflict do nothing returning`, on both engines), so an event
   * is owed only for a row that was not there. Any that were there after all
   * are updated as `addMembers` does.
   */
  async insertMembers(tenantId: string, rows: readonly MembershipWrite[]): Promise<MembershipRow[]> {
    const inserted: MembershipRow[] = [];
    for (const batch of inBatches(rows)) {
      inserted.push(
        ...(await this.#db
          .insertInto('group_members')
          .values(batch.map((row) => ({ ...row, tenant_id: tenantId })))
          .onConflict((oc) => oc.columns(['tenant_id', 'group_id', 'member_id']).doNothing())
          .returning(MEMBERSHIP_KEY)
          .execute()),
      );
    }
    if (inserted.length < rows.length) {
      const fresh = new Set(inserted.map((row) => `${row.group_id} ${row.member_id}`));
      await this.addMembers(
        tenantId,
        rows.filter((row) => !fresh.has(`${row.group_id} ${row.member_id}`)),
      );
    }
    return inserted;
  }

  /**
   * Inserts memberships of a round that began with none stored (`holdsNoMembership`), which are all new unless
   * Graph listed a pair on two pages: plain inserts over one array per column, with no conflict clause and nothing
   * returned. Should a pair be there already, the page's inserts are undone to a savepoint and made again as
   * `insertMembers` makes them, which skips it. Returns the rows inserted. Only inside a transaction (a page's).
   * PostgreSQL only: on SQLite a first round of 200,000 memberships measured 10-25% slower this way with no
   * pair met twice (likely the journal SQLite keeps of what a savepoint's statements change; not measured further).
   */
  async insertFirstMembers(tenantId: string, rows: readonly MembershipWrite[]): Promise<MembershipRow[]> {
    if (this.#engine !== 'postgres') return this.insertMembers(tenantId, rows);
    if (rows.length === 0) return [];
    await sql`savepoint first_members`.execute(this.#db);
    try {
      for (const batch of inBatches(rows, PLAIN_BATCH)) {
        const columns = [batch.map((row) => row.group_id), batch.map((row) => row.member_id), batch.map((row) => row.member_type), batch.map((row) => row.seen_run_id)];
        await this.#db.executeQuery(CompiledQuery.raw(POSTGRES_PLAIN_INSERT, [tenantId, ...columns]));
      }
    } catch (err) {
      if (!isDuplicate(err)) throw err;
      await sql`rollback to savepoint first_members`.execute(this.#db);
      await sql`release savepoint first_members`.execute(this.#db);
      return this.insertMembers(tenantId, rows);
    }
    await sql`release savepoint first_members`.execute(this.#db);
    return rows.map(({ group_id, member_id, member_type }) => ({ group_id, member_id, member_type }));
  }

  /** Removes the memberships `[group, member]`, across groups in one statement; returns those that were there. */
  async removeMembers(tenantId: string, pairs: readonly (readonly [string, string])[]): Promise<MembershipRow[]> {
    const removed: MembershipRow[] = [];
    for (const batch of inBatches(pairs, this.#pairBatch)) {
      removed.push(...(await this.#db.deleteFrom('group_members').where('tenant_id', '=', tenantId).where(this.#among(batch)).returning(MEMBERSHIP_KEY).execute()));
    }
    return removed;
  }

  /** Whether the tenant has no membership stored at all. */
  async holdsNoMembership(tenantId: string): Promise<boolean> {
    return (await this.#db.selectFrom('group_members').select('group_id').where('tenant_id', '=', tenantId).limit(1).executeTakeFirst()) === undefined;
  }

  /** Groups marked by the run: seen by a full listing, or to be removed at the end of a delta round. */
  async countMarked(tenantId: string, runId: string): Promise<number> {
    const row = await this.#db.selectFrom('groups').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).where('seen_run_id', '=', runId).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Groups and memberships the round leaves pending (a removed group's with it): the mass-deletion guard weighs them together. */
  async countPending(tenantId: string, runId: string, kind: RoundKind): Promise<number> {
    const groups = await this.#db.selectFrom('groups').select((eb) => eb.fn.countAll<number>().as('n')).where(pendingGroups(tenantId, runId, kind)).executeTakeFirstOrThrow();
    const going = (eb: ExpressionBuilder<Database, 'group_members'>) =>
      kind === 'full' ? unseenMemberships(tenantId, runId)(eb) : eb.and([eb('tenant_id', '=', tenantId), eb('group_id', 'in', eb.selectFrom('groups').select('groups.id').where(pendingGroups(tenantId, runId, kind)))]);
    const members = await this.#db.selectFrom('group_members').select((eb) => eb.fn.countAll<number>().as('n')).where(going).executeTakeFirstOrThrow();
    return Number(groups.n) + Number(members.n);
  }

  /** Groups and memberships of the tenant. */
  async total(tenantId: string): Promise<number> {
    const groups = await this.#db.selectFrom('groups').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    const members = await this.#db.selectFrom('group_members').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenantId).executeTakeFirstOrThrow();
    return Number(groups.n) + Number(members.n);
  }

  /**
   * Removes the groups the round leaves pending with every membership of and
   * in them, and (after a full listing) the memberships it did not see.
   * Returns how many groups and memberships went, and which.
   */
  async removePending(tenantId: string, runId: string, kind: RoundKind): Promise<PendingRemoval> {
    const pendingIds = (eb: ExpressionBuilder<Database, 'group_members'>) => eb.selectFrom('groups').select('groups.id').where(pendingGroups(tenantId, runId, kind));
    const memberships = await this.#db
      .deleteFrom('group_members')
      .where('tenant_id', '=', tenantId)
      .where((eb) => eb.or([eb('group_id', 'in', pendingIds(eb)), eb.and([eb('member_type', '=', 'group'), eb('member_id', 'in', pendingIds(eb))])]))
      .returning(MEMBERSHIP_KEY)
      .execute();
    if (kind === 'full') memberships.push(...(await this.#db.deleteFrom('group_members').where(unseenMemberships(tenantId, runId)).returning(MEMBERSHIP_KEY).execute()));
    const groups = await this.#db.deleteFrom('groups').where(pendingGroups(tenantId, runId, kind)).returning(['id', ...GROUP_DATA_COLUMNS]).execute();
    return { removed: memberships.length + groups.length, memberships, groups };
  }

  /** Keeps a discarded delta round's removals from being applied by a later round. */
  async unmarkPendingRemovals(tenantId: string, runId: string): Promise<void> {
    await this.#db.updateTable('groups').set({ seen_run_id: null }).where(pendingGroups(tenantId, runId, 'delta')).execute();
  }

  /** Ids of the tenant's groups stored as soft-deleted. */
  async softDeletedIds(tenantId: string): Promise<string[]> {
    const rows = await this.#db.selectFrom('groups').select('id').where('tenant_id', '=', tenantId).where('deleted_at', 'is not', null).execute();
    return rows.map((row) => row.id);
  }

  /**
   * Groups among `ids` (soft-deleted in Graph) that a full listing did not see:
   * kept soft-deleted with their memberships (restorable, rule 26). Returns the
   * groups newly soft-deleted, as they are now.
   */
  async keepSoftDeleted(tenantId: string, runId: string, ids: readonly string[], now: number): Promise<RemovedGroup[]> {
    const newly: RemovedGroup[] = [];
    for (const batch of inBatches(ids)) {
      const unseen = pendingGroups(tenantId, runId, 'full');
      newly.push(...(await this.#db.updateTable('groups').set({ deleted_at: now, seen_run_id: runId, updated_at: now }).where(unseen).where('id', 'in', batch).where('deleted_at', 'is', null).returning(['id', ...GROUP_DATA_COLUMNS]).execute()));
      await this.#db.updateTable('groups').set({ seen_run_id: runId }).where(unseen).where('id', 'in', batch).execute();
      await this.#db.updateTable('group_members').set({ seen_run_id: runId }).where('tenant_id', '=', tenantId).where('group_id', 'in', batch).execute();
    }
    return newly;
  }

  /** A tenant leaving Roster: its groups, memberships, group cursor and group runs. */
  async deleteForTenant(tenantId: string): Promise<void> {
    for (const table of ['group_members', 'groups', 'group_sync_state', 'group_sync_runs'] as const) await this.#db.deleteFrom(table).where('tenant_id', '=', tenantId).execute();
  }

  /** As for users: PostgreSQL plans from stale statistics after a large listing. Best effort. */
  async refreshStatistics(): Promise<void> {
    if (this.#engine !== 'postgres') return;
    await sql`vacuum (analyze) groups, group_members`.execute(this.#db).catch(() => {});
  }
}

/** Groups a run would remove: those a full listing did not see, or those a delta round reported deleted. */
function pendingGroups(tenantId: string, runId: string, kind: RoundKind) {
  return (eb: ExpressionBuilder<Database, 'groups'>) =>
    eb.and([eb('groups.tenant_id', '=', tenantId), kind === 'full' ? eb.or([eb('groups.seen_run_id', 'is', null), eb('groups.seen_run_id', '!=', runId)]) : eb('groups.seen_run_id', '=', runId)]);
}

function unseenMemberships(tenantId: string, runId: string) {
  return (eb: ExpressionBuilder<Database, 'group_members'>) => eb.and([eb('tenant_id', '=', tenantId), eb.or([eb('seen_run_id', 'is', null), eb('seen_run_id', '!=', runId)])]);
}
