import type { Kysely } from 'kysely';
import { ApiKeyRepository } from './api-keys.ts';
import { AuditRepository } from './audit.ts';
import type { Store } from './database.ts';
import type { Database } from './schema.ts';
import { AuthRequestRepository } from './auth-requests.ts';
import { GroupRepository } from './groups.ts';
import { GroupRoleRepository } from './group-roles.ts';
import { EventRepository } from './events.ts';
import { SessionRepository, type SessionLimits } from './sessions.ts';
import { SyncStatusRepository } from './sync-status.ts';
import { SyncRunRepository } from './sync-runs.ts';
import { SyncCursorRepository, SyncStateRepository } from './sync-state.ts';
import { SyncedGroupRepository } from './synced-groups.ts';
import { SyncedUserRepository } from './synced-users.ts';
import { PostgresUserMerge } from './synced-users-postgres.ts';
import { TenantRepository } from './tenants.ts';
import { UserRepository } from './users.ts';
import { WebhookRepository } from './webhooks.ts';

/** The repositories that change a tenant's data, all over one connection or one transaction. */
export interface Repositories {
  tenants: TenantRepository;
  users: UserRepository;
  /** Ending sessions only: creating and resuming them needs the web app's limits. */
  sessions: SessionRepository;
  syncRuns: SyncRunRepository;
  syncState: SyncStateRepository;
  syncedUsers: SyncedUserRepository;
  /** PostgreSQL only: a full listing's pages merged in the database (null on SQLite). */
  userMerge: PostgresUserMerge | null;
  syncedGroups: SyncedGroupRepository;
  /** The groups' cursor and health; the lease stays with the users' (`syncState`). */
  groupSyncState: SyncCursorRepository;
  groupSyncRuns: SyncRunRepository;
  groups: GroupRepository;
  /** The outbox: `events.append(...)` inside the transaction of the change it describes. */
  events: EventRepository;
  webhooks: WebhookRepository;
  apiKeys: ApiKeyRepository;
  /** Append-only: written in the same transaction as the action it records. */
  audit: AuditRepository;
  /** Groups mapped to roles or to the access list. */
  groupRoles: GroupRoleRepository;
}

function over(db: Kysely<Database>, store: Store): Repositories {
  return {
    tenants: new TenantRepository(db),
    users: new UserRepository(db, store.engine),
    sessions: new SessionRepository(db),
    syncRuns: new SyncRunRepository(db),
    syncState: new SyncStateRepository(db),
    syncedUsers: new SyncedUserRepository(db, store.engine),
    userMerge: store.engine === 'postgres' ? new PostgresUserMerge(db) : null,
    syncedGroups: new SyncedGroupRepository(db, store.engine),
    groupSyncState: new SyncCursorRepository(db, 'group_sync_state'),
    groupSyncRuns: new SyncRunRepository(db, 'group_sync_runs'),
    groups: new GroupRepository(db, store.engine),
    events: new EventRepository(db, store.engine, { enabled: store.eventsEnabled !== false }),
    webhooks: new WebhookRepository(db, store.engine),
    apiKeys: new ApiKeyRepository(db),
    audit: new AuditRepository(db),
    groupRoles: new GroupRoleRepository(db),
  };
}

/** The repositories over the store's connections, each statement on its own. */
export function repositoriesOf(store: Store): Repositories {
  return over(store.db, store);
}

/** Runs `work` in one transaction: everything it writes through the given repositories commits together or not at all. */
export function transaction<T>(store: Store, work: (repositories: Repositories) => Promise<T>): Promise<T> {
  return store.db.transaction().execute((trx) => work(over(trx, store)));
}

/** What the web app reads and writes: the directory, sessions with their limits, sign-in requests, sync status. */
export interface WebRepositories {
  tenants: TenantRepository;
  users: UserRepository;
  sessions: SessionRepository;
  authRequests: AuthRequestRepository;
  syncStatus: SyncStatusRepository;
  groups: GroupRepository;
}

export function webRepositoriesOf(store: Store, options: { session: SessionLimits; authRequestTtlMs: number }): WebRepositories {
  return {
    tenants: new TenantRepository(store.db),
    users: new UserRepository(store.db, store.engine),
    sessions: new SessionRepository(store.db, options.session),
    authRequests: new AuthRequestRepository(store.db, options.authRequestTtlMs),
    syncStatus: new SyncStatusRepository(store.db),
    groups: new GroupRepository(store.db, store.engine),
  };
}
