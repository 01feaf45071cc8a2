import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KyselyPlugin } from 'kysely';
import pg from 'pg';
import { migrateToLatest, openStore, type Engine, type Store } from '../../src/store/database.ts';

export const ENGINES: Engine[] = ['sqlite', 'postgres'];

/** The PostgreSQL server tests create their throwaway databases on. */
export const TEST_POSTGRES_ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestStore {
  store: Store;
  /** The URL (PostgreSQL) or file path (SQLite) of this throwaway database. */
  target: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database on the given engine (a SQLite file under `parent`, by default the temporary folder); `drop()` removes it. */
export async function openTestStore(engine: Engine, parent = tmpdir()): Promise<TestStore> {
  if (engine === 'sqlite') {
    const dir = await mkdtemp(join(parent, 'roster-store-'));
    const path = join(dir, 'roster.db');
    const store = await openStore({ engine: 'sqlite', path });
    await migrateToLatest(store);
    return { store, target: path, drop: async () => { await store.close(); await rm(dir, { recursive: true, force: true }); } };
  }
  const name = `roster_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: TEST_POSTGRES_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(TEST_POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  const store = await openStore({ engine: 'postgres', url: url.toString() });
  await migrateToLatest(store);
  return {
    store,
    target: url.toString(),
    drop: async () => {
      await store.close();
      const cleanup = new pg.Client({ connectionString: TEST_POSTGRES_ADMIN_URL });
      await cleanup.connect();
      try {
        // pg's Pool.end() resolves before its sockets close; a forced drop would then kill them mid-goodbye.
        for (let i = 0; i < 100; i++) {
          const { rows } = await cleanup.query<{ n: string }>('select count(*) as n from pg_stat_activity where datname = $1', [name]);
          if (Number(rows[0]?.n) === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await cleanup.query(`drop database if exists ${name} with (force)`);
      } finally {
        await cleanup.end();
      }
    },
  };
}

/**
 * The same database as `store`, but every statement issued after its
 * `afterCommits`-th transaction commits fails, as if the process died right
 * after that commit. What a run wrote outside that transaction is lost; what
 * the transaction wrote stays.
 */
export function storeDyingAfterCommit(store: Store, afterCommits: number): { store: Store; dead: () => boolean } {
  let commits = 0;
  let dead = false;
  const plugin: KyselyPlugin = {
    transformQuery(args) {
      if (dead) throw new Error('the process died right after a commit');
      return args.node;
    },
    async transformResult(args) {
      return args.result;
    },
  };
  const db = store.db.withPlugin(plugin);
  const dying = new Proxy(db, {
    get(target, property) {
      if (property === 'transaction') {
        return () => {
          const builder = target.transaction();
          return {
            execute: async <T,>(work: Parameters<typeof builder.execute<T>>[0]): Promise<T> => {
              const result = await builder.execute(work);
              if (++commits === afterCommits) dead = true;
              return result;
            },
          };
        };
      }
      // Kysely's methods read private fields: call them on the real instance.
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: { ...store, db: dying, close: async () => {} }, dead: () => dead };
}
