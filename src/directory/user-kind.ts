import { userChangeEvents, userEvents } from '../events/users.ts';
import type { EventDraft } from '../store/events.ts';
import type { Repositories } from '../store/repositories.ts';
import type { UsersTable } from '../store/schema.ts';
import { USER_DATA_COLUMNS, type StoredUser, type UserDataColumn, type UserWrite } from '../store/synced-users.ts';
import type { ListedUser } from '../store/synced-users-postgres.ts';
import type { DeltaItem, FoldContext, KindRows, MergedPage, ObjectChange, ObjectKind, RoundKind } from './object-kind.ts';
import { marksByValues, mergeItems, rowChange, type RowMapping } from './row-fold.ts';
import type { WrittenIds } from './written-ids.ts';

/**
 * The user properties Roster keeps, in Graph's schema order. Declared here, not
 * taken from the emulator: the product and its stand-in share no code.
 */
export const SYNCED_PROPERTIES = [
  'id',
  'displayName',
  'givenName',
  'surname',
  'mail',
  'userPrincipalName',
  'jobTitle',
  'department',
  'officeLocation',
  'accountEnabled',
  'userType',
  'createdDateTime',
  'employeeId',
  'companyName',
  'mobilePhone',
  'businessPhones',
] as const;

type GraphProperty = (typeof SYNCED_PROPERTIES)[number];

const COLUMN: Record<Exclude<GraphProperty, 'id'>, UserDataColumn> = {
  displayName: 'display_name',
  givenName: 'given_name',
  surname: 'surname',
  mail: 'mail',
  userPrincipalName: 'user_principal_name',
  jobTitle: 'job_title',
  department: 'department',
  officeLocation: 'office_location',
  accountEnabled: 'account_enabled',
  userType: 'user_type',
  createdDateTime: 'created_date_time',
  employeeId: 'employee_id',
  companyName: 'company_name',
  mobilePhone: 'mobile_phone',
  businessPhones: 'business_phones',
};

type UserRow = Pick<UsersTable, 'id' | 'seen_run_id' | 'deleted_at'> & Partial<Pick<UsersTable, UserDataColumn>>;

function columnValue(property: GraphProperty, value: unknown): unknown {
  if (property === 'accountEnabled') return value === false ? 0 : 1;
  if (property === 'businessPhones') return JSON.stringify(Array.isArray(value) ? value : []);
  return value ?? null;
}

/** A user who can use Roster: neither deleted nor disabled. Sessions end when a sync takes that away. */
function isActive(row: Pick<UsersTable, 'deleted_at'> & Partial<Pick<UsersTable, 'account_enabled'>>): boolean {
  return row.deleted_at === null && row.account_enabled !== 0;
}

const USER_MAPPING: RowMapping<UserRow> = {
  fresh: (id) => ({ id, deleted_at: null, seen_run_id: null }),
  *assign(row, item) {
    for (const property of SYNCED_PROPERTIES) {
      if (property === 'id' || !(property in item)) continue;
      row[COLUMN[property]] = columnValue(property, item[property]) as never;
      yield COLUMN[property];
    }
  },
};

/**
 * A page's users as a full listing's merge takes them: null unless every item
 * is listed (not `@removed`), once, with text where a text column is kept, so
 * that comparing in the database finds exactly what `foldUsers` would.
 */
function listedUsers(items: readonly DeltaItem[]): ListedUser[] | null {
  const users: ListedUser[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    if (item['@removed'] || typeof item.id !== 'string' || seen.has(item.id)) return null;
    seen.add(item.id);
    const user: ListedUser = { id: item.id };
    for (const property of SYNCED_PROPERTIES) {
      if (property === 'id' || !(property in item)) continue;
      const value = columnValue(property, item[property]);
      if (value !== null && typeof value !== 'string' && property !== 'accountEnabled') return null;
      (user as Record<string, unknown>)[COLUMN[property]] = value;
    }
    users.push(user);
  }
  return users;
}

/**
 * A page of `/users/delta` against the stored users: only real changes are
 * written and counted, and sessions end only when a user stops being active
 * here, so a replayed page changes and ends nothing. Pure.
 */
export function foldUsers(items: readonly DeltaItem[], stored: ReadonlyMap<string, StoredUser>, context: FoldContext): ObjectChange<UserWrite>[] {
  const changes: ObjectChange<UserWrite>[] = [];
  for (const [id, working] of mergeItems<UserRow>(items, stored, context, USER_MAPPING)) {
    const before = stored.get(id);
    const { change, write, mark, pendingRemovals } = rowChange<UserRow, UserWrite>(working, before, USER_DATA_COLUMNS, context);
    const ends = before !== undefined && isActive(before) && !isActive(working.row);
    changes.push({ id, change, write, mark, listed: working.listed, ends, pendingRemovals });
  }
  return changes;
}

/** Users over one transaction's repositories; sessions end with the users who stop being active. */
class UserRows implements KindRows<StoredUser, UserWrite> {
  readonly #repos: Repositories;

  constructor(repositories: Repositories) {
    this.#repos = repositories;
  }

  /**
   * When the round began with no user stored, a listed user can only be one an
   * earlier page of this round wrote (Graph may list one twice): only those the
   * round may have written are looked up, usually none.
   */
  stored(tenantId: string, items: readonly DeltaItem[], startedEmpty = false, written?: WrittenIds): Promise<Map<string, StoredUser>> {
    const ids = new Set(items.map((item) => item.id));
    return this.#repos.syncedUsers.stored(tenantId, startedEmpty && written ? [...ids].filter((id) => written.mightHold(id)) : [...ids]);
  }

