import { seededRandom } from '../../src/emulator/random.ts';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Migrator, sql } from 'kysely';
import { migrationProvider } from '../../src/store/migrations.ts';
import { SyncedUserRepository } from '../../src/store/synced-users.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { ftsPhrase, UserRepository, type UserQuery } from '../../src/store/users.ts';
import { TenantLifecycle } from '../../src/tenants/lifecycle.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const SEARCHED = ['display_name', 'mail', 'user_principal_name', 'department'] as const;
type SearchedRow = { id: string } & Record<(typeof SEARCHED)[number], string | null> & { account_enabled: number };

/** LIKE's promise: ASCII letters match either case; every other character only itself. */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** The meaning of a search, written plainly: some searched column contains the text, ignoring ASCII case. */
function expectedIds(rows: readonly SearchedRow[], search: string, state: UserQuery['state'] = 'all'): string[] {
  const needle = asciiLower(search.trim());
  return rows
    .filter((row) => SEARCHED.some((column) => row[column] !== null && asciiLower(row[column]).includes(needle)))
    // The generated users are never deleted: 'active' means enabled.
    .filter((row) => state === 'all' || (state === 'disabled' ? row.account_enabled === 0 : row.account_enabled === 1))
    .map((row) => row.id)
    .sort();
}

// Non-ASCII letters appear in one case only: LIKE folds only ASCII, the trigram index and ILIKE fold more.
const GIVEN = ['Ann', 'Chen', 'Zoë', 'José', 'Bjørn', 'Grüße', 'Ömer', 'Li', 'Ng', 'O\'Brien', 'Anne-Marie', 'Al', 'Chenoa'];
const FAMILY = ['Müller', 'Chen', 'Smith', 'Łukasz'.toLowerCase(), 'Nuñez', 'Van der Berg', 'Ó Sé', 'Wu', 'Kowalski', 'Chenault', 'Sørensen'];
const DEPARTMENTS = ['Research Lab', 'R&D', 'Sales_EMEA', '100% Support', 'Ops\\Infra', 'Legal "Team"', 'Engineering', 'It', null];

function generatedUsers(count: number, seed: number, prefix: string): SearchedRow[] {
  const random = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  return Array.from({ length: count }, (_, i) => {
    const given = pick(GIVEN);
    const family = pick(FAMILY);
    const local = `${given}.${family}`.replace(/[^A-Za-z.]/g, '').toLowerCase() || 'user';
    const roll = random();
    return {
      id: `${prefix}-${String(i).padStart(4, '0')}`,
      display_name: roll < 0.05 ? null : roll < 0.1 ? `${given} ${family} (${pick(['*', 'OR', 'NEAR(', '%', '_', '"'])})` : `${given} ${family}`,
      mail: roll > 0.9 ? null : `${local}${i}@contoso.com`,
      user_principal_name: `${local}${i}@${random() < 0.5 ? 'contoso.onmicrosoft.com' : 'CONTOSO.COM'}`,
      department: pick(DEPARTMENTS),
      account_enabled: random() < 0.2 ? 0 : 1,
    };
  });
}

/** Searches that ask for text taken from the users (ASCII case flipped at random), plus text no user has. */
function searchTexts(rows: readonly SearchedRow[], count: number, seed: number): string[] {
  const random = seededRandom(seed);
  const texts = new Set<string>(['a', 'A', 'ch', 'ü', '_', '%', '\\', '"', '*', 'zz', 'chen', 'CHEN', 'müller', 'MüLLER', 'muller', 'r&d', 'ops\\in', '100%', 's_e', '"team"', '""', 'Ó sé', 'xyzzy']);
  while (texts.size < count) {
    const row = rows[Math.floor(random() * rows.length)]!;
    const value = row[SEARCHED[Math.floor(random() * SEARCHED.length)]!];
    if (!value) continue;
    const characters = [...value];
    const length = 1 + Math.floor(random() * Math.min(8, characters.length));
    const start = Math.floor(random() * (characters.length - length + 1));
    texts.add(
      characters
        .slice(start, start + length)
        .map((c) => (random() < 0.5 && /[a-z]/i.test(c) ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c))
        .join(''),
    );
  }
  return [...texts];
}

