import { userChangeEvents, userEvents } from '../events/users.ts';
import type { Repositories } from '../store/repositories.ts';
import type { UsersTable } from '../store/schema.ts';
import { USER_DATA_COLUMNS, type StoredUser, type UserDataColumn, type UserWrite } from '../store/synced-users.ts';
import type { DeltaItem, FoldContext, KindRows, ObjectChange, ObjectKind, RoundKind } from './object-kind.ts';

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
interface WorkingUser {
  row: UserRow;
  /** Columns the page's items named: written even when unchanged, as Graph sent them. */
  mentioned: Set<UserDataColumn>;
  /** Reported as an object (not only as `@removed`). */
  listed: boolean;
  /** The last item about it reported it permanently deleted. */
  removed: boolean;
}

function columnValue(property: GraphProperty, value: unknown): unknown {
  if (property === 'accountEnabled') return value === false ? 0 : 1;
  if (property === 'businessPhones') return JSON.stringify(Array.isArray(value) ? value : []);
  return value ?? null;
}

/** A user who can use Roster: neither deleted nor disabled. Sessions end when a sync takes that away. */
function isActive(row: Pick<UsersTable, 'deleted_at'> & Partial<Pick<UsersTable, 'account_enabled'>>): boolean {
  return row.deleted_at === null && row.account_enabled !== 0;
}

/** What each user becomes after the page's items, in the page's order (duplicates and all). */
function mergeItems(items: readonly DeltaItem[], stored: ReadonlyMap<string, StoredUser>, { runId, kind, now }: FoldContext): Map<string, WorkingUser> {
  const current = new Map<string, WorkingUser>();
  for (const item of items) {
    const before = stored.get(item.id);
    let user = current.get(item.id) ?? (before ? { row: { ...before }, mentioned: new Set<UserDataColumn>(), listed: false, removed: false } : undefined);
    const removed = item['@removed'];
    if (removed) {
      if (!user) continue;
      // A permanent delete waits for the end of the round (rules 8 and 9): a full listing leaves it unseen, a delta round marks it pending.
      if (removed.reason === 'deleted') {
        user.row.seen_run_id = kind === 'delta' ? runId : null;
        user.removed = true;
      } else user.row.deleted_at ??= now;
    } else {
      user ??= { row: { id: item.id, deleted_at: null, seen_run_id: null }, mentioned: new Set(), listed: false, removed: false };
      // Only what the page mentions changes: a partial update never blanks a property.
      for (const property of SYNCED_PROPERTIES) {
        if (property === 'id' || !(property in item)) continue;
        user.row[COLUMN[property]] = columnValue(property, item[property]) as never;
        user.mentioned.add(COLUMN[property]);
      }
      user.row.deleted_at = null;
      user.listed = true;
      user.removed = false;
      if (kind === 'full') user.row.seen_run_id = runId;
      else if (user.row.seen_run_id === runId) user.row.seen_run_id = null;
    }
    current.set(item.id, user);
  }
  return current;
}

/**
 * A page of `/users/delta` against the stored users: only real changes are
 * written and counted, and sessions end only when a user stops being active
 * here, so a replayed page changes and ends nothing. Pure.
 */
export function foldUsers(items: readonly DeltaItem[], stored: ReadonlyMap<string, StoredUser>, context: FoldContext): ObjectChange<UserWrite>[] {
  const { runId, kind, now } = context;
  const changes: ObjectChange<UserWrite>[] = [];
  for (const [id, { row, mentioned, listed, removed }] of mergeItems(items, stored, context)) {
    const before = stored.get(id);
    const columns = USER_DATA_COLUMNS.filter((c) => c in row && (!before || mentioned.has(c) || row[c] !== before[c]));
    const changed = !before || columns.some((c) => row[c] !== before[c]);
    const seenChanged = row.seen_run_id !== (before?.seen_run_id ?? null);
    const pendingRemovals = kind === 'delta' ? Number(row.seen_run_id === runId) - Number(before?.seen_run_id === runId) : 0;
    const ends = before !== undefined && isActive(before) && !isActive(row);
    const bookkeeping = { ...(listed ? { synced_at: now } : {}), ...(seenChanged ? { seen_run_id: row.seen_run_id } : {}) };
    if (changed) {
      const write: UserWrite = { id, updated_at: now };
      for (const c of columns) (write as Record<string, unknown>)[c] = row[c];
      Object.assign(write, bookkeeping);
      const change = !before ? 'created' : before.deleted_at === null && row.deleted_at !== null ? 'soft-deleted' : 'updated';
      changes.push({ id, change, write, mark: null, listed, ends, pendingRemovals });
    } else {
      const mark = listed || seenChanged ? bookkeeping : null;
      changes.push({ id, change: removed ? 'removed' : 'unchanged', write: null, mark, listed, ends, pendingRemovals });
    }
  }
  return changes;
}

/** Users over one transaction's repositories; sessions end with the users who stop being active. */
class UserRows implements KindRows<StoredUser, UserWrite> {
  readonly #repos: Repositories;

  constructor(repositories: Repositories) {
    this.#repos = repositories;
  }

  stored(tenantId: string, ids: readonly string[]): Promise<Map<string, StoredUser>> {
    return this.#repos.syncedUsers.stored(tenantId, ids);
  }

  async apply(tenantId: string, changes: readonly ObjectChange<UserWrite>[]): Promise<void> {
    const writes: UserWrite[] = [];
    // Rows with nothing but bookkeeping share one update per set of values.
    const marks = new Map<string, { values: Record<string, unknown>; ids: string[] }>();
    for (const change of changes) {
      if (change.write) writes.push(change.write);
      else if (change.mark) {
        const key = JSON.stringify(change.mark);
        const group = marks.get(key) ?? { values: change.mark, ids: [] };
        group.ids.push(change.id);
        marks.set(key, group);
      }
    }
    await this.#repos.syncedUsers.upsert(tenantId, writes);
    for (const { values, ids } of marks.values()) await this.#repos.syncedUsers.touch(tenantId, ids, values);
    const ending = changes.filter((change) => change.ends).map((change) => change.id);
    if (ending.length) await this.#repos.sessions.destroyForUsers(tenantId, ending);
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

  refreshStatistics(): Promise<void> {
    return this.#repos.syncedUsers.refreshStatistics();
  }
}

/** Users: the first kind the engine mirrors. */
export const USERS: ObjectKind<StoredUser, UserWrite> = {
  noun: 'users',
  deltaPath: '/v1.0/users/delta',
  select: SYNCED_PROPERTIES,
  deletedItemsPath: '/v1.0/directory/deletedItems/microsoft.graph.user',
  permission: 'User.Read.All',
  fold: foldUsers,
  rows: (repositories) => new UserRows(repositories),
  events: userChangeEvents,
};