  holdsNothing(tenantId: string): Promise<boolean> {
    return this.#repos.syncedUsers.holdsNone(tenantId);
  }

  /**
   * PostgreSQL, full rounds: a page whose items are each listed once merges in
   * the database (inserted first when the round began on an empty tenant). The
   * changes are those the fold would find; a new user another writer stored
   * first is left to the usual way.
   */
  async mergePage(tenantId: string, items: readonly DeltaItem[], { runId, kind, now }: FoldContext, startedEmpty: boolean): Promise<MergedPage<StoredUser, UserWrite> | null> {
    const merge = this.#repos.userMerge;
    if (!merge || kind !== 'full') return null;
    const listed = listedUsers(items);
    if (!listed) return null;
    const context = { runId, now };
    const inserted = startedEmpty ? await merge.insertNew(tenantId, listed, context) : new Set<string>();
    const merged = new Map((await merge.merge(tenantId, inserted.size > 0 ? listed.filter((user) => !inserted.has(user.id)) : listed, context)).map((user) => [user.id, user]));
    const changes: ObjectChange<UserWrite>[] = [];
    const stored = new Map<string, StoredUser>();
    const rest: DeltaItem[] = [];
    for (let i = 0; i < listed.length; i++) {
      const user = listed[i]!;
      const result = inserted.has(user.id) ? { outcome: 'created' as const, before: null } : merged.get(user.id);
      if (result?.outcome === 'missed') {
        rest.push(items[i]!);
        continue;
      }
      if (!result) {
        changes.push({ id: user.id, change: 'unchanged', write: null, mark: null, listed: true, ends: false, pendingRemovals: 0 });
        continue;
      }
      const write: UserWrite = { ...user, deleted_at: null, updated_at: now, synced_at: now, seen_run_id: runId };
      const { before } = result;
      if (before) stored.set(user.id, before);
      const ends = before !== null && isActive(before) && !isActive({ ...before, ...write });
      changes.push({ id: user.id, change: before ? 'updated' : 'created', write, mark: null, listed: true, ends, pendingRemovals: 0 });
    }
    const ending = changes.filter((change) => change.ends).map((change) => change.id);
    if (ending.length) await this.#repos.sessions.destroyForUsers(tenantId, ending);
    return { changes, stored, rest };
  }

  async apply(tenantId: string, changes: readonly ObjectChange<UserWrite>[]): Promise<EventDraft[]> {
    const writes = changes.flatMap((change) => (change.write ? [change.write] : []));
    await this.#repos.syncedUsers.upsert(tenantId, writes);
    for (const { values, ids } of marksByValues(changes)) await this.#repos.syncedUsers.touch(tenantId, ids, values);
    const ending = changes.filter((change) => change.ends).map((change) => change.id);
    if (ending.length) await this.#repos.sessions.destroyForUsers(tenantId, ending);
    return [];
  }

  countMarked(tenantId: string, runId: string): Promise<number> {
    return this.#repos.syncedUsers.countMarked(tenantId, runId);
  }

  countPending(tenantId: string, runId: string, kind: RoundKind): Promise<number> {
    return this.#repos.syncedUsers.countPending(tenantId, runId, kind);
  }

  total(tenantId: string): Promise<number> {
    return this.#repos.users.countInTenant(tenantId);
  }

  async removePending(tenantId: string, runId: string, kind: RoundKind, now: number): Promise<number> {
    const pending = await this.#repos.syncedUsers.pendingRows(tenantId, runId, kind);
    if (pending.length === 0) return 0;
    const ids = pending.map((row) => row.id);
    await this.#repos.sessions.destroyForUsers(tenantId, ids);
    const removed = await this.#repos.syncedUsers.removePending(tenantId, runId, kind);
    await this.#repos.events.append(userEvents('user.deleted', tenantId, pending), now);
    return removed;
  }

  async keepSoftDeleted(tenantId: string, runId: string, ids: readonly string[], now: number): Promise<number> {
    const newly = await this.#repos.syncedUsers.keepSoftDeleted(tenantId, runId, ids, now);
    await this.#repos.sessions.destroyForUsers(tenantId, newly);
    if (newly.length > 0 && this.#repos.events.enabled) {
      const rows = await this.#repos.syncedUsers.stored(tenantId, newly);
      await this.#repos.events.append(userEvents('user.soft_deleted', tenantId, [...rows.values()]), now);
    }
    return newly.length;
  }

  unmarkPendingRemovals(tenantId: string, runId: string): Promise<void> {
    return this.#repos.syncedUsers.unmarkPendingRemovals(tenantId, runId);
  }

  softDeletedIds(tenantId: string): Promise<string[]> {
    return this.#repos.syncedUsers.softDeletedIds(tenantId);
  }

  refreshStatistics(): Promise<void> {
    return this.#repos.syncedUsers.refreshStatistics();
  }
}

/** Users: the first kind the engine mirrors. */
export const USERS: ObjectKind<StoredUser, UserWrite> = {
  objects: 'users',
  noun: 'users',
  deltaPath: '/v1.0/users/delta',
  select: SYNCED_PROPERTIES,
  deletedItemsPath: '/v1.0/directory/deletedItems/microsoft.graph.user',
  permission: 'User.Read.All',
  fold: foldUsers,
  rows: (repositories) => new UserRows(repositories),
  runs: (repositories) => repositories.syncRuns,
  cursor: (repositories) => repositories.syncState,
  events: userChangeEvents,
};