for (const engine of ENGINES) {
  describe(`users search on ${engine}`, () => {
    let test: TestStore;
    let users: UserRepository;
    before(async () => {
      test = await openTestStore(engine);
      users = new UserRepository(test.store.db, engine);
    });
    after(async () => {
      await test.drop();
    });

    async function tenantWith(rows: readonly SearchedRow[]): Promise<string> {
      const tenantId = randomUUID();
      await new TenantRepository(test.store.db).activate({ id: tenantId, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: null, signupContext: null }, 1);
      await new SyncedUserRepository(test.store.db, engine).upsert(
        tenantId,
        rows.map((row) => ({ ...row, updated_at: 1 })),
      );
      return tenantId;
    }

    async function foundIds(tenantId: string, search: string, state: UserQuery['state'] = 'all'): Promise<{ ids: string[]; total: number }> {
      const page = await users.search(tenantId, { search, state }, { offset: 0, limit: 1000 });
      return { ids: page.users.map((u) => u.id).sort(), total: page.total };
    }

    it('finds exactly the users a plain "contains, ignoring ASCII case" finds, for short, long and hostile text', async () => {
      const rows = generatedUsers(400, 17, 'u');
      const tenantId = await tenantWith(rows);
      // Another tenant holding the same names: none of its users may appear.
      await tenantWith(generatedUsers(150, 17, 'other'));
      const texts = searchTexts(rows, 160, 23);
      for (const text of texts) {
        for (const state of ['all', 'disabled'] as const) {
          const wanted = expectedIds(rows, text, state);
          const { ids, total } = await foundIds(tenantId, text, state);
          assert.deepEqual(ids, wanted, `search ${JSON.stringify(text)} (${state})`);
          assert.equal(total, wanted.length, `count of ${JSON.stringify(text)} (${state})`);
        }
      }
      // The export and the API's pages share the predicate.
      for (const text of texts.slice(0, 40)) {
        const exported: string[] = [];
        for await (const user of users.exportAll(tenantId, { search: text }, 50)) exported.push(user.id);
        assert.deepEqual(exported.sort(), expectedIds(rows, text), `export of ${JSON.stringify(text)}`);
        const page = await users.pageById(tenantId, { search: text }, { limit: 1000 });
        assert.deepEqual(page.map((u) => u.id), expectedIds(rows, text), `API page of ${JSON.stringify(text)}`);
      }
    });

    it('pages of matches come in the order of the whole list, for every sort, both directions and any state', async () => {
      const rows = generatedUsers(250, 41, 's');
      const tenantId = await tenantWith(rows);
      const texts = ['chen', 'contoso', 'müller', 'research', 'an', 'xyzzy', 'sales_emea'];
      for (const sort of ['name', 'upn', 'mail', 'department'] as const) {
        for (const descending of [false, true]) {
          for (const state of ['all', 'active'] as const) {
            // The engine's own order of every user (its collation decides), filtered by the plain meaning of the search.
            const everyone = (await users.search(tenantId, { sort, descending, state }, { offset: 0, limit: 1000 })).users.map((u) => u.id);
            for (const text of texts) {
              const wanted = new Set(expectedIds(rows, text, state));
              const inOrder = everyone.filter((id) => wanted.has(id));
              for (const offset of [0, 7, 21]) {
                const page = await users.search(tenantId, { search: text, sort, descending, state }, { offset, limit: 7 });
                assert.deepEqual(page.users.map((u) => u.id), inOrder.slice(offset, offset + 7), `${JSON.stringify(text)} by ${sort}${descending ? ' desc' : ''} (${state}) from ${offset}`);
                assert.equal(page.total, inOrder.length);
              }
            }
          }
        }
      }
    });

    it('matches that sort together, first or last, page the same as matches spread through the list', async () => {
      // 600 users; "zephyr" only in the 60 that sort last by name, "aardvark" in the 60 that sort first, "middle" every 10th.
      const rows: SearchedRow[] = Array.from({ length: 600 }, (_, i) => ({
        id: `c-${String(i).padStart(3, '0')}`,
        display_name: `${String(i).padStart(3, '0')} ${i >= 540 ? 'Zephyr' : i < 60 ? 'Aardvark' : 'Person'}${i % 10 === 0 ? ' Middle' : ''}`,
        mail: null,
        user_principal_name: `c${i}@contoso.com`,
        department: null,
        account_enabled: 1,
      }));
      const tenantId = await tenantWith(rows);
      for (const text of ['zephyr', 'aardvark', 'middle', 'ZEPHYR 59']) {
        for (const descending of [false, true]) {
          const inOrder = expectedIds(rows, text);
          if (descending) inOrder.reverse();
          for (const [offset, limit] of [[0, 10], [10, 10], [50, 20], [0, 100]] as const) {
            const page = await users.search(tenantId, { search: text, descending }, { offset, limit });
            assert.deepEqual(page.users.map((u) => u.id), inOrder.slice(offset, offset + limit), `${JSON.stringify(text)}${descending ? ' desc' : ''} from ${offset}`);
          }
        }
      }
    });

    it('query syntax in the text is only text: quotes, *, OR, NEAR(, column filters, wildcards, backslashes', async () => {
      const rows: SearchedRow[] = [
        { id: 'quote', display_name: 'Dwayne "The Rock" Johnson', mail: null, user_principal_name: 'rock@contoso.com', department: null, account_enabled: 1 },
        { id: 'star', display_name: 'Star*Power', mail: null, user_principal_name: 'star@contoso.com', department: null, account_enabled: 1 },
        { id: 'or', display_name: 'Salt OR Pepper', mail: null, user_principal_name: 'salt@contoso.com', department: null, account_enabled: 1 },
        { id: 'near', display_name: 'NEAR(a b)', mail: null, user_principal_name: 'near@contoso.com', department: null, account_enabled: 1 },
        { id: 'colon', display_name: 'display_name:chen', mail: null, user_principal_name: 'colon@contoso.com', department: null, account_enabled: 1 },
        { id: 'percent', display_name: null, mail: null, user_principal_name: 'pct@contoso.com', department: '100%_off\\sale', account_enabled: 1 },
        { id: 'muller', display_name: 'Anna Müller', mail: 'anna.mueller@contoso.com', user_principal_name: 'anna@contoso.com', department: null, account_enabled: 1 },
        { id: 'chen', display_name: 'Wei Chen', mail: null, user_principal_name: 'wei@contoso.com', department: 'Research Lab', account_enabled: 1 },
      ];
      const tenantId = await tenantWith(rows);
      const cases: [string, string[]][] = [
        ['"The Rock"', ['quote']],
        ['"the rock', ['quote']],
        ['"', ['quote']],
        ['""', []],
        ['"" OR "', []],
        ['r*p', ['star']],
        ['star*', ['star']],
        ['*', ['star']],
        ['t OR p', ['or']],
        ['OR', ['or']],
        ['NEAR(', ['near']],
        ['near(a b)', ['near']],
        ['NEAR(chen', []],
        ['display_name:chen', ['colon']],
        ['{display_name}:wei', []],
        ['^wei', []],
        ['-chen', []],
        ['chen AND', []],
        ['chen)', []],
        ['%', ['percent']],
        ['%_', ['percent']],
        ['0%_o', ['percent']],
        ['_', ['colon', 'percent']],
        ['\\', ['percent']],
        ['f\\s', ['percent']],
        ['\\\\', []],
        ['Müller', ['muller']],
        ['müller', ['muller']],
        ['ANNA Mü', ['muller']],
        ['muller', []],
        ['mueller', ['muller']],
        ['CHEN', ['chen', 'colon']],
        ['h l', ['chen']],
        ['research LAB', ['chen']],
        ["'; drop table users; --", []],
        ['😀', []],
        ['😀😀😀', []],
      ];
      for (const [text, wanted] of cases) {
        assert.deepEqual((await foundIds(tenantId, text)).ids, [...wanted].sort(), `search ${JSON.stringify(text)}`);
        assert.deepEqual(expectedIds(rows, text), [...wanted].sort(), `the reference agrees on ${JSON.stringify(text)}`);
      }
      assert.equal(ftsPhrase('a"b'), '"a""b"');
    });

    it('the index follows inserts, upserts, renames, unrelated updates, deletes and a tenant leaving', async () => {
      const rows = generatedUsers(60, 5, 'k');
      const tenantId = await tenantWith(rows);
      const db = test.store.db;
      const synced = new SyncedUserRepository(db, engine);
      const check = async (current: SearchedRow[], texts: string[]) => {
        for (const text of texts) {
          const wanted = expectedIds(current, text);
          assert.deepEqual(await foundIds(tenantId, text), { ids: wanted, total: wanted.length }, `search ${JSON.stringify(text)}`);
        }
      };
      let current = [...rows];
      // A sync's upsert that renames some users and leaves others as they were.
      const renamed = current.slice(0, 10).map((row, i) => ({ ...row, display_name: `Quillon Renamed ${i}`, department: i % 2 ? 'Quantum Desk' : row.department }));
      await synced.upsert(tenantId, renamed.map((row) => ({ ...row, updated_at: 2 })));
      current = [...renamed, ...current.slice(10)];
      await check(current, ['quillon', 'quantum desk', 'renamed 3', rows[0]!.display_name ?? 'chen', 'chen', 'contoso']);
      // Updates of columns the search does not read leave it as it was.
      await synced.touch(tenantId, current.map((row) => row.id), { synced_at: 3, seen_run_id: 'run-1' });
      await db.updateTable('users').set({ job_title: 'Quillon', account_enabled: 0 }).where('tenant_id', '=', tenantId).execute();
      current = current.map((row) => ({ ...row, account_enabled: 0 }));
      await check(current, ['quillon', 'chen', 'contoso']);
      // A sign-in changes the UPN and mail; a new user arrives.
      await users.recordSignIn({ tenantId, objectId: current[20]!.id, displayName: current[20]!.display_name, username: 'zebedee@contoso.com', email: null }, 4);
      await users.recordSignIn({ tenantId, objectId: 'newcomer', displayName: 'Zebulon Newcomer', username: 'zebulon@contoso.com', email: 'zeb@contoso.com' }, 4);
      current[20] = { ...current[20]!, user_principal_name: 'zebedee@contoso.com', mail: null };
      current.push({ id: 'newcomer', display_name: 'Zebulon Newcomer', mail: 'zeb@contoso.com', user_principal_name: 'zebulon@contoso.com', department: null, account_enabled: 1 });
      await check(current, ['zeb', 'zebedee', 'zebulon', 'newcomer', 'contoso']);
      // Removed users are gone from the index too.
      const removed = current.slice(30, 45).map((row) => row.id);
      await db.deleteFrom('users').where('tenant_id', '=', tenantId).where('id', 'in', removed).execute();
      current = current.filter((row) => !removed.includes(row.id));
      await check(current, ['contoso', 'chen', 'quillon']);
      // A user's key rewritten in place (no code path does it, the index must not be wrong if one did).
      await db.updateTable('users').set({ id: 'rekeyed' }).where('tenant_id', '=', tenantId).where('id', '=', 'newcomer').execute();
      current = current.map((row) => (row.id === 'newcomer' ? { ...row, id: 'rekeyed' } : row));
      await check(current, ['zebulon']);
      // A tenant that leaves takes its users, and their index rows, with it.
      await new TenantLifecycle(test.store).offboard(tenantId, 'test', 5);
      await check([], ['contoso', 'zebulon']);
      if (engine === 'sqlite') {
        const { rows: left } = await sql<{ keys: number; texts: number }>`
          select (select count(*) from users_search_rowids where tenant_id = ${tenantId}) as keys,
                 (select count(*) from users_search_text where tenant_id = ${tenantId}) as texts`.execute(db);
        assert.deepEqual([Number(left[0]!.keys), Number(left[0]!.texts)], [0, 0]);
      }
    });

    if (engine === 'sqlite') {
      it('renumbered rowids of users (as VACUUM may renumber them) leave the index pointing at the right users', async () => {
        const rows = generatedUsers(300, 11, 'v');
        const tenantId = await tenantWith(rows);
        const db = test.store.db;
        const gone = rows.filter((_, i) => i % 3 === 0).map((row) => row.id);
        await db.deleteFrom('users').where('tenant_id', '=', tenantId).where('id', 'in', gone).execute();
        let current = rows.filter((row) => !gone.includes(row.id));
        // What VACUUM is allowed to do to a table without an INTEGER PRIMARY KEY, done outright: every rowid changes, the order reverses.
        await sql`update users set rowid = -rowid where tenant_id = ${tenantId}`.execute(db);
        await sql`vacuum`.execute(db);
        for (const text of ['chen', 'müller', 'contoso', 'research lab', 'sales_emea']) assert.deepEqual((await foundIds(tenantId, text)).ids, expectedIds(current, text), `search ${JSON.stringify(text)}`);
        // Writes after the renumbering change and remove the right index rows.
        const [renamedRow, removedRow] = [current[0]!, current[1]!];
        await db.updateTable('users').set({ display_name: 'Xanthippe After Vacuum' }).where('tenant_id', '=', tenantId).where('id', '=', renamedRow.id).execute();
        await db.deleteFrom('users').where('tenant_id', '=', tenantId).where('id', '=', removedRow.id).execute();
        current = current.filter((row) => row.id !== removedRow.id).map((row) => (row.id === renamedRow.id ? { ...row, display_name: 'Xanthippe After Vacuum' } : row));
        for (const text of ['xanthippe', 'chen', 'contoso', renamedRow.user_principal_name!, removedRow.user_principal_name!]) {
          const wanted = expectedIds(current, text);
          assert.deepEqual(await foundIds(tenantId, text), { ids: wanted, total: wanted.length }, `search ${JSON.stringify(text)}`);
        }
      });

      it('a search of 3 or more characters reads the trigram index, not the tenant', async () => {
        const tenantId = await tenantWith(generatedUsers(50, 3, 'p'));
        const plan = async (search: string) => {
          const { rows } = await sql<{ detail: string }>`explain query plan select id from users where tenant_id = ${tenantId} and id in (select id from users_search_text where users_search_text match ${ftsPhrase(search)} and tenant_id = ${tenantId})`.execute(test.store.db);
          return rows.map((row) => row.detail).join(' | ');
        };
        assert.match(await plan('chen'), /users_search_text VIRTUAL TABLE INDEX \d+:M/);
      });

      it('the migration indexes the users already stored, and its reversal leaves a working users table', async () => {
        const other = await openTestStore('sqlite');
        try {
          const migrator = new Migrator({ db: other.store.db, provider: migrationProvider });
          const { error } = await migrator.migrateTo('0016_webhook_deliveries_due_in_order');
          assert.equal(error, undefined);
          const rows = generatedUsers(120, 29, 'm');
          const tenantId = randomUUID();
          await new TenantRepository(other.store.db).activate({ id: tenantId, displayName: 'Contoso', domains: [], signedUpByOid: null, signupContext: null }, 1);
          await other.store.db.insertInto('users').values(rows.map((row) => ({ ...row, tenant_id: tenantId, roster_role: 'member' as const, updated_at: 1 }))).execute();
          assert.deepEqual(await migrator.migrateTo('0017_user_search_fts').then(({ results }) => results?.map((r) => r.migrationName)), ['0017_user_search_fts']);
          const search = new UserRepository(other.store.db, 'sqlite');
          for (const text of ['chen', 'contoso', 'müller', 'research']) {
            const page = await search.search(tenantId, { search: text }, { offset: 0, limit: 1000 });
            assert.deepEqual(page.users.map((u) => u.id).sort(), expectedIds(rows, text), `search ${JSON.stringify(text)}`);
          }
          const { error: downError } = await migrator.migrateDown();
          assert.equal(downError, undefined);
          await other.store.db.insertInto('users').values({ tenant_id: tenantId, id: 'after-down', display_name: 'After Down', roster_role: 'member', account_enabled: 1, updated_at: 2 }).execute();
          await other.store.db.deleteFrom('users').where('tenant_id', '=', tenantId).where('id', '=', rows[0]!.id).execute();
          const { rows: left } = await sql<{ name: string }>`select name from sqlite_master where name like 'users_search_text%' or name = 'users_search_rowids'`.execute(other.store.db);
          assert.deepEqual(left, []);
        } finally {
          await other.drop();
        }
      });
    }
  });
}
