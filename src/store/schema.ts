import type { ColumnType, Generated } from 'kysely';

/**
 * Times are epoch milliseconds and booleans are 0/1 integers on both engines,
 * so one set of queries and types serves SQLite and PostgreSQL alike.
 */
export interface TenantsTable {
  id: string;
  display_name: string;
  /** JSON array of verified domains. */
  domains: string;
  state: 'pending' | 'active' | 'disconnected' | 'suspended' | 'offboarded';
  state_reason: string | null;
  /** JSON object: what the customer chose at sign-up (plan, ...). */
  signup_context: string | null;
  signed_up_by_oid: string | null;
  /** Users of the tenant (soft-deleted included), kept by database triggers on `users`. */
  user_count: ColumnType<number, never, never>;
  created_at: number;
  updated_at: number;
}

export interface UsersTable {
  tenant_id: string;
  id: string;
  display_name: string | null;
  given_name: string | null;
  surname: string | null;
  mail: string | null;
  user_principal_name: string | null;
  job_title: string | null;
  department: string | null;
  office_location: string | null;
  account_enabled: number;
  user_type: string | null;
  created_date_time: string | null;
  employee_id: string | null;
  company_name: string | null;
  mobile_phone: string | null;
  /** JSON array. */
  business_phones: string | null;
  /** Set when Graph reports the user soft-deleted (restorable). */
  deleted_at: number | null;
  /** Roster's own role for the user in its tenant; never taken from token claims. */
  roster_role: 'admin' | 'member';
  /** The highest role the tenant's group mappings give the user (null: none); recomputed at sign-in and after each sync. */
  mapped_role: 'admin' | 'member' | null;
  last_sign_in_at: number | null;
  synced_at: number | null;
  /** The full-sync run that last saw this user in a listing, or the delta round that will remove it (rules 8 and 9: who to remove at the end). */
  seen_run_id: string | null;
  updated_at: number;
}

/** One row per tenant: where its sync stands. */
export interface SyncStateTable {
  tenant_id: string;
  /** `@odata.deltaLink` of the last completed round: the next incremental sync starts there. */
  delta_link: string | null;
  /** `@odata.nextLink` of the round in progress, saved with the writes of each page. */
  next_link: string | null;
  /** The run the saved next link belongs to (resumed after a crash). */
  run_id: string | null;
  run_kind: 'full' | 'delta' | null;
  /** 'ok', 'failing', 'disconnected', 'missing_permission' or 'held' (mass deletion awaiting a decision). */
  health: 'ok' | 'failing' | 'disconnected' | 'missing_permission' | 'held';
  last_success_at: number | null;
  last_error: string | null;
  /** `host:pid:nonce` of the process syncing this tenant; one at a time, across processes and machines. */
  lock_owner: string | null;
  /** The lock is renewed with every page; a crashed holder's lock lapses at this time. */
  lock_expires_at: number | null;
  /** "Sync now" was asked at this time and no run has started since. */
  requested_at: ColumnType<number | null, number | null | undefined, number | null>;
  updated_at: number;
}

export interface SyncRunsTable {
  id: string;
  tenant_id: string;
  kind: 'full' | 'delta';
  status: 'running' | 'succeeded' | 'failed' | 'held';
  pages: number;
  /** Users the run has read so far, changed or not (progress of a resync). */
  listed: ColumnType<number, number | undefined, number>;
  created: number;
  updated: number;
  deleted: number;
  error: string | null;
  started_at: number;
  finished_at: number | null;
}

export interface SessionsTable {
  /** SHA-256 of the session id: a leaked table cannot be replayed as cookies. */
  id_hash: string;
  tenant_id: string;
  user_id: string;
  csrf_token: string;
  /** Entra's opaque `login_hint`, passed back as `logout_hint` at sign-out. */
  login_hint: string | null;
  /** JSON array of the directory role template ids (`wids`) of the sign-in; facts about Entra, never Roster roles. */
  directory_roles: Generated<string>;
  created_at: number;
  last_seen_at: number;
  /** Absolute expiry; the idle timeout is checked against last_seen_at. */
  expires_at: number;
}

/** A sign-in or sign-up in flight: what the callback must find to accept it. */
export interface AuthRequestsTable {
  /** SHA-256 of the `state` parameter. */
  state_hash: string;
  kind: 'signin' | 'signup';
  /** SHA-256 of the browser-binding cookie the request was started with. */
  browser_binding_hash: string;
  nonce: string;
  code_verifier: string;
  return_to: string | null;
  /** JSON object carried from the start to the callback (e.g. the plan picked at sign-up). */
  context: string | null;
  created_at: number;
  expires_at: number;
}

/** The groups' own cursor and health: same columns as `sync_state`'s cursor; the lease stays in `sync_state` (one run per tenant). */
export type GroupSyncStateTable = Pick<SyncStateTable, 'tenant_id' | 'delta_link' | 'next_link' | 'run_id' | 'run_kind' | 'health' | 'last_success_at' | 'last_error' | 'updated_at'>;

/** 'microsoft365' (`Unified`), 'security' or 'distribution' (mail-enabled, not security-enabled). */
export type GroupKind = 'microsoft365' | 'security' | 'distribution';

