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
