import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Kysely, Migrator, PostgresDialect, sql, type MigrationResult } from 'kysely';
import pg from 'pg';
import { migrationProvider } from './migrations.ts';
import type { Database } from './schema.ts';
import { nodeSqliteDialect } from './sqlite-dialect.ts';

export type Engine = 'sqlite' | 'postgres';

export interface Store {
  db: Kysely<Database>;
  engine: Engine;
  /** Where the data lives, without credentials (for logs and `roster doctor`). */
  location: string;
  close(): Promise<void>;
}

export type StoreTarget = { engine: 'sqlite'; path: string } | { engine: 'postgres'; url: string };

/** A database that cannot be used; the message says what to fix. */
export class StoreUnavailableError extends Error {}

const INT8_OID = 20;

/**
 * Opens the database and checks that it answers, so a bad `DATABASE_URL` fails
 * at start-up with a clear message instead of at the first request.
 */
export async function openStore(target: StoreTarget): Promise<Store> {
  if (target.engine === 'sqlite') {
    let db: Kysely<Database>;
    try {
      if (target.path !== ':memory:') mkdirSync(dirname(target.path), { recursive: true });
      db = new Kysely<Database>({ dialect: nodeSqliteDialect(target.path) });
    } catch (err) {
      throw new StoreUnavailableError(`cannot open the SQLite database at ${target.path}: ${(err as Error).message}`);
    }
    return { db, engine: 'sqlite', location: target.path, close: () => db.destroy() };
  }

  const location = redactUrl(target.url);
  let pool: pg.Pool;
  try {
    pool = new pg.Pool({
      connectionString: target.url,
      max: 10,
      connectionTimeoutMillis: 5000,
      // bigint columns hold epoch milliseconds, well inside Number's safe range.
      types: { getTypeParser: ((oid: number, format?: string) => (oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser },
    });
  } catch (err) {
    throw new StoreUnavailableError(`DATABASE_URL is not a valid PostgreSQL connection string (${location}): ${(err as Error).message}`);
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy().catch(() => {});
    throw new StoreUnavailableError(`cannot connect to PostgreSQL at ${location}: ${(err as Error).message}. Check DATABASE_URL and that the server is running.`);
  }
  return { db, engine: 'postgres', location, close: () => db.destroy() };
}

/** Applies every pending migration; throws with the failing migration's name. */
export async function migrateToLatest(store: Store): Promise<MigrationResult[]> {
  const migrator = new Migrator({ db: store.db, provider: migrationProvider });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error) {
    const failed = results.find((r) => r.status === 'Error');
    throw new Error(`database migration ${failed?.migrationName ?? ''} failed: ${(error as Error).message ?? String(error)}`);
  }
  return results;
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** Names of the migrations not applied yet (for `roster doctor`). */
export async function pendingMigrations(store: Store): Promise<string[]> {
  const migrations = await new Migrator({ db: store.db, provider: migrationProvider }).getMigrations();
  return migrations.filter((m) => !m.executedAt).map((m) => m.name);
}