export interface GroupsTable {
  tenant_id: string;
  id: string;
  display_name: string | null;
  description: string | null;
  /** JSON array, as Graph's `groupTypes`. */
  group_types: string | null;
  security_enabled: number;
  mail_enabled: number;
  mail: string | null;
  membership_rule: string | null;
  kind: GroupKind;
  /** Members computed from `membership_rule` (`DynamicMembership`). */
  dynamic: number;
  /** A Microsoft 365 group soft-deleted in Entra: restorable for 30 days (rule 26). */
  deleted_at: number | null;
  /** As on users: the full listing that last saw it, or the delta round that removes it at its end. */
  seen_run_id: string | null;
  synced_at: number | null;
  updated_at: number;
}

/** A direct membership; ids only, so a member may be stored before Roster has seen it (rule 27). */
export interface GroupMembersTable {
  tenant_id: string;
  group_id: string;
  member_id: string;
  member_type: 'user' | 'group';
  /** The full listing that last saw it: the rest are removed at the end of that listing. */
  seen_run_id: string | null;
}

/** The outbox: one row per change, written in the change's own transaction; `sequence` is the feed's order. */
export interface EventsTable {
  sequence: Generated<number>;
  /** `evt_<random>`: the public id, and the `webhook-id` of its deliveries. */
  id: string;
  type: string;
  tenant_id: string | null;
  created_at: number;
  /** JSON: the object after the change. */
  data: string;
  /** JSON: the changed keys with their old values (updates only). */
  previous_attributes: string | null;
}

export interface WebhookEndpointsTable {
  id: string;
  url: string;
  description: string | null;
  /** JSON array of event types; empty means every type. */
  event_types: string;
  /** Only this tenant's events, when set. */
  tenant_id: string | null;
  enabled: number;
  disabled_reason: string | null;
  /** `whsec_<base64>`: kept to sign with (an HMAC key cannot be hashed). */
  secret: string;
  /** The secret before the last rotation: it keeps signing next to the new one until `previous_secret_expires_at`. */
  previous_secret: string | null;
  previous_secret_expires_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface WebhookDeliveriesTable {
  id: string;
  endpoint_id: string;
  event_sequence: number;
  status: 'pending' | 'succeeded' | 'failed';
  /** Attempts made so far, replays included. */
  attempts: number;
  /** Where in the retry schedule the next attempt stands (back to 0 on a replay). */
  schedule_step: number;
  next_attempt_at: number | null;
  /** The process sending it now; a crashed sender's lease lapses and another takes the delivery. */
  lease_owner: string | null;
  lease_expires_at: number | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export interface WebhookAttemptsTable {
  id: Generated<number>;
  delivery_id: string;
  attempted_at: number;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  /** The start of the response body, as text, capped. */
  response_excerpt: string | null;
}

/** A key a program uses for `/api/v1`: only its SHA-256 is kept. */
export interface ApiKeysTable {
  id: string;
  name: string;
  /** The start of the key as shown in lists, so a person can tell keys apart without the secret. */
  prefix: string;
  key_hash: string;
  /** JSON array of scopes. */
  scopes: string;
  /** The one tenant the key may see, or null for every tenant. */
  tenant_id: string | null;
  created_by: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

/** One operator, admin, CLI or API action; rows are only ever inserted (triggers refuse changes). */
export interface AuditLogTable {
  id: Generated<number>;
  at: number;
  actor_kind: 'user' | 'api_key' | 'cli';
  /** `tid:oid` of a person, the API key's id, or `cli`. */
  actor_id: string;
  actor_name: string | null;
  action: string;
  tenant_id: string | null;
  /** What the action was on beyond the tenant (a user, a key). */
  target: string | null;
  /** JSON object with the action's particulars. */
  detail: string | null;
  /** The client address, or `cli`. */
  source: string;
}

/** A tenant's Graph change-notification subscription for one resource (`users`; `groups` later). */
export interface GraphSubscriptionsTable {
  tenant_id: string;
  resource: string;
  /** Graph's id; null while it is being created. */
  subscription_id: string | null;
  /** SHA-256 (hex) of the random per-subscription clientState: what notifications must carry. */
  client_state_hash: string;
  /** `creating` (claimed by one process), `active`, `reauthorizing`, `failing` (retried later). */
  state: 'creating' | 'active' | 'reauthorizing' | 'failing';
  expires_at: number | null;
  last_renewed_at: number | null;
  last_notification_at: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

/** An Entra group a tenant's admins chose: its members get a Roster role, or (`access`) may use Roster at all. */
export interface GroupRoleMappingsTable {
  tenant_id: string;
  group_id: string;
  grants: 'admin' | 'member' | 'access';
  /** `tid:oid` of the admin who added it. */
  created_by: string;
  created_at: number;
}

export interface MigrationsSeen {
  id: Generated<number>;
}

export interface Database {
  tenants: TenantsTable;
  users: UsersTable;
  sessions: SessionsTable;
  auth_requests: AuthRequestsTable;
  sync_state: SyncStateTable;
  sync_runs: SyncRunsTable;
  groups: GroupsTable;
  group_members: GroupMembersTable;
  group_sync_state: GroupSyncStateTable;
  /** The groups' runs: the same record as the users'. */
  group_sync_runs: SyncRunsTable;
  events: EventsTable;
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  api_keys: ApiKeysTable;
  audit_log: AuditLogTable;
  graph_subscriptions: GraphSubscriptionsTable;
  group_role_mappings: GroupRoleMappingsTable;
}
