import { sql, type ExpressionBuilder, type Kysely, type SelectQueryBuilder } from 'kysely';
import type { Engine } from './database.ts';
import type { Database, UsersTable } from './schema.ts';
import { apiUsersJsonArray } from './user-json.ts';

export const USER_SORTS = ['name', 'upn', 'mail', 'department'] as const;
export type UserSort = (typeof USER_SORTS)[number];
export const USER_STATES = ['all', 'active', 'disabled', 'deleted', 'guest'] as const;
export type UserStateFilter = (typeof USER_STATES)[number];

/** A text search counts its matches up to this many. */
export const SEARCH_COUNT_CAP = 10_000;

const SORT_COLUMNS = { name: 'display_name', upn: 'user_principal_name', mail: 'mail', department: 'department' } as const satisfies Record<UserSort, keyof UsersTable>;

export interface UserQuery {
  search?: string;
  state?: UserStateFilter;
  sort?: UserSort;
  descending?: boolean;
}

/** A user as the admin pages show them: every synced property. */
export interface DirectoryUser {
  id: string;
  displayName: string | null;
  givenName: string | null;
  surname: string | null;
  mail: string | null;
  userPrincipalName: string | null;
  jobTitle: string | null;
  department: string | null;
  officeLocation: string | null;
  accountEnabled: boolean;
  userType: string | null;
  createdDateTime: string | null;
  employeeId: string | null;
  companyName: string | null;
  mobilePhone: string | null;
  businessPhones: string[];
  deletedAt: number | null;
  /** The role Roster acts on: the higher of `assignedRole` and `mappedRole`. */
  rosterRole: UsersTable['roster_role'];
  /** The role set by hand (or at sign-up). */
  assignedRole: UsersTable['roster_role'];
  /** The role the tenant's group mappings give, as of the last sign-in or sync. */
  mappedRole: UsersTable['mapped_role'];
  lastSignInAt: number | null;
  syncedAt: number | null;
  updatedAt: number;
  /** 'deleted' (restorable in Entra), 'disabled', 'guest' or 'active'. */
  status: 'active' | 'disabled' | 'deleted' | 'guest';
}

/** A page of users as the API's JSON array, ready to send. */
export interface UserJsonPage {
  /** `[{...}, ...]` in UTF-8. */
  json: Buffer;
  /** The id of the page's last user (the next page's keyset position); null when the page is empty. */
  last: string | null;
  /** Whether users follow this page. */
  more: boolean;
}

/** The role Roster acts on: admin when made one by hand or by a group mapped to admin. */
function effectiveRole(row: Pick<UsersTable, 'roster_role' | 'mapped_role'>): UsersTable['roster_role'] {
  return row.roster_role === 'admin' || row.mapped_role === 'admin' ? 'admin' : 'member';
}

/** Admins by either path, as a filter on `users`. */
function isAdminRow(eb: ExpressionBuilder<Database, 'users'>) {
  return eb.or([eb('roster_role', '=', 'admin'), eb('mapped_role', '=', 'admin')]);
}

/**
 * Admins by either path who can still sign in, as a filter on `users as admin`:
 * one deleted or disabled in the directory leaves the organisation without an
 * admin who can act, so it may be claimed.
 */
function isLiveAdmin(eb: ExpressionBuilder<Database & { admin: UsersTable }, 'admin'>) {
  return eb.and([eb.or([eb('admin.roster_role', '=', 'admin'), eb('admin.mapped_role', '=', 'admin')]), eb('admin.deleted_at', 'is', null), eb('admin.account_enabled', '=', 1)]);
}

