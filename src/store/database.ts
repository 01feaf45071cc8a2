import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Kysely, Migrator, PostgresDialect, sql, type MigrationResult } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { RosterError } from '../errors.ts';
import { migrationProvider } from './migrations.ts';
import type { Database } from './schema.ts';
import { nodeSqliteDialect } from './sqlite-dialect.ts';

export type Engine = 'sqlite' | 'postgres';

export interface Store {
  db: Kysely<Database>;
  engine: Engine;
  /** Where the data lives, without credentials (for logs and `roster doctor`). */
  location: string;
  /** Whether changes append events to the outbox (`EVENTS_ENABLED`); on unless set to false. */
  eventsEnabled?: boolean;
  close(): Promise<void>;
}

export type StoreTarget = { engine: 'sqlite'; path: string } | { engine: 'postgres'; url: string };

/** A database that cannot be used (now); the message says what to fix or what happened. */
export class StoreUnavailableError extends RosterError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { status: 503, code: 'database_unavailable', expose: false, cause: options.cause });
  }
}

/** Node's socket errors that mean the server could not be reached or went away. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
/** PostgreSQL's admin_shutdown, crash_shutdown, cannot_connect_now (a restart or failover); class 08 is connection exceptions. */
const SERVER_GOING_AWAY = new Set(['57P01', '57P02', '57P03']);
/** SQLite's result codes for a file another process holds locked, a read-only file, and a full disk. */
const SQLITE_CANNOT_WRITE: Record<number, string> = { 5: 'the database file is locked by another process', 8: 'the database file is read-only', 13: 'the disk holding the database is full' };

/**
 * Whether a query failed because the database could not be used at that
 * moment (connection lost or refused, server restarting, file locked, read-only
 * or full) rather than because of the query; a `StoreUnavailableError` saying
 * so, or null. Callers answer 503, or retry later, instead of crashing.
 */
export function databaseUnavailable(err: unknown): StoreUnavailableError | null {
  if (err instanceof StoreUnavailableError) return err;
  if (!(err instanceof Error)) return null;
  const { code, errcode } = err as Error & { code?: unknown; errcode?: unknown };
  if (typeof errcode === 'number' && SQLITE_CANNOT_WRITE[errcode & 0xff]) return withStackOf(new StoreUnavailableError(SQLITE_CANNOT_WRITE[errcode & 0xff]!, { cause: err }), err);
  const lost =
    (typeof code === 'string' && (NETWORK_CODES.has(code) || SERVER_GOING_AWAY.has(code) || code.startsWith('08'))) ||
    // pg's own errors carry no code: a connection that ended, a connect timeout, a client broken by an earlier error.
    /^Connection terminated|timeout exceeded when trying to connect|is not queryable/.test(err.message) ||
    (err instanceof AggregateError && err.errors.some((inner) => databaseUnavailable(inner) !== null));
  return lost ? withStackOf(new StoreUnavailableError(`the database connection was lost or refused (${err.message || String(code)})`, { cause: err }), err) : null;
}

/** Where the driver failed says more than where its error was recognised. */
function withStackOf(wrapper: StoreUnavailableError, cause: Error): StoreUnavailableError {
  const frames = cause.stack?.split('\n').filter((line) => line.startsWith('    at ')) ?? [];
  if (frames.length > 0) wrapper.stack = [`${wrapper.name}: ${wrapper.message}`, ...frames].join('\n');
  return wrapper;
}

const INT8_OID = 20;

/**
 * Opens the database and checks that it answers, so a bad `DATABASE_URL` fails
 * at start-up with a clear message instead of at the first request.
 */
export async function openStore(target: StoreTarget, options: { logger?: Logger } = {}): Promise<Store> {
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
  // An idle client whose connection dies (a failover, a restart, a network cut) is dropped by the
  // pool, which then emits 'error'; with no listener Node would end the process.
  pool.on('error', (err) => options.logger?.warn({ err: databaseUnavailable(err) ?? err }, 'an idle database connection was lost; the next query opens a new one'));
  // A client checked out between two queries (inside a transaction) emits 'error' too when its connection
  // dies; the query that follows fails with it and the pool discards the client, so nothing more is needed here.
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy().catch(() => {});
    throw new StoreUnavailableError(`cannot connect to PostgreSQL at ${location}: ${(err as Error).message}. Check DATABASE_URL and that the server is running.`);
  }
  return { db, engine: 'postgres', location, close: () => db.destroy() };
}

/**
 * Runs `work`, and runs it again while the database is unavailable, backing
 * off up to a few seconds between tries, for at most `withinMs`; then gives up
 * with the `StoreUnavailableError`. For writes that must land once the
 * database is back (a run's failure, a lock's release); `work` must be safe to repeat.
 */
export async function whenDatabaseAnswers<T>(work: () => Promise<T>, options: { withinMs?: number } = {}): Promise<T> {
  const deadline = Date.now() + (options.withinMs ?? 2 * 60_000);
  for (let pauseMs = 250; ; pauseMs = Math.min(pauseMs * 2, 5000)) {
    try {
      return await work();
    } catch (err) {
      const unavailable = databaseUnavailable(err);
      if (!unavailable) throw err;
      if (Date.now() + pauseMs > deadline) throw unavailable;
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }
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
