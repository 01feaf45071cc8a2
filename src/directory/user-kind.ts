import { userChangeEvents, userEvents } from '../events/users.ts';
import type { EventDraft } from '../store/events.ts';
import type { Repositories } from '../store/repositories.ts';
import type { UsersTable } from '../store/schema.ts';
import { USER_DATA_COLUMNS, type StoredUser, type UserDataColumn, type UserWrite } from '../store/synced-users.ts';
import type { DeltaItem, FoldContext, KindRows, ObjectChange, ObjectKind, RoundKind } from './object-kind.ts';
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
