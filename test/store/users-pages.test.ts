import { seededRandom } from '../../src/emulator/random.ts';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Insertable } from 'kysely';
import type { UsersTable } from '../../src/store/schema.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { USER_SORTS, UserRepository, type UserBoundary, type UserPage, type UserQuery } from '../../src/store/users.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const PAGE = 20;

type UserRow = Insertable<UsersTable> & { id: string };

/**
 * Users whose sort keys tie often (a few names, departments differing only in case,
 * missing and empty values), so pages start and end inside runs of equal keys.
 */
function makeUsers(tenantId: string, count: number, random: () => number): UserRow[] {
  const names = ['Ana', 'ana', 'Bo', 'Chen Li', 'chen li', 'Dee', 'Émile', 'Zoë', null, ''];
  const departments = ['Sales', 'sales', 'SALES', 'Legal', 'R&D', null, '', 'Ops'];
  const pick = <T,>(from: T[]) => from[Math.floor(random() * from.length)]!;
  return Array.from({ length: count }, (_, i) => ({
    tenant_id: tenantId,
    id: randomUUID(),
    display_name: pick(names),
    mail: random() < 0.2 ? null : `${pick(['a', 'B', 'c', 'Zed'])}${Math.floor(random() * 30)}@example.com`,
    user_principal_name: `${pick(['x', 'Y', 'z'])}${Math.floor(random() * 50)}@${tenantId.slice(0, 4)}.example`,
    department: pick(departments),
    account_enabled: random() < 0.8 ? 1 : 0,
    roster_role: 'member' as const,
    updated_at: i,
  }));
}