function toDirectoryUser(row: UsersTable): DirectoryUser {
  const status = row.deleted_at !== null ? 'deleted' : row.account_enabled !== 1 ? 'disabled' : row.user_type === 'Guest' ? 'guest' : 'active';
  return {
    id: row.id,
    displayName: row.display_name,
    givenName: row.given_name,
    surname: row.surname,
    mail: row.mail,
    userPrincipalName: row.user_principal_name,
    jobTitle: row.job_title,
    department: row.department,
    officeLocation: row.office_location,
    accountEnabled: row.account_enabled === 1,
    userType: row.user_type,
    createdDateTime: row.created_date_time,
    employeeId: row.employee_id,
    companyName: row.company_name,
    mobilePhone: row.mobile_phone,
    businessPhones: row.business_phones ? (JSON.parse(row.business_phones) as string[]) : [],
    deletedAt: row.deleted_at,
    rosterRole: effectiveRole(row),
    assignedRole: row.roster_role,
    mappedRole: row.mapped_role,
    lastSignInAt: row.last_sign_in_at,
    syncedAt: row.synced_at,
    updatedAt: Number(row.updated_at),
    status,
  };
}

/** The sort key as the `users_by_*` indexes hold it, so a sorted page is an index walk. */
function sortKey(sort: UserSort) {
  return sql<string>`lower(coalesce(${sql.ref(SORT_COLUMNS[sort])}, ''))`;
}

/** A row's place in a sorted listing: its sort key (as `sortKey` computes it) and its id, which breaks ties. */
export interface UserBoundary {
  key: string;
  id: string;
}

/** Where a page of the users listing starts. */
export interface UserPageRequest {
  limit: number;
  /** The users after this row, in the page's order. */
  after?: UserBoundary;
  /** The users just before this row, in the page's order. */
  before?: UserBoundary;
  /** The last page. */
  fromEnd?: boolean;
  /** Skips this many users (bookmarked page numbers; costs a walk past them). */
  offset?: number;
}

export interface UserPage {
  users: DirectoryUser[];
  total: number;
  /** The total reached the count cap of a text search: there are at least `total` matches. */
  totalIsAtLeast: boolean;
  hasPrevious: boolean;
  hasNext: boolean;
  /** The first and last rows shown, to page from; null when the page is empty. */
  first: UserBoundary | null;
  last: UserBoundary | null;
}

/**
 * Rows past `boundary` in the order given: `(key, id)` as one row value, which PostgreSQL
 * compares by walking the `users_by_*` index from the boundary, never from the start.
 */
function beyondBoundary(sort: UserSort, descending: boolean, boundary: UserBoundary, inclusive: boolean) {
  const operator = descending ? (inclusive ? '<=' : '<') : inclusive ? '>=' : '>';
  return sql<boolean>`(${sortKey(sort)}, ${sql.ref('id')}) ${sql.raw(operator)} (${boundary.key}, ${boundary.id})`;
}

/** `LIKE` treats `%` and `_` as wildcards; a search for them means the characters themselves. */
function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** FTS5's trigram index serves text of at least this many characters; shorter text matches no trigram. */
const TRIGRAM_LENGTH = 3;

/** Whether SQLite's trigram table can serve a search for this text (counted in characters, not UTF-16 units). */
function usesTrigrams(search: string): boolean {
  return [...search].length >= TRIGRAM_LENGTH;
}

/**
 * The text as one FTS5 phrase: inside double quotes every character is text
 * (`*`, `OR`, `NEAR(`, `:`, `^` included) and a double quote is written twice.
 * With the trigram tokenizer a phrase matches wherever it occurs as a substring.
 */
export function ftsPhrase(text: string): string {
  return `"${text.replaceAll('"', '""')}"`;
}

type UsersQuery = SelectQueryBuilder<Database, 'users', object>;

/** Where a page's rows start: the order read in, past (or from) which boundary row, and how many of them at most. */
interface RankedAt {
  descending: boolean;
  boundary?: UserBoundary;
  inclusive: boolean;
  upTo: number;
}

const SEARCHED_COLUMNS = ['display_name', 'mail', 'user_principal_name', 'department'] as const;

