import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { SqliteDialect, type SqliteDatabase, type SqliteStatement } from 'kysely';

/**
 * Kysely's SQLite dialect expects better-sqlite3's shape; Roster uses the
 * built-in `node:sqlite` (no native addon to build), whose statements differ in
 * two small ways: parameters are spread, and there is no `reader` flag. This
 * adapter is all that separates them; no maintained package provides it.
 */
class NodeSqliteStatement implements SqliteStatement {
  readonly reader: boolean;
  readonly #statement: StatementSync;
  readonly #onError: (err: unknown) => void;

  constructor(statement: StatementSync, onError: (err: unknown) => void) {
    this.#statement = statement;
    this.#onError = onError;
    this.reader = statement.columns().length > 0;
  }

  all(parameters: ReadonlyArray<unknown>): unknown[] {
    try {
      return this.#statement.all(...(parameters as SQLInputValue[]));
    } catch (err) {
      this.#onError(err);
      throw err;
    }
  }

  run(parameters: ReadonlyArray<unknown>): { changes: number | bigint; lastInsertRowid: number | bigint } {
    try {
      return this.#statement.run(...(parameters as SQLInputValue[]));
    } catch (err) {
      this.#onError(err);
      throw err;
    }
  }

  iterate(parameters: ReadonlyArray<unknown>): IterableIterator<unknown> {
    return this.#statement.iterate(...(parameters as SQLInputValue[]));
  }
}

const SQLITE_READONLY = 8;

/** Stands in for `rollback` when SQLite has already rolled the transaction back. */
const ALREADY_ROLLED_BACK: SqliteStatement = {
  reader: false,
  all: () => [],
  run: () => ({ changes: 0, lastInsertRowid: 0 }),
  iterate: () => [][Symbol.iterator](),
};

/** Kysely prepares every query anew; the same few statements run on every request, so keep them. */
const STATEMENT_CACHE_SIZE = 200;

class NodeSqliteDatabase implements SqliteDatabase {
  readonly #path: string;
  #database: DatabaseSync;
  readonly #statements = new Map<string, NodeSqliteStatement>();
  #reopen = false;

  constructor(path: string) {
    this.#path = path;
    this.#database = openFile(path);
  }

  /**
   * SQLite opens a file it cannot write read-only, and the connection stays so
   * after the file is writable again: once a write was refused, the next
   * statement outside a transaction opens the file anew.
   */
  readonly #noteError = (err: unknown): void => {
    const errcode = (err as { errcode?: unknown }).errcode;
    if (typeof errcode === 'number' && (errcode & 0xff) === SQLITE_READONLY) this.#reopen = true;
  };

  prepare(sql: string): SqliteStatement {
    if (this.#reopen && !this.#database.isTransaction) {
      const fresh = openFile(this.#path);
      this.#statements.clear();
      this.#database.close();
      this.#database = fresh;
      this.#reopen = false;
    }
    // SQLite rolls a transaction back by itself on a full disk or an I/O error; Kysely's rollback that
    // follows would then fail with "no transaction is active" and hide the error that ended it.
    if (sql === 'rollback' && !this.#database.isTransaction) return ALREADY_ROLLED_BACK;
    let statement = this.#statements.get(sql);
    if (!statement) {
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) this.#statements.delete(this.#statements.keys().next().value!);
      statement = new NodeSqliteStatement(this.#database.prepare(sql), this.#noteError);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  close(): void {
    this.#database.close();
  }
}

function openFile(path: string): DatabaseSync {
  const database = new DatabaseSync(path);
  try {
    // WAL lets readers proceed while a sync writes; the busy timeout covers a second process.
    // SQLite's default 2 MB page cache re-reads a 100,000-user tenant's indexes on every users page; 64 MB holds them.
    // A sync commits every page: checkpointing at SQLite's default 1,000 WAL pages (4 MB) copied the indexes' pages back and
    // synced the file every few commits, a third of a full sync; 10,000 pages (40 MB) copies each such page once in many commits.
    // The file is cut back to 64 MB after a checkpoint that let it grow past that (a long read holds one off).
    database.exec(
      'PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 10000; PRAGMA journal_size_limit = 67108864;',
    );
  } catch (err) {
    database.close();
    throw err;
  }
  return database;
}

/** Opens the file now (so a bad path fails here, not inside Kysely) and wraps it. */
export function nodeSqliteDialect(path: string): SqliteDialect {
  return new SqliteDialect({ database: new NodeSqliteDatabase(path) });
}
