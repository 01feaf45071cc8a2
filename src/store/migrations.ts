// Over 400 lines on purpose: every migration ever shipped, in order. An applied migration never changes, so each keeps its own table definitions even where a later one repeats their shape.
import { PostgresAdapter, SqliteAdapter, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

/**
 * Versioned migrations, in order. Written with Kysely's schema builder so the
 * same migration serves both engines; never edit one that has shipped, add the
 * next instead.
 */
const migrations: Record<string, Migration> = {
  '0001_tenants_users_sessions': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('tenants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('display_name', 'text', (c) => c.notNull())
        .addColumn('domains', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('state_reason', 'text')
        .addColumn('signup_context', 'text')
        .addColumn('signed_up_by_oid', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('users')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('display_name', 'text')
        .addColumn('given_name', 'text')
        .addColumn('surname', 'text')
        .addColumn('mail', 'text')
        .addColumn('user_principal_name', 'text')
        .addColumn('job_title', 'text')
        .addColumn('department', 'text')
        .addColumn('office_location', 'text')
        .addColumn('account_enabled', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('user_type', 'text')
        .addColumn('created_date_time', 'text')
        .addColumn('employee_id', 'text')
        .addColumn('company_name', 'text')
        .addColumn('mobile_phone', 'text')
        .addColumn('business_phones', 'text')
        .addColumn('deleted_at', 'bigint')
        .addColumn('roster_role', 'text', (c) => c.notNull().defaultTo('member'))
        .addColumn('last_sign_in_at', 'bigint')
        .addColumn('synced_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('users_pk', ['tenant_id', 'id'])
        .execute();

      await db.schema
        .createTable('sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('csrf_token', 'text', (c) => c.notNull())
        .addColumn('login_hint', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('sessions_by_user').on('sessions').columns(['tenant_id', 'user_id']).execute();

      await db.schema
        .createTable('auth_requests')
        .addColumn('state_hash', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('browser_binding_hash', 'text', (c) => c.notNull())
        .addColumn('nonce', 'text', (c) => c.notNull())
        .addColumn('code_verifier', 'text', (c) => c.notNull())
        .addColumn('return_to', 'text')
        .addColumn('context', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('auth_requests_by_expiry').on('auth_requests').column('expires_at').execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of ['auth_requests', 'sessions', 'users', 'tenants']) {
        await sql`drop table if exists ${sql.table(table)}`.execute(db);
      }
    },
  },
  '0002_directory_sync': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('users').addColumn('seen_run_id', 'text').execute();
      await db.schema
        .createTable('sync_state')
        .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenants.id').onDelete('cascade'))
        .addColumn('delta_link', 'text')
        .addColumn('next_link', 'text')
        .addColumn('run_id', 'text')
        .addColumn('run_kind', 'text')
        .addColumn('health', 'text', (c) => c.notNull().defaultTo('ok'))
        .addColumn('last_success_at', 'bigint')
        .addColumn('last_error', 'text')
        .addColumn('lock_owner', 'text')
        .addColumn('lock_expires_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('sync_runs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('pages', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('updated', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('deleted', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('error', 'text')
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint')
        .execute();
      await db.schema.createIndex('sync_runs_by_tenant').on('sync_runs').columns(['tenant_id', 'started_at']).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await sql`drop table if exists sync_runs`.execute(db);
      await sql`drop table if exists sync_state`.execute(db);
      await db.schema.alterTable('users').dropColumn('seen_run_id').execute();
    },
  },
  '0003_admin_pages': {
    async up(db: Kysely<unknown>): Promise<void> {
      // "Sync now" pressed and not yet picked up: the sync panel shows it as queued.
      await db.schema.alterTable('sync_state').addColumn('requested_at', 'bigint').execute();
      // The users page sorts by these keys within a tenant; the expressions must match UserRepository's.
      for (const [name, column] of USER_SORT_INDEXES) {
        await db.schema
          .createIndex(`users_by_${name}`)
          .on('users')
          .expression(sql`tenant_id, lower(coalesce(${sql.ref(column)}, '')), id`)
          .execute();
      }
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const [name] of USER_SORT_INDEXES) await sql`drop index if exists ${sql.ref(`users_by_${name}`)}`.execute(db);
      await db.schema.alterTable('sync_state').dropColumn('requested_at').execute();
    },
  },
  '0004_user_search_trigrams': {
    // PostgreSQL only: trigram indexes turn the users page's "contains" search into index scans.
    // pg_trgm is a trusted extension (PostgreSQL 13+): whoever may create objects in the database may install it.
    // Without it the search still works, by scanning.
    async up(db: Kysely<unknown>): Promise<void> {
      if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
      // A failed CREATE EXTENSION would abort the whole migration, so only try when it is allowed.
      const { rows } = await sql<{ installed: boolean; available: boolean; allowed: boolean }>`
        select exists (select 1 from pg_extension where extname = 'pg_trgm') as installed,
               exists (select 1 from pg_available_extensions where name = 'pg_trgm') as available,
               (select rolsuper from pg_roles where rolname = current_user)
                 or (current_setting('server_version_num')::int >= 130000 and has_database_privilege(current_database(), 'CREATE')) as allowed`.execute(db);
      const trgm = rows[0];
      if (!trgm?.installed && !(trgm?.available && trgm.allowed)) return;
      if (!trgm.installed) await sql`create extension if not exists pg_trgm`.execute(db);
      for (const [name, column] of USER_SORT_INDEXES) {
        await sql`create index if not exists ${sql.ref(`users_search_${name}`)} on users using gin (${sql.ref(column)} gin_trgm_ops)`.execute(db);
      }
    },
    async down(db: Kysely<unknown>): Promise<void> {
      if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
      for (const [name] of USER_SORT_INDEXES) await sql`drop index if exists ${sql.ref(`users_search_${name}`)}`.execute(db);
    },
  },
  '0005_sync_run_listed': {
    // Users a run has read so far, changed or not: what the progress bar of a resync counts.
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('sync_runs').addColumn('listed', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('sync_runs').dropColumn('listed').execute();
    },
  },
  '0006_user_search_sqlite': {
    // SQLite only: the searched columns in one narrow index, so a "contains" search scans it instead of the wide rows (7x less to read).
    async up(db: Kysely<unknown>): Promise<void> {
      if (!(db.getExecutor().adapter instanceof SqliteAdapter)) return;
      await db.schema.createIndex('users_search_columns').on('users').columns(['tenant_id', 'display_name', 'mail', 'user_principal_name', 'department']).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await sql`drop index if exists users_search_columns`.execute(db);
    },
  },
  '0007_tenant_user_count': {
    // Every users page shows the tenant's total; counting 100,000 rows per request costs more than the page.
    // Triggers keep the count for every writer (sync, sign-in, leaving), so no code path can forget it.
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('tenants').addColumn('user_count', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      await sql`update tenants set user_count = (select count(*) from users where users.tenant_id = tenants.id)`.execute(db);
      if (db.getExecutor().adapter instanceof PostgresAdapter) {
        // Statement-level triggers with transition tables: one update of the tenant row per statement, not per user.
        await sql`
          create function roster_count_inserted_users() returns trigger language plpgsql as $$
          begin
            update tenants set user_count = tenants.user_count + added.n
              from (select tenant_id, count(*) as n from inserted_users group by tenant_id) as added
              where tenants.id = added.tenant_id;
            return null;
          end $$`.execute(db);
        await sql`
          create function roster_count_deleted_users() returns trigger language plpgsql as $$
          begin
            update tenants set user_count = tenants.user_count - removed.n
              from (select tenant_id, count(*) as n from deleted_users group by tenant_id) as removed
              where tenants.id = removed.tenant_id;
            return null;
          end $$`.execute(db);
        await sql`create trigger users_counted_on_insert after insert on users referencing new table as inserted_users for each statement execute function roster_count_inserted_users()`.execute(db);
        await sql`create trigger users_counted_on_delete after delete on users referencing old table as deleted_users for each statement execute function roster_count_deleted_users()`.execute(db);
      } else {
        await sql`create trigger users_counted_on_insert after insert on users begin update tenants set user_count = user_count + 1 where id = new.tenant_id; end`.execute(db);
        await sql`create trigger users_counted_on_delete after delete on users begin update tenants set user_count = user_count - 1 where id = old.tenant_id; end`.execute(db);
      }
    },
    async down(db: Kysely<unknown>): Promise<void> {
      if (db.getExecutor().adapter instanceof PostgresAdapter) {
        for (const trigger of ['users_counted_on_insert', 'users_counted_on_delete']) await sql`drop trigger if exists ${sql.ref(trigger)} on users`.execute(db);
        for (const fn of ['roster_count_inserted_users', 'roster_count_deleted_users']) await sql`drop function if exists ${sql.ref(fn)}()`.execute(db);
      } else {
        for (const trigger of ['users_counted_on_insert', 'users_counted_on_delete']) await sql`drop trigger if exists ${sql.ref(trigger)}`.execute(db);
      }
      await db.schema.alterTable('tenants').dropColumn('user_count').execute();
    },
  },
  '0008_session_directory_roles': {
    // The directory roles (`wids`) of the sign-in behind a session: they decide who may claim an organisation left without a Roster admin.
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('sessions').addColumn('directory_roles', 'text', (c) => c.notNull().defaultTo('[]')).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('sessions').dropColumn('directory_roles').execute();
    },
  },
  '0009_groups': {
    // Groups, their direct memberships (by id only: a member may arrive before its user, rule 27) and the groups' own cursor and health.
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('groups')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('display_name', 'text')
        .addColumn('description', 'text')
        .addColumn('group_types', 'text')
        .addColumn('security_enabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('mail_enabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('mail', 'text')
        .addColumn('membership_rule', 'text')
        .addColumn('kind', 'text', (c) => c.notNull().defaultTo('security'))
        .addColumn('dynamic', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('deleted_at', 'bigint')
        .addColumn('seen_run_id', 'text')
        .addColumn('synced_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('groups_pk', ['tenant_id', 'id'])
        .execute();
      await db.schema.createIndex('groups_by_name').on('groups').expression(sql`tenant_id, lower(coalesce(display_name, '')), id`).execute();
      await db.schema
        .createTable('group_members')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('group_id', 'text', (c) => c.notNull())
        .addColumn('member_id', 'text', (c) => c.notNull())
        .addColumn('member_type', 'text', (c) => c.notNull())
        .addColumn('seen_run_id', 'text')
        .addPrimaryKeyConstraint('group_members_pk', ['tenant_id', 'group_id', 'member_id'])
        .execute();
      // A member's groups, and the upward walk of "is U in G transitively".
      await db.schema.createIndex('group_members_by_member').on('group_members').columns(['tenant_id', 'member_id', 'group_id']).execute();
      await db.schema
        .createTable('group_sync_state')
        .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenants.id').onDelete('cascade'))
        .addColumn('delta_link', 'text')
        .addColumn('next_link', 'text')
        .addColumn('run_id', 'text')
        .addColumn('run_kind', 'text')
        .addColumn('health', 'text', (c) => c.notNull().defaultTo('ok'))
        .addColumn('last_success_at', 'bigint')
        .addColumn('last_error', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      // The groups' runs, recorded as the users' are (rule 20) but apart, so the users' run history and counts stay the users'.
      await db.schema
        .createTable('group_sync_runs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('pages', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('listed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('updated', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('deleted', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('error', 'text')
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('finished_at', 'bigint')
        .execute();
      await db.schema.createIndex('group_sync_runs_by_tenant').on('group_sync_runs').columns(['tenant_id', 'started_at']).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of ['group_sync_runs', 'group_sync_state', 'group_members', 'groups']) await sql`drop table if exists ${sql.table(table)}`.execute(db);
    },
  },
  '0011_api_keys_and_audit': {
    // Keys for programs (stored only as hashes) and the append-only audit log of operator, admin and API actions.
    async up(db: Kysely<unknown>): Promise<void> {
      const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('prefix', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('scopes', 'text', (c) => c.notNull())
        .addColumn('tenant_id', 'text')
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema
        .createTable('audit_log')
        .addColumn('id', postgres ? 'bigserial' : 'integer', (c) => (postgres ? c.primaryKey() : c.primaryKey().autoIncrement()))
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor_kind', 'text', (c) => c.notNull())
        .addColumn('actor_id', 'text', (c) => c.notNull())
        .addColumn('actor_name', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('tenant_id', 'text')
        .addColumn('target', 'text')
        .addColumn('detail', 'text')
        .addColumn('source', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_log_by_tenant').on('audit_log').columns(['tenant_id', 'id']).execute();
      await db.schema.createIndex('audit_log_by_actor').on('audit_log').columns(['actor_id', 'id']).execute();
      await db.schema.createIndex('audit_log_by_action').on('audit_log').columns(['action', 'id']).execute();
      // Append-only below the code as well: no statement through any connection may change or remove an entry (rule 35).
      if (postgres) {
        await sql`create function roster_audit_log_append_only() returns trigger language plpgsql as $$ begin raise exception 'the audit log is append-only'; end $$`.execute(db);
        await sql`create trigger audit_log_append_only before update or delete on audit_log for each row execute function roster_audit_log_append_only()`.execute(db);
      } else {
        await sql`create trigger audit_log_no_update before update on audit_log begin select raise(abort, 'the audit log is append-only'); end`.execute(db);
        await sql`create trigger audit_log_no_delete before delete on audit_log begin select raise(abort, 'the audit log is append-only'); end`.execute(db);
      }
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await sql`drop table if exists audit_log`.execute(db);
      if (db.getExecutor().adapter instanceof PostgresAdapter) await sql`drop function if exists roster_audit_log_append_only()`.execute(db);
      await sql`drop table if exists api_keys`.execute(db);
    },
  },
  '0012_events_and_webhooks': {
    async up(db: Kysely<unknown>): Promise<void> {
      const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
      // The sequence is the feed's order and its cursor: it must only grow (SQLite's AUTOINCREMENT never reuses a number).
      const serial = (table: string, column: string) =>
        db.schema.createTable(table).addColumn(column, postgres ? 'bigserial' : 'integer', (c) => (postgres ? c.primaryKey() : c.primaryKey().autoIncrement()));
      await serial('events', 'sequence')
        .addColumn('id', 'text', (c) => c.notNull().unique())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('tenant_id', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('previous_attributes', 'text')
        .execute();
      await db.schema.createIndex('events_by_tenant').on('events').columns(['tenant_id', 'sequence']).execute();
      await db.schema
        .createTable('webhook_endpoints')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('event_types', 'text', (c) => c.notNull())
        .addColumn('tenant_id', 'text')
        .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('disabled_reason', 'text')
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('previous_secret', 'text')
        .addColumn('previous_secret_expires_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('endpoint_id', 'text', (c) => c.notNull().references('webhook_endpoints.id').onDelete('cascade'))
        .addColumn('event_sequence', 'bigint', (c) => c.notNull().references('events.sequence').onDelete('cascade'))
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('schedule_step', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('next_attempt_at', 'bigint')
        .addColumn('lease_owner', 'text')
        .addColumn('lease_expires_at', 'bigint')
        .addColumn('last_status_code', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('webhook_deliveries_once', ['endpoint_id', 'event_sequence'])
        .execute();
      await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['endpoint_id', 'status', 'next_attempt_at']).execute();
      // Pruning an event deletes its deliveries through this index.
      await db.schema.createIndex('webhook_deliveries_by_event').on('webhook_deliveries').column('event_sequence').execute();
      await serial('webhook_attempts', 'id')
        .addColumn('delivery_id', 'text', (c) => c.notNull().references('webhook_deliveries.id').onDelete('cascade'))
        .addColumn('attempted_at', 'bigint', (c) => c.notNull())
        .addColumn('status_code', 'integer')
        .addColumn('latency_ms', 'integer', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('response_excerpt', 'text')
        .execute();
      await db.schema.createIndex('webhook_attempts_by_delivery').on('webhook_attempts').columns(['delivery_id', 'attempted_at']).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of ['webhook_attempts', 'webhook_deliveries', 'webhook_endpoints', 'events']) await sql`drop table if exists ${sql.table(table)}`.execute(db);
    },
  },
  '0013_graph_subscriptions': {
    // One Graph change-notification subscription per tenant and resource; the clientState secret is kept only as a hash.
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('graph_subscriptions')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('resource', 'text', (c) => c.notNull())
        .addColumn('subscription_id', 'text')
        .addColumn('client_state_hash', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('last_renewed_at', 'bigint')
        .addColumn('last_notification_at', 'bigint')
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('graph_subscriptions_pk', ['tenant_id', 'resource'])
        .execute();
      await db.schema.createIndex('graph_subscriptions_by_id').unique().on('graph_subscriptions').column('subscription_id').execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('graph_subscriptions').execute();
    },
  },
  '0014_group_roles': {
    // Entra groups mapped to Roster roles or to the access list, and the role those mappings give each user (kept apart from the role set by hand).
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('group_role_mappings')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id').onDelete('cascade'))
        .addColumn('group_id', 'text', (c) => c.notNull())
        .addColumn('grants', 'text', (c) => c.notNull().check(sql`grants in ('admin', 'member', 'access')`))
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('group_role_mappings_pk', ['tenant_id', 'grants', 'group_id'])
        .execute();
      await db.schema.alterTable('users').addColumn('mapped_role', 'text').execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('users').dropColumn('mapped_role').execute();
      await db.schema.dropTable('group_role_mappings').execute();
    },
  },
  '0015_group_walk_indexes': {
    // The transitive walk's steps: only group-in-group rows and soft-deleted groups, a small share of each table.
    // Without them PostgreSQL scanned every membership of the tenant at each step (seconds a lookup at 200,000 rows).
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.createIndex('group_members_nested').on('group_members').columns(['tenant_id', 'member_id', 'group_id']).where(sql.ref('member_type'), '=', 'group').execute();
      await db.schema.createIndex('groups_soft_deleted').on('groups').columns(['tenant_id', 'id']).where(sql.ref('deleted_at'), 'is not', null).execute();
      // The end of a full round counts and deletes the memberships it did not see. SQLite read each of the tenant's rows
      // for its mark, at random (a minute at 1,000,000 memberships); from this index it reads only the marks. PostgreSQL
      // scans the table in order, and an indexed mark would take the re-marks of a full resync off its in-page updates.
      if (db.getExecutor().adapter instanceof SqliteAdapter) await db.schema.createIndex('group_members_by_mark').on('group_members').columns(['tenant_id', 'seen_run_id']).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropIndex('group_members_by_mark').ifExists().execute();
      await db.schema.dropIndex('groups_soft_deleted').execute();
      await db.schema.dropIndex('group_members_nested').execute();
    },
  },
  '0016_webhook_deliveries_due_in_order': {
    // A sender takes an endpoint's due deliveries oldest first: with the event's sequence in the index it reads just a batch, not every pending row and a sort.
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropIndex('webhook_deliveries_due').execute();
      await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['endpoint_id', 'status', 'next_attempt_at', 'event_sequence']).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropIndex('webhook_deliveries_due').execute();
      await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['endpoint_id', 'status', 'next_attempt_at']).execute();
    },
  },
  '0017_user_search_fts': {
    // SQLite only: a trigram full-text index of the four searched columns, so a "contains" search of 3 or more
    // characters reads the matching users' keys instead of scanning the tenant (migration 0006's index stays for shorter text).
    // Its rows carry the user's own key (tenant_id, id), never the users table's rowid, which VACUUM may renumber.
    // FTS5 finds a row to change or remove only by its own rowid, so users_search_rowids gives each user key one:
    // an INTEGER PRIMARY KEY, which VACUUM keeps. Triggers keep both in step for every writer.
    async up(db: Kysely<unknown>): Promise<void> {
      if (!(db.getExecutor().adapter instanceof SqliteAdapter)) return;
      await sql`
        create table users_search_rowids (
          search_rowid integer primary key,
          tenant_id text not null,
          id text not null,
          unique (tenant_id, id)
        )`.execute(db);
      // case_sensitive 0 folds case as LIKE does (and non-ASCII letters too); accents stay significant, as in LIKE.
      // (A contentless table would spare the copy of the text, but SQLite 3.53 cannot drop one that stores its unindexed columns.)
      await sql`
        create virtual table users_search_text using fts5(
          display_name, mail, user_principal_name, department, tenant_id unindexed, id unindexed,
          tokenize = 'trigram case_sensitive 0 remove_diacritics 0'
        )`.execute(db);
      await sql`
        create trigger users_search_text_on_insert after insert on users begin
          insert into users_search_rowids (tenant_id, id) values (new.tenant_id, new.id);
          insert into users_search_text (rowid, display_name, mail, user_principal_name, department, tenant_id, id)
            values ((select search_rowid from users_search_rowids where tenant_id = new.tenant_id and id = new.id),
                    new.display_name, new.mail, new.user_principal_name, new.department, new.tenant_id, new.id);
        end`.execute(db);
      // A sync rewrites every column of every changed user and marks every seen one: only a change of searched text costs an index update.
      await sql`
        create trigger users_search_text_on_update after update of tenant_id, id, display_name, mail, user_principal_name, department on users
        when old.display_name is not new.display_name or old.mail is not new.mail or old.user_principal_name is not new.user_principal_name
          or old.department is not new.department or old.tenant_id is not new.tenant_id or old.id is not new.id
        begin
          update users_search_rowids set tenant_id = new.tenant_id, id = new.id
            where tenant_id = old.tenant_id and id = old.id and (old.tenant_id is not new.tenant_id or old.id is not new.id);
          update users_search_text
            set display_name = new.display_name, mail = new.mail, user_principal_name = new.user_principal_name, department = new.department,
                tenant_id = new.tenant_id, id = new.id
            where rowid = (select search_rowid from users_search_rowids where tenant_id = new.tenant_id and id = new.id);
        end`.execute(db);
      await sql`
        create trigger users_search_text_on_delete after delete on users begin
          delete from users_search_text where rowid = (select search_rowid from users_search_rowids where tenant_id = old.tenant_id and id = old.id);
          delete from users_search_rowids where tenant_id = old.tenant_id and id = old.id;
        end`.execute(db);
      await sql`insert into users_search_rowids (tenant_id, id) select tenant_id, id from users`.execute(db);
      await sql`
        insert into users_search_text (rowid, display_name, mail, user_principal_name, department, tenant_id, id)
          select k.search_rowid, u.display_name, u.mail, u.user_principal_name, u.department, u.tenant_id, u.id
          from users u join users_search_rowids k on k.tenant_id = u.tenant_id and k.id = u.id`.execute(db);
    },
    async down(db: Kysely<unknown>): Promise<void> {
      if (!(db.getExecutor().adapter instanceof SqliteAdapter)) return;
      for (const trigger of ['users_search_text_on_insert', 'users_search_text_on_update', 'users_search_text_on_delete']) await sql`drop trigger if exists ${sql.ref(trigger)}`.execute(db);
      await sql`drop table if exists users_search_text`.execute(db);
      await sql`drop table if exists users_search_rowids`.execute(db);
    },
  },
  '0018_users_room_for_in_page_updates': {
    // PostgreSQL only. A full resync rewrites every listed user (its last-synced time and the run's mark). With room in
    // its page for a second version of each row, the rewrite stays in the page and no index is touched (a HOT update);
    // in a full page every rewrite also adds an entry to each of the nine indexes, trigram ones included (9x the time
    // of a page's merge at 100,000 users). Half the page is that room: a round rewrites every row of a page in turn.
    // Existing pages keep their layout until rewritten (VACUUM FULL); new ones, from the first listing on, are half full.
    async up(db: Kysely<unknown>): Promise<void> {
      if (db.getExecutor().adapter instanceof PostgresAdapter) await sql`alter table users set (fillfactor = 50)`.execute(db);
    },
    async down(db: Kysely<unknown>): Promise<void> {
      if (db.getExecutor().adapter instanceof PostgresAdapter) await sql`alter table users reset (fillfactor)`.execute(db);
    },
  },
  '0019_events_without_id_index': {
    // No reader finds an event by its id: the feed, the senders and the purge all go by sequence, and the id is
    // 80 random bits after the millisecond. On PostgreSQL the unique index was a fifth of a small event's insert.
    // SQLite keeps it: its unique column constraint goes only with the table, and a rebuild would cascade to the deliveries.
    async up(db: Kysely<unknown>): Promise<void> {
      if (db.getExecutor().adapter instanceof PostgresAdapter) await sql`alter table events drop constraint if exists events_id_key`.execute(db);
    },
    async down(db: Kysely<unknown>): Promise<void> {
      if (db.getExecutor().adapter instanceof PostgresAdapter) await sql`alter table events add constraint events_id_key unique (id)`.execute(db);
    },
  },
};

const USER_SORT_INDEXES = [
  ['name', 'display_name'],
  ['upn', 'user_principal_name'],
  ['mail', 'mail'],
  ['department', 'department'],
] as const;

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};

export const latestMigration = Object.keys(migrations).at(-1)!;