for (const engine of ENGINES) {
  describe(`users listing by keyset on ${engine}`, () => {
    let test: TestStore;
    let users: UserRepository;
    before(async () => {
      test = await openTestStore(engine);
      users = new UserRepository(test.store.db, engine);
    });
    after(async () => {
      await test.drop();
    });

    async function newTenant(count: number, seed: number): Promise<{ tenantId: string; rows: UserRow[] }> {
      const tenantId = randomUUID();
      await new TenantRepository(test.store.db).activate({ id: tenantId, displayName: `Keyset ${seed}`, domains: [], signedUpByOid: null, signupContext: null }, 1);
      const rows = makeUsers(tenantId, count, seededRandom(seed));
      for (let i = 0; i < rows.length; i += 200) await test.store.db.insertInto('users').values(rows.slice(i, i + 200)).execute();
      return { tenantId, rows };
    }

    const ids = (page: UserPage) => page.users.map((u) => u.id);

    /** Every page by OFFSET, which reads the order straight from the database's ORDER BY. */
    async function byOffset(tenantId: string, filter: UserQuery): Promise<string[]> {
      const all: string[] = [];
      for (let offset = 0; ; offset += PAGE) {
        const page = await users.search(tenantId, filter, { offset, limit: PAGE });
        all.push(...ids(page));
        if (!page.hasNext) return all;
      }
    }

    it('walking forward by "after" and back by "before" gives the same order as OFFSET, for every sort both ways', async () => {
      const { tenantId } = await newTenant(230, 1);
      for (const sort of USER_SORTS) {
        for (const descending of [false, true]) {
          const filter: UserQuery = { sort, descending };
          const label = `${sort} ${descending ? 'desc' : 'asc'}`;
          const expected = await byOffset(tenantId, filter);
          assert.equal(expected.length, 230, label);

          const forward: UserPage[] = [await users.search(tenantId, filter, { limit: PAGE })];
          assert.equal(forward[0]!.hasPrevious, false, label);
          while (forward.at(-1)!.hasNext) forward.push(await users.search(tenantId, filter, { after: forward.at(-1)!.last!, limit: PAGE }));
          assert.deepEqual(forward.flatMap(ids), expected, label);
          assert.ok(forward.slice(1).every((page) => page.hasPrevious), `${label}: every later page has a previous one`);

          // The previous link of each page is exactly the page before it.
          for (let n = 1; n < forward.length; n++) {
            const previous = await users.search(tenantId, filter, { before: forward[n]!.first!, limit: PAGE });
            assert.deepEqual(ids(previous), ids(forward[n - 1]!), `${label}: previous of page ${n + 1}`);
            assert.equal(previous.hasPrevious, n > 1, label);
            assert.equal(previous.hasNext, true, label);
          }

          // From the last page back to the first.
          const backward: UserPage[] = [await users.search(tenantId, filter, { fromEnd: true, limit: PAGE })];
          assert.equal(backward[0]!.hasNext, false, label);
          while (backward.at(-1)!.hasPrevious) backward.push(await users.search(tenantId, filter, { before: backward.at(-1)!.first!, limit: PAGE }));
          // Each step back is the page before; the last step, short of a page, shows the full first page instead.
          const beforeFirst = backward.slice(0, -1).reverse().flatMap(ids);
          assert.deepEqual(beforeFirst, expected.slice(expected.length - beforeFirst.length), label);
          assert.deepEqual(ids(backward.at(-1)!), expected.slice(0, PAGE), `${label}: back at the start shows the full first page`);
          assert.equal(backward.at(-1)!.hasNext, true, label);
        }
      }
    });

    /**
     * Between page loads, users are added with sort keys before and after the cursor, and users on
     * pages not yet seen (and some already seen) are deleted. Every user present at the start and
     * not deleted must be seen exactly once, and no user twice.
     */
    async function walkWhileChanging(filter: UserQuery, seed: number) {
      const random = seededRandom(seed);
      const { tenantId, rows } = await newTenant(260, seed);
      const label = JSON.stringify(filter);
      const matches = async () => new Set(await byOffset(tenantId, filter));
      const atStart = await matches();
      assert.ok(atStart.size > 3 * PAGE, `${label}: enough users for several pages (${atStart.size})`);
      const byId = new Map(rows.map((row) => [row.id, row]));
      const seen: string[] = [];
      const deleted = new Set<string>();
      let cursor: UserBoundary | undefined;
      for (let loads = 0; ; loads++) {
        assert.ok(loads < 100, `${label}: the walk ends`);
        const page = await users.search(tenantId, filter, cursor ? { after: cursor, limit: PAGE } : { limit: PAGE });
        seen.push(...ids(page));
        if (!page.hasNext) break;
        cursor = page.last!;

        // New users that sort with a user already seen (before the cursor) and with one not seen yet (after it).
        const seenRows = seen.map((id) => byId.get(id)!).filter(Boolean);
        const unseen = [...atStart].filter((id) => !seen.includes(id) && !deleted.has(id));
        const unseenRows = unseen.map((id) => byId.get(id)!);
        const added: UserRow[] = [];
        for (const template of [seenRows, seenRows, unseenRows, unseenRows].map((from) => from[Math.floor(random() * from.length)]).filter((row) => row !== undefined)) {
          added.push({ ...template, id: randomUUID(), updated_at: 10_000 + loads });
        }
        // The cursor's own row may be one of them: an exact copy of its sort key, just before or after it by id.
        added.push({ ...byId.get(cursor.id)!, id: randomUUID(), updated_at: 20_000 + loads });
        await test.store.db.insertInto('users').values(added).execute();
        for (const row of added) byId.set(row.id, row);

        // Deletions: two users on later pages, the cursor's own row now and then, and one already seen.
        const doomed = [unseen[Math.floor(random() * unseen.length)], unseen[Math.floor(random() * unseen.length)], loads % 3 === 0 ? cursor.id : undefined, seen[Math.floor(random() * seen.length)]].filter((id): id is string => id !== undefined);
        await test.store.db.deleteFrom('users').where('tenant_id', '=', tenantId).where('id', 'in', doomed).execute();
        for (const id of doomed) if (!seen.includes(id)) deleted.add(id);
      }

      const counts = new Map<string, number>();
      for (const id of seen) counts.set(id, (counts.get(id) ?? 0) + 1);
      const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
      assert.deepEqual(twice, [], `${label}: no user on two pages`);
      const missed = [...atStart].filter((id) => !deleted.has(id) && !counts.has(id));
      assert.deepEqual(missed, [], `${label}: every user there from the start and never deleted is seen`);
      const ghosts = seen.filter((id) => deleted.has(id));
      assert.deepEqual(ghosts, [], `${label}: no user deleted before their page was loaded`);
      assert.ok(deleted.size > 10, `${label}: the walk met deletions (${deleted.size})`);
      assert.ok(seen.length > atStart.size - deleted.size, `${label}: the walk also met some of the added users`);
    }

    for (const sort of USER_SORTS) {
      for (const descending of [false, true]) {
        it(`by ${sort}, ${descending ? 'descending' : 'ascending'}: every user is seen exactly once while users are added and removed between pages`, async () => {
          await walkWhileChanging({ sort, descending }, 100 + USER_SORTS.indexOf(sort) * 2 + Number(descending));
        });
      }
    }

    it('the same holds with a state filter and with a text search', async () => {
      await walkWhileChanging({ sort: 'department', descending: true, state: 'active' }, 200);
      await walkWhileChanging({ sort: 'mail', search: 'example' }, 201);
      await walkWhileChanging({ sort: 'name', descending: true, search: 'a' }, 202);
    });

    it('"before" at the start gives the full first page again, even after users in front were deleted', async () => {
      const { tenantId } = await newTenant(60, 300);
      const filter: UserQuery = { sort: 'upn' };
      const first = await users.search(tenantId, filter, { limit: PAGE });
      const second = await users.search(tenantId, filter, { after: first.last!, limit: PAGE });
      // Five users of the first page leave: only 15 are left before the second page.
      await test.store.db.deleteFrom('users').where('tenant_id', '=', tenantId).where('id', 'in', ids(first).slice(3, 8)).execute();
      const back = await users.search(tenantId, filter, { before: second.first!, limit: PAGE });
      assert.equal(back.users.length, PAGE);
      assert.equal(back.hasPrevious, false);
      assert.equal(back.hasNext, true);
      assert.deepEqual(ids(back), (await byOffset(tenantId, filter)).slice(0, PAGE));
      // With users added in front instead, "before" is the 20 users just before the boundary, and more precede them.
      const more = await newTenant(60, 301);
      const firstAgain = await users.search(more.tenantId, filter, { limit: PAGE });
      const secondAgain = await users.search(more.tenantId, filter, { after: firstAgain.last!, limit: PAGE });
      await test.store.db
        .insertInto('users')
        .values([0, 1, 2].map((i) => ({ ...more.rows[0]!, id: randomUUID(), user_principal_name: `!${i}@front.example` })))
        .execute();
      const previous = await users.search(more.tenantId, filter, { before: secondAgain.first!, limit: PAGE });
      assert.equal(previous.hasPrevious, true);
      assert.deepEqual(ids(previous), (await byOffset(more.tenantId, filter)).slice(3, 3 + PAGE));
    });

    it('a boundary naming no user still pages from its place, and a key sorting past every user gives an empty last page', async () => {
      const { tenantId } = await newTenant(45, 400);
      const expected = await byOffset(tenantId, { sort: 'department' });
      const nowhere = await users.search(tenantId, { sort: 'department' }, { after: { key: '', id: '' }, limit: PAGE });
      assert.deepEqual(ids(nowhere), expected.slice(0, PAGE), 'before every user: the first users');
      const beyond = await users.search(tenantId, { sort: 'department' }, { after: { key: 'zzzzzz', id: 'z' }, limit: PAGE });
      assert.deepEqual(beyond.users, []);
      assert.equal(beyond.hasNext, false);
      assert.equal(beyond.hasPrevious, true);
      assert.equal(beyond.first, null);
    });

    it('the export still lists every user once, in the page order', async () => {
      const { tenantId } = await newTenant(120, 500);
      for (const descending of [false, true]) {
        const exported: string[] = [];
        for await (const user of users.exportAll(tenantId, { sort: 'department', descending }, 7)) exported.push(user.id);
        assert.deepEqual(exported, await byOffset(tenantId, { sort: 'department', descending }));
      }
    });
  });
}