/**
 * Case-insensitive "contains" on the searched columns. PostgreSQL's ILIKE can
 * use the trigram indexes of migration 0004. On SQLite, text of 3 characters
 * or more is looked up in the trigram table of migration 0017 by the user's
 * key; shorter text has no trigram, so LIKE (which ignores ASCII case) scans
 * the narrow index of migration 0006.
 */
function matchesSearch(eb: ExpressionBuilder<Database, 'users'>, tenantId: string, search: string, engine: Engine, trigrams: boolean) {
  if (engine === 'sqlite' && trigrams && usesTrigrams(search)) {
    return eb('id', 'in', sql<string>`(select id from users_search_text where users_search_text match ${ftsPhrase(search)} and tenant_id = ${tenantId})`);
  }
  const pattern = containsPattern(search);
  const like = engine === 'postgres' ? 'ilike' : 'like';
  return eb.or(SEARCHED_COLUMNS.map((column) => eb(column, like, sql<string>`${pattern} escape '\\'`)));
}

/**
 * `trigrams: true` looks the text up in SQLite's trigram table: a list of every match, for counting and collecting them.
 * Without it each row is tested as it comes, which suits a walk of an index that stops after a page or batch (export,
 * API pages): the trigram list would be drawn up whole again for every batch.
 */
function applyFilters(query: UsersQuery, tenantId: string, filter: UserQuery, engine: Engine, { trigrams = false } = {}): UsersQuery {
  let q = query.where('tenant_id', '=', tenantId);
  const search = filter.search?.trim();
  if (search) q = q.where((eb: ExpressionBuilder<Database, 'users'>) => matchesSearch(eb, tenantId, search, engine, trigrams));
  switch (filter.state ?? 'all') {
    case 'active':
      q = q.where('deleted_at', 'is', null).where('account_enabled', '=', 1);
      break;
    case 'disabled':
      q = q.where('deleted_at', 'is', null).where('account_enabled', '=', 0);
      break;
    case 'deleted':
      q = q.where('deleted_at', 'is not', null);
      break;
    case 'guest':
      q = q.where('user_type', '=', 'Guest');
      break;
  }
  return q;
}

export interface SignedInIdentity {
  tenantId: string;
  objectId: string;
  displayName: string | null;
  /** Shown only; never used to find or link an account. */
  username: string | null;
  email: string | null;
}

export interface UserRecord {
  tenantId: string;
  id: string;
  displayName: string | null;
  userPrincipalName: string | null;
  mail: string | null;
  accountEnabled: boolean;
  deleted: boolean;
  rosterRole: UsersTable['roster_role'];
  lastSignInAt: number | null;
}

/** The columns a `UserRecord` is made of. */
export type UserRecordRow = Pick<UsersTable, 'tenant_id' | 'id' | 'display_name' | 'user_principal_name' | 'mail' | 'account_enabled' | 'deleted_at' | 'roster_role' | 'mapped_role' | 'last_sign_in_at'>;

export function userRecordOf(row: UserRecordRow): UserRecord {
  return {
    tenantId: row.tenant_id,
    id: row.id,
    displayName: row.display_name,
    userPrincipalName: row.user_principal_name,
    mail: row.mail,
    accountEnabled: row.account_enabled === 1,
    deleted: row.deleted_at !== null,
    rosterRole: effectiveRole(row),
    lastSignInAt: row.last_sign_in_at,
  };
}

export class UserRepository {
  readonly #db: Kysely<Database>;
  readonly #engine: Engine;

  constructor(db: Kysely<Database>, engine: Engine = 'sqlite') {
    this.#db = db;
    this.#engine = engine;
  }

  /** Looks a user up by `(tid, oid)`, the only identity Roster keys on. */
  async get(tenantId: string, id: string): Promise<UserRecord | undefined> {
    const row = await this.#db
      .selectFrom('users')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? userRecordOf(row) : undefined;
  }

