import { CompiledQuery, type Kysely } from 'kysely';
import type { Database, UsersTable } from './schema.ts';
import { USER_DATA_COLUMNS, type StoredUser, type UserDataColumn } from './synced-users.ts';

/** The columns a listing sets: every data column but `deleted_at`, which a listed user never has. */
export const LISTED_COLUMNS = USER_DATA_COLUMNS.filter((column): column is Exclude<UserDataColumn, 'deleted_at'> => column !== 'deleted_at');
export type ListedColumn = (typeof LISTED_COLUMNS)[number];

/** A user as a page of a full listing names it: its id and the columns its item mentioned (a column left out keeps its stored value). */
export type ListedUser = { id: string } & Partial<Pick<UsersTable, ListedColumn>>;

/** What the merge did to each listed user; users it left as they were (only marked seen) are not named. */
export type MergedUser = { id: string } & ({ outcome: 'created'; before: null } | { outcome: 'updated'; before: StoredUser } | { outcome: 'missed'; before: null });

export interface MergeContext {
  runId: string;
  now: number;
}

/** Positional parameters: $1 tenant, $2 run, $3 now, $4 ids, $5 masks, then one array per listed column. */
const FIRST_COLUMN_PARAMETER = 6;
const arrayType = (column: ListedColumn) => (column === 'account_enabled' ? 'int[]' : 'text[]');
const PAGE = `unnest($4::text[], $5::int[], ${LISTED_COLUMNS.map((c, i) => `$${FIRST_COLUMN_PARAMETER + i}::${arrayType(c)}`).join(', ')}) with ordinality as p(id, mask, ${LISTED_COLUMNS.join(', ')}, ord)`;
/** A listed column's value: the item's when it mentioned it, else the stored one (`old` is null for a new user: its default). */
const listedValue = (column: ListedColumn, i: number) => `case when p.mask & ${1 << i} <> 0 then p.${column} else ${column === 'account_enabled' ? 'coalesce(old.account_enabled, 1)' : `old.${column}`} end`;
const INSERTED_COLUMNS = `tenant_id, id, ${LISTED_COLUMNS.join(', ')}, roster_role, synced_at, seen_run_id, updated_at`;

/**
 * A page of new users: inserted unless already stored (a page replayed after a
 * crash, a user listed twice, a user who signed in meanwhile), those returned.
 */
const INSERT_NEW = `insert into users (${INSERTED_COLUMNS})
select $1, p.id, ${LISTED_COLUMNS.map((c, i) => `case when p.mask & ${1 << i} <> 0 then p.${c}${c === 'account_enabled' ? ' else 1' : ''} end`).join(', ')}, 'member', $3, $2, $3
from ${PAGE}
order by p.ord
on conflict (tenant_id, id) do nothing
returning id`;

/**
 * A page merged with the stored users in one statement: each user's columns
 * are compared in the database, every listed user is marked seen by the run,
 * only the changed are given a new `updated_at`, and the new are inserted.
 * Returns the changed users as they were before, the created ones, and any new
 * one another writer inserted first ('missed').
 */
const MERGE = `with merged as materialized (
  select p.ord, p.id, old.id is not null as existed, ${LISTED_COLUMNS.map((c, i) => `${listedValue(c, i)} as ${c}`).join(', ')},
    ${USER_DATA_COLUMNS.map((c) => `old.${c} as old_${c}`).join(', ')}, old.seen_run_id as old_seen_run_id
  from ${PAGE}
  left join users old on old.tenant_id = $1 and old.id = p.id
), judged as materialized (
  select m.*, not m.existed or m.old_deleted_at is not null
    or (${LISTED_COLUMNS.map((c) => `m.${c}`).join(', ')}) is distinct from (${LISTED_COLUMNS.map((c) => `m.old_${c}`).join(', ')}) as changed
  from merged m
), updated as (
  update users u set ${LISTED_COLUMNS.map((c) => `${c} = j.${c}`).join(', ')}, deleted_at = null, synced_at = $3, seen_run_id = $2,
    updated_at = case when j.changed then $3 else u.updated_at end
  from judged j
  where u.tenant_id = $1 and u.id = j.id and j.existed
), inserted as (
  insert into users (${INSERTED_COLUMNS})
  select $1, j.id, ${LISTED_COLUMNS.map((c) => `j.${c}`).join(', ')}, 'member', $3, $2, $3 from judged j where not j.existed order by j.ord
  on conflict (tenant_id, id) do nothing
  returning id
)
select j.id, case when j.existed then 'updated' when i.id is null then 'missed' else 'created' end as outcome,
  ${USER_DATA_COLUMNS.map((c) => `j.old_${c}`).join(', ')}, j.old_seen_run_id
from judged j left join inserted i on i.id = j.id
where j.changed
order by j.ord`;

type MergeRow = { id: string; outcome: MergedUser['outcome'] } & { [C in `old_${UserDataColumn}` | 'old_seen_run_id']: unknown };

/**
 * PostgreSQL only: a full listing's plain pages (every item listed once)
 * written by comparing in the database instead of reading every stored user
 * back. The page travels as one array per column, so each statement has the
 * same text and parameters whatever the page holds.
 */
export class PostgresUserMerge {
  readonly #db: Kysely<Database>;

  constructor(db: Kysely<Database>) {
    this.#db = db;
  }

  /** Inserts the users not stored yet (a first listing into an empty tenant); returns the ids inserted. */
  async insertNew(tenantId: string, users: readonly ListedUser[], context: MergeContext): Promise<Set<string>> {
    if (users.length === 0) return new Set();
    const { rows } = await this.#db.executeQuery<{ id: string }>(CompiledQuery.raw(INSERT_NEW, parameters(tenantId, users, context)));
    return new Set(rows.map((row) => row.id));
  }

  /** Merges the users into the tenant's; each id at most once. */
  async merge(tenantId: string, users: readonly ListedUser[], context: MergeContext): Promise<MergedUser[]> {
    if (users.length === 0) return [];
    const { rows } = await this.#db.executeQuery<MergeRow>(CompiledQuery.raw(MERGE, parameters(tenantId, users, context)));
    return rows.map((row) => {
      if (row.outcome !== 'updated') return { id: row.id, outcome: row.outcome, before: null };
      const before = { id: row.id, seen_run_id: row.old_seen_run_id } as Record<string, unknown>;
      for (const column of USER_DATA_COLUMNS) before[column] = row[`old_${column}`];
      return { id: row.id, outcome: 'updated', before: before as StoredUser };
    });
  }
}

function parameters(tenantId: string, users: readonly ListedUser[], { runId, now }: MergeContext): unknown[] {
  const count = users.length;
  const ids = new Array<string>(count);
  const masks = new Array<number>(count);
  const columns = LISTED_COLUMNS.map(() => new Array<unknown>(count));
  for (let u = 0; u < count; u++) {
    const user = users[u]! as Record<string, unknown>;
    ids[u] = user.id as string;
    let mask = 0;
    for (let i = 0; i < LISTED_COLUMNS.length; i++) {
      const value = user[LISTED_COLUMNS[i]!];
      if (value === undefined) columns[i]![u] = null;
      else {
        columns[i]![u] = value;
        mask |= 1 << i;
      }
    }
    masks[u] = mask;
  }
  return [tenantId, runId, now, ids, masks, ...columns];
}