  /** Creates or refreshes the user at sign-in; mutable claims update the row, never its key. */
  async recordSignIn(identity: SignedInIdentity, now: number, role?: UsersTable['roster_role']): Promise<UserRecord> {
    const changes = {
      display_name: identity.displayName,
      user_principal_name: identity.username,
      mail: identity.email,
      last_sign_in_at: now,
      updated_at: now,
      ...(role ? { roster_role: role } : {}),
    };
    await this.#db
      .insertInto('users')
      .values({ tenant_id: identity.tenantId, id: identity.objectId, account_enabled: 1, roster_role: role ?? 'member', ...changes })
      .onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet(changes))
      .execute();
    return (await this.get(identity.tenantId, identity.objectId))!;
  }

  /**
   * One page of a tenant's users for the admin pages; the tenant always comes from the session.
   * `after`/`before` page by keyset from a boundary row, so a deep page costs what the first
   * one does; `offset` remains for bookmarked page numbers, `fromEnd` gives the last page.
   * `tenantUserCount` (kept by the database, see migration 0007) spares the count of an unfiltered page.
   */
  async search(tenantId: string, filter: UserQuery, page: UserPageRequest, tenantUserCount?: number): Promise<UserPage> {
    const sort = filter.sort ?? 'name';
    const matching = () => applyFilters(this.#db.selectFrom('users'), tenantId, filter, this.#engine, { trigrams: true });
    const searched = Boolean(filter.search?.trim());
    const counting = (async (): Promise<{ total: number; totalIsAtLeast: boolean }> => {
      if (!searched && (filter.state ?? 'all') === 'all' && tenantUserCount !== undefined) return { total: tenantUserCount, totalIsAtLeast: false };
      if (!searched) return { total: Number((await matching().select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n), totalIsAtLeast: false };
      const matches = await this.#countSearchMatches(tenantId, filter, matching());
      return { total: Math.min(matches, SEARCH_COUNT_CAP), totalIsAtLeast: matches > SEARCH_COUNT_CAP };
    })();
    // Awaited below; handled now so a failed count cannot surface as an unhandled rejection while the page loads.
    counting.catch(() => undefined);
    // Walking the sort index finds a page of frequent matches at once, but crosses the whole tenant when the matches
    // sort together (a first name, sorted by name). Up to the cap, the matches are collected from the search index and
    // sorted, costing about what counting them did; past it they are frequent enough to walk, testing each row as it comes.
    const collected = searched && !(await counting).totalIsAtLeast;
    // On SQLite the trigram table's copy of the text holds every sort key: it ranks the matches itself, and only the
    // rows a page needs are read from `users` rather than every match.
    const text = filter.search?.trim() ?? '';
    const ranked = collected && this.#engine === 'sqlite' && usesTrigrams(text) && (filter.state ?? 'all') === 'all';
    const source = (at: RankedAt): UsersQuery => {
      if (ranked) return this.#rankedMatches(tenantId, text, sort, at);
      return collected ? this.#collected(matching) : applyFilters(this.#db.selectFrom('users'), tenantId, filter, this.#engine);
    };
    // Rows in the page's order (`forward`) or against it, one past the limit to learn whether more follow.
    const walk = async (from: { boundary?: UserBoundary; forward: boolean; offset?: number }) => {
      const descending = (filter.descending ?? false) !== !from.forward;
      const at = { descending, boundary: from.boundary, inclusive: false, upTo: (from.offset ?? 0) + page.limit + 1 };
      const rows = await this.#sorted(() => source(at).selectAll().select(sortKey(sort).as('sort_key')), sort, descending, { boundary: from.boundary, limit: page.limit + 1, offset: from.offset });
      const more = rows.length > page.limit;
      const shown = rows.slice(0, page.limit);
      return { rows: from.forward ? shown : shown.reverse(), more };
    };
    // Whether any matching user lies at or beyond the boundary in the given direction: one step of the index.
    const anyFrom = async (boundary: UserBoundary, forward: boolean) => {
      const descending = (filter.descending ?? false) !== !forward;
      const at = { descending, boundary, inclusive: true, upTo: 1 };
      return (await this.#sorted(() => source(at).select(['id', sortKey(sort).as('sort_key')]), sort, descending, { boundary, inclusive: true, limit: 1 })).length > 0;
    };

    let rows: (UsersTable & { sort_key: string })[];
    let hasPrevious: boolean;
    let hasNext: boolean;
    if (page.after) {
      const [found, anyBefore] = await Promise.all([walk({ boundary: page.after, forward: true }), anyFrom(page.after, false)]);
      rows = found.rows;
      hasNext = found.more;
      hasPrevious = anyBefore;
    } else if (page.before) {
      const [found, anyAfter] = await Promise.all([walk({ boundary: page.before, forward: false }), anyFrom(page.before, true)]);
      if (found.more) {
        rows = found.rows;
        hasPrevious = true;
        hasNext = anyAfter;
      } else {
        // Back at the start: the first page in full, rather than what was left before the boundary.
        const first = await walk({ forward: true });
        rows = first.rows;
        hasPrevious = false;
        hasNext = first.more;
      }
    } else if (page.fromEnd) {
      const found = await walk({ forward: false });
      rows = found.rows;
      hasPrevious = found.more;
      hasNext = false;
    } else {
      const offset = page.offset ?? 0;
      const found = await walk({ forward: true, offset });
      rows = found.rows;
      hasNext = found.more;
      hasPrevious = offset > 0;
    }
    const { total, totalIsAtLeast } = await counting;
    const boundaryOf = (row: (typeof rows)[number] | undefined): UserBoundary | null => (row ? { key: row.sort_key, id: row.id } : null);
    return { users: rows.map(toDirectoryUser), total, totalIsAtLeast, hasPrevious, hasNext, first: boundaryOf(rows[0]), last: boundaryOf(rows.at(-1)) };
  }

  /**
   * The matching users as a table to sort, read through the search index rather than the sort index. SQLite reads
   * every match by rowid; PostgreSQL's planner would fold a plain subquery back into a walk of the sort index, and an
   * OFFSET keeps it apart (its estimate of a "contains" match is a guess, so it may walk otherwise).
   */
  #collected(matching: () => UsersQuery): UsersQuery {
    if (this.#engine === 'sqlite') return this.#db.selectFrom('users').where(sql`rowid`, 'in', matching().select(sql<number>`rowid`.as('r')));
    return this.#db.selectFrom(matching().selectAll().offset(0).as('users')) as unknown as UsersQuery;
  }

  /**
   * SQLite, a search of the trigram table without a state filter: the users among the first `upTo` matches in the
   * given order from the boundary, ranked in the trigram table (its copy of the four columns gives the same sort keys
   * as `users`), so the page reads those rows rather than every match. Looked up by rowid, so the page's query cannot
   * walk the sort index across non-matches instead.
   */
  #rankedMatches(tenantId: string, text: string, sort: UserSort, at: RankedAt): UsersQuery {
    const direction = sql.raw(at.descending ? 'desc' : 'asc');
    const beyond = at.boundary ? sql` and ${beyondBoundary(sort, at.descending, at.boundary, at.inclusive)}` : sql``;
    const first = sql<string>`(select id from users_search_text where users_search_text match ${ftsPhrase(text)} and tenant_id = ${tenantId}${beyond}
      order by ${sortKey(sort)} ${direction}, id ${direction} limit ${at.upTo})`;
    return this.#db.selectFrom('users').where(sql`rowid`, 'in', this.#db.selectFrom('users').select(sql<number>`rowid`.as('r')).where('tenant_id', '=', tenantId).where('id', 'in', first));
  }

  /**
   * The matches of a text search, counted up to one past the cap: past it, "10,000+" says enough.
   * Without a state filter, SQLite counts the tenant's matches in the trigram table and its keys
   * (their triggers keep a row for every user), sparing a lookup of each match in `users`.
   */
  async #countSearchMatches(tenantId: string, filter: UserQuery, matching: UsersQuery): Promise<number> {
    const search = filter.search?.trim() ?? '';
    if (this.#engine === 'sqlite' && usesTrigrams(search) && (filter.state ?? 'all') === 'all') {
      // Each match's tenant from users_search_rowids, by the trigram row's rowid: a narrower read than the row's copy of the text.
      const { rows } = await sql<{ n: number }>`
        select count(*) as n from (
          select 1 from users_search_text cross join users_search_rowids on users_search_rowids.search_rowid = users_search_text.rowid
          where users_search_text match ${ftsPhrase(search)} and users_search_rowids.tenant_id = ${tenantId} limit ${SEARCH_COUNT_CAP + 1})`.execute(this.#db);
      return Number(rows[0]!.n);
    }
    const count = await this.#db
      .selectFrom(matching.select(sql<number>`1`.as('one')).limit(SEARCH_COUNT_CAP + 1).as('capped'))
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(count.n);
  }

  /**
   * Every user matching the filter, in the page's order, fetched in batches
   * by keyset so an export of any size holds one batch in memory.
   */
  async *exportAll(tenantId: string, filter: UserQuery, batchSize = 1000): AsyncGenerator<DirectoryUser> {
    const sort = filter.sort ?? 'name';
    let after: UserBoundary | undefined;
    for (;;) {
      const batch = () => applyFilters(this.#db.selectFrom('users'), tenantId, filter, this.#engine).selectAll().select(sortKey(sort).as('sort_key'));
      const rows = await this.#sorted(batch, sort, filter.descending ?? false, { boundary: after, limit: batchSize });
      for (const row of rows) yield toDirectoryUser(row);
      if (rows.length < batchSize) return;
      const last = rows.at(-1)!;
      after = { key: last.sort_key, id: last.id };
    }
  }

  /**
   * Up to `limit` rows of `query` in sort order, past `boundary` (or including it) when given.
   * PostgreSQL walks the sort index from the boundary on the row value `(key, id)`. SQLite
   * compares a row value holding an indexed expression without the index, so there the
   * boundary's own key and the keys beyond it are read as two index ranges.
   */
  async #sorted<Row extends { id: string; sort_key: string }>(
    query: () => SelectQueryBuilder<Database, 'users', Row>,
    sort: UserSort,
    descending: boolean,
    at: { boundary?: UserBoundary; inclusive?: boolean; limit: number; offset?: number },
  ): Promise<Row[]> {
    const direction = descending ? 'desc' : 'asc';
    const { boundary, limit } = at;
    if (!boundary || this.#engine === 'postgres') {
      const from = boundary ? query().where(beyondBoundary(sort, descending, boundary, at.inclusive ?? false)) : query();
      return from.orderBy(sortKey(sort), direction).orderBy('id', direction).limit(limit).offset(at.offset ?? 0).execute();
    }
    const beyond = descending ? '<' : '>';
    const tied = await query()
      .where(sortKey(sort), '=', boundary.key)
      .where('id', at.inclusive ? `${beyond}=` : beyond, boundary.id)
      .orderBy('id', direction)
      .limit(limit)
      .execute();
    if (tied.length >= limit) return tied;
    const later = await query().where(sortKey(sort), beyond, boundary.key).orderBy(sortKey(sort), direction).orderBy('id', direction).limit(limit - tied.length).execute();
    return [...tied, ...later];
  }

  /**
   * One page of a tenant's users in id order for programs: keyset on the
   * primary key (`after` is the last id of the previous page), never OFFSET,
   * so every page costs the same however deep it is.
   */
  async pageById(tenantId: string, filter: UserQuery & { updatedSince?: number }, page: { after?: string; limit: number }): Promise<DirectoryUser[]> {
    const rows = await this.#matchingAfter(tenantId, filter, page.after).selectAll().orderBy('id').limit(page.limit).execute();
    return rows.map(toDirectoryUser);
  }

  /**
   * The same page as the API's JSON array. On SQLite the database writes it:
   * reading node:sqlite's row objects into JavaScript costs more than the
   * query itself. On PostgreSQL the rows cross the wire either way and the
   * server's JSON functions cost more than `write`, so `write` turns the
   * users into the array.
   */
  async apiPageById(tenantId: string, filter: UserQuery & { updatedSince?: number }, page: { after?: string; limit: number }, write: (users: DirectoryUser[]) => Buffer): Promise<UserJsonPage> {
    if (this.#engine === 'postgres') {
      const users = await this.pageById(tenantId, filter, { ...page, limit: page.limit + 1 });
      const shown = users.slice(0, page.limit);
      return { json: write(shown), last: shown.at(-1)?.id ?? null, more: users.length > page.limit };
    }
    const rows = this.#matchingAfter(tenantId, filter, page.after).selectAll().orderBy('id').limit(page.limit).as('page');
    const { json, last, count } = await this.#db
      .selectFrom(rows)
      .select((eb) => [apiUsersJsonArray().as('json'), eb.fn.max('id').as('last'), eb.fn.countAll<number>().as('count')])
      .executeTakeFirstOrThrow();
    // A full page asks the index whether users follow, so the last page never costs an empty request.
    const more = last !== null && count === page.limit && (await this.#matchingAfter(tenantId, filter, last).select(sql<number>`1`.as('one')).limit(1).executeTakeFirst()) !== undefined;
    const bytes = json as Uint8Array;
    return { json: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), last, more };
  }

  #matchingAfter(tenantId: string, filter: UserQuery & { updatedSince?: number }, after: string | undefined): UsersQuery {
    let query = applyFilters(this.#db.selectFrom('users'), tenantId, filter, this.#engine);
    if (filter.updatedSince !== undefined) query = query.where('updated_at', '>=', filter.updatedSince);
    return after === undefined ? query : query.where('id', '>', after);
  }

  async detail(tenantId: string, id: string): Promise<DirectoryUser | undefined> {
    const row = await this.#db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return row ? toDirectoryUser(row) : undefined;
  }

  /** Roster's own role: the only thing that makes someone an admin in Roster (never a token claim). */
  async setRole(tenantId: string, id: string, role: UsersTable['roster_role'], now: number): Promise<boolean> {
    const result = await this.#db.updateTable('users').set({ roster_role: role, updated_at: now }).where('tenant_id', '=', tenantId).where('id', '=', id).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Makes the user a Roster admin only if their tenant has none: the first
   * admin of a new sign-up, or a directory administrator claiming an
   * organisation left without one. Returns whether it did.
   */
  async grantFirstAdmin(tenantId: string, id: string, now: number): Promise<boolean> {
    const result = await this.#db
      .updateTable('users')
      .set({ roster_role: 'admin', updated_at: now })
      .where('tenant_id', '=', tenantId)
      .where('id', '=', id)
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('users as admin').select('admin.id').where('admin.tenant_id', '=', tenantId).where(isLiveAdmin))))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async hasAdmin(tenantId: string): Promise<boolean> {
    const row = await this.#db.selectFrom('users as admin').select('admin.id').where('admin.tenant_id', '=', tenantId).where(isLiveAdmin).limit(1).executeTakeFirst();
    return row !== undefined;
  }

  async admins(tenantId: string): Promise<DirectoryUser[]> {
    const rows = await this.#db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).where(isAdminRow).orderBy(sortKey('name')).execute();
    return rows.map(toDirectoryUser);
  }

  async countInTenant(tenantId: string): Promise<number> {
    const row = await this.#db.selectFrom('tenants').select('user_count').where('id', '=', tenantId).executeTakeFirst();
    return Number(row?.user_count ?? 0);
  }
}
