import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { DeltaItem, FoldContext, ObjectChange } from '../../src/directory/object-kind.ts';
import { USERS } from '../../src/directory/user-kind.ts';
import type { EventDraft } from '../../src/store/events.ts';
import { repositoriesOf, transaction } from '../../src/store/repositories.ts';
import { SessionRepository } from '../../src/store/sessions.ts';
import type { UserWrite } from '../../src/store/synced-users.ts';
import { PostgresUserMerge } from '../../src/store/synced-users-postgres.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { openTestStore, type TestStore } from '../helpers/stores.ts';

const NOW = 1_700_000_000_000;
const OLD_RUN = 'run-0';

/** Every property a listing names, for user `n`. */
function listedItem(n: number, extra: Record<string, unknown> = {}): DeltaItem {
  return {
    id: `u${n}`,
    displayName: `User ${n}`,
    givenName: 'User',
    surname: `N${n}`,
    mail: `user${n}@contoso.com`,
    userPrincipalName: `user${n}@contoso.com`,
    jobTitle: n % 2 ? 'Engineer' : null,
    department: 'R&D',
    officeLocation: null,
    accountEnabled: true,
    userType: 'Member',
    createdDateTime: '2024-01-01T00:00:00Z',
    employeeId: String(1000 + n),
    companyName: 'Contoso',
    mobilePhone: null,
    businessPhones: n % 3 ? [] : ['+1 555 0100'],
    ...extra,
  };
}

/** Text the page carries as PostgreSQL array literals: quotes, braces, commas, backslashes, the word NULL, blanks and non-ASCII must come back as sent. */
const AWKWARD = ['"quoted", {braced}', 'back\\slash\\', 'NULL', '', ' ', 'Zoë Ŝmith — 日本', 'tab\tand\nnewline', "it's"];

interface Outcome {
  changes: Pick<ObjectChange<UserWrite>, 'id' | 'change' | 'listed' | 'ends' | 'pendingRemovals'>[];
  events: EventDraft[];
}

describe('a full listing merged in PostgreSQL finds what the fold finds', () => {
  let test: TestStore;
  before(async () => {
    test = await openTestStore('postgres');
  });
  after(async () => {
    await test.drop();
  });

  async function tenant(): Promise<string> {
    const id = randomUUID();
    await new TenantRepository(test.store.db).activate({ id, displayName: 'Contoso', domains: ['contoso.com'], signedUpByOid: null, signupContext: null }, NOW);
    return id;
  }

  /** The same stored users in a tenant: some soft-deleted, one disabled, one with columns a listing never mentions, each with a session. */
  async function seeded(): Promise<string> {
    const tenantId = await tenant();
    const repos = repositoriesOf(test.store);
    const rows: UserWrite[] = [];
    for (let n = 0; n < 12; n++) {
      const item = listedItem(n);
      rows.push({
        id: item.id,
        display_name: item.displayName as string,
        given_name: 'User',
        surname: `N${n}`,
        mail: `user${n}@contoso.com`,
        user_principal_name: `user${n}@contoso.com`,
        job_title: n % 2 ? 'Engineer' : null,
        department: 'R&D',
        office_location: n === 5 ? 'Kept when not mentioned' : null,
        account_enabled: n === 6 ? 0 : 1,
        user_type: 'Member',
        created_date_time: '2024-01-01T00:00:00Z',
        employee_id: String(1000 + n),
        company_name: 'Contoso',
        mobile_phone: null,
        business_phones: JSON.stringify(n % 3 ? [] : ['+1 555 0100']),
        deleted_at: n === 4 || n === 7 ? NOW - 1000 : null,
        seen_run_id: n === 8 ? null : OLD_RUN,
        synced_at: NOW - 5000,
        updated_at: NOW - 5000,
      });
    }
    await repos.syncedUsers.upsert(tenantId, rows);
    const sessions = new SessionRepository(test.store.db, { idleMs: 3_600_000, absoluteMs: 36_000_000 });
    for (const row of rows) await sessions.create(tenantId, row.id, NOW);
    return tenantId;
  }

  /** The page through the read, the fold and the apply (how SQLite and delta rounds write it). */
  async function folded(tenantId: string, items: readonly DeltaItem[], context: FoldContext): Promise<Outcome> {
    return transaction(test.store, async (repos) => {
      const rows = USERS.rows(repos);
      const stored = await rows.stored(tenantId, items);
      const changes = USERS.fold(items, stored, context);
      await rows.apply(tenantId, changes);
      return { changes: changes.map(brief), events: own(tenantId, USERS.events(tenantId, changes, stored)) };
    });
  }

  /** The page merged in the database; fails the test when the merge declines it. */
  async function merged(tenantId: string, items: readonly DeltaItem[], context: FoldContext, startedEmpty = false): Promise<Outcome & { rest: DeltaItem[] }> {
    return transaction(test.store, async (repos) => {
      const page = await USERS.rows(repos).mergePage!(tenantId, items, context, startedEmpty);
      assert.ok(page, 'the merge takes the page');
      return { changes: page.changes.map(brief), events: own(tenantId, USERS.events(tenantId, page.changes, page.stored)), rest: page.rest };
    });
  }

  /** Events compared across twin tenants: each must name its own. */
  function own(tenantId: string, events: EventDraft[]): EventDraft[] {
    return events.map((event) => ({ ...event, tenantId: event.tenantId === tenantId ? 'own tenant' : event.tenantId }));
  }

  function brief({ id, change, listed, ends, pendingRemovals }: ObjectChange<UserWrite>) {
    return { id, change, listed, ends, pendingRemovals };
  }

  /** Every column of the tenant's users but the tenant, by id. */
  async function rowsOf(tenantId: string): Promise<Record<string, unknown>[]> {
    const rows = await test.store.db.selectFrom('users').selectAll().where('tenant_id', '=', tenantId).orderBy('id').execute();
    return rows.map(({ tenant_id: _tenant, ...row }) => row);
  }

  async function sessionUsers(tenantId: string): Promise<string[]> {
    const rows = await test.store.db.selectFrom('sessions').select('user_id').where('tenant_id', '=', tenantId).orderBy('user_id').execute();
    return rows.map((row) => row.user_id);
  }

  async function assertSame(items: readonly DeltaItem[], context: FoldContext, options: { startedEmpty?: boolean; replays?: number } = {}): Promise<Outcome> {
    const [viaFold, viaMerge] = [await seeded(), await seeded()];
    let last: Outcome | undefined;
    for (let round = 0; round <= (options.replays ?? 0); round++) {
      const expected = await folded(viaFold, items, context);
      const actual = await merged(viaMerge, items, context, options.startedEmpty);
      assert.deepEqual(actual.rest, []);
      assert.deepEqual(actual.changes, expected.changes, 'the same changes, in the same order');
      assert.deepEqual(actual.events, expected.events, 'the same events');
      assert.deepEqual(await rowsOf(viaMerge), await rowsOf(viaFold), 'the same rows');
      assert.deepEqual(await sessionUsers(viaMerge), await sessionUsers(viaFold), 'the same sessions end');
      last = actual;
    }
    return last!;
  }

  const full: FoldContext = { runId: 'run-1', kind: 'full', now: NOW };

  it('a resync: unchanged users only marked seen; edits, partial items, restores, disabling and new users written and counted', async () => {
    const items = [
      ...[0, 1, 2, 3].map((n) => listedItem(n)),
      listedItem(4),
      { id: 'u5', displayName: 'Renamed 5', accountEnabled: true },
      listedItem(6, { accountEnabled: true }),
      listedItem(7, { jobTitle: 'Back and promoted' }),
      listedItem(8),
      listedItem(9, { accountEnabled: false }),
      listedItem(10, { businessPhones: ['+1 555 0199', '+1 555 0100'], mobilePhone: '+1 555 0111', jobTitle: null }),
      { id: 'u11', department: null, givenName: 'Only given' },
      listedItem(20),
      { id: 'u21', displayName: 'Sparse newcomer' },
      listedItem(22, { accountEnabled: false }),
    ];
    const outcome = await assertSame(items, full, { replays: 1 });
    assert.deepEqual(
      outcome.changes.filter((c) => c.change !== 'unchanged').map((c) => c.id),
      [],
      'a replayed page changes nothing',
    );
  });

  it('the first pass of that resync: what each user became', async () => {
    const items = [listedItem(0), listedItem(4), listedItem(6, { accountEnabled: true }), listedItem(9, { accountEnabled: false }), { id: 'u5', displayName: 'Renamed 5' }, listedItem(20)];
    const outcome = await assertSame(items, full);
    assert.deepEqual(
      outcome.changes.map((c) => [c.id, c.change, c.ends]),
      [
        ['u0', 'unchanged', false],
        ['u4', 'updated', false],
        ['u6', 'updated', false],
        ['u9', 'updated', true],
        ['u5', 'updated', false],
        ['u20', 'created', false],
      ],
    );
    assert.deepEqual(
      outcome.events.map((e) => e.type),
      ['user.restored', 'user.updated', 'user.updated', 'user.updated', 'user.created'],
    );
  });

  it('awkward text round-trips exactly, whether new or changed', async () => {
    const items = AWKWARD.flatMap((text, i) => [listedItem(100 + i, { displayName: text, department: text, businessPhones: [text] }), listedItem(i, { jobTitle: text, surname: text })]);
    await assertSame(items, full, { replays: 1 });
  });

  it('a round that began on an empty tenant inserts first, and still merges the users already stored (a replayed page)', async () => {
    const items = [listedItem(0), listedItem(1, { displayName: 'Changed' }), listedItem(4), listedItem(30), listedItem(31, { accountEnabled: false })];
    await assertSame(items, full, { startedEmpty: true, replays: 1 });
  });

  it('a page of new users only, into an empty tenant: all created, with their events', async () => {
    const [viaFold, viaMerge] = [await tenant(), await tenant()];
    const items = Array.from({ length: 50 }, (_, n) => listedItem(n, n % 7 ? {} : { displayName: AWKWARD[n % AWKWARD.length] }));
    const expected = await folded(viaFold, items, full);
    const actual = await merged(viaMerge, items, full, true);
    assert.deepEqual(actual.changes, expected.changes);
    assert.deepEqual(actual.events, expected.events);
    assert.deepEqual(await rowsOf(viaMerge), await rowsOf(viaFold));
    assert.equal(await repositoriesOf(test.store).users.countInTenant(viaMerge), 50, "the tenant's count follows the inserts");
  });

  it('an empty page merges to nothing', async () => {
    const tenantId = await seeded();
    const before = await rowsOf(tenantId);
    const outcome = await merged(tenantId, [], full);
    assert.deepEqual(outcome.changes, []);
    assert.deepEqual(await rowsOf(tenantId), before);
  });

  it('a resync of unchanged users rewrites each in its own page (no index entry added), as the table keeps room for it', async () => {
    const tenantId = await tenant();
    const items = Array.from({ length: 600 }, (_, n) => listedItem(n));
    await merged(tenantId, items, full, true);
    // The first rewrite after the insert: its room is there whatever else runs (a second one needs the first's old versions pruned, which an analyze in progress can hold off).
    const counts = await test.store.db.transaction().execute(async (trx) => {
      // This backend's counts, some not yet reported: only their growth across the statement is its own.
      const read = async () => (await sql<{ updated: number; in_page: number }>`select n_tup_upd as updated, n_tup_hot_upd as in_page from pg_stat_xact_user_tables where relname = 'users'`.execute(trx)).rows[0]!;
      const before = await read();
      const result = await new PostgresUserMerge(trx).merge(tenantId, items.map((item) => ({ id: item.id, display_name: item.displayName as string })), { runId: 'run-2', now: NOW + 2 });
      assert.deepEqual(result, []);
      const after = await read();
      return { updated: Number(after.updated) - Number(before.updated), inPage: Number(after.in_page) - Number(before.in_page) };
    });
    assert.deepEqual(counts, { updated: 600, inPage: 600 });
    const { rows } = await sql<{ options: string[] }>`select reloptions as options from pg_class where relname = 'users'`.execute(test.store.db);
    assert.deepEqual(rows[0]?.options, ['fillfactor=50']);
  });

  it('a new user another writer stores while the page is merged is left to the usual way, not duplicated or counted twice', async () => {
    const tenantId = await tenant();
    const items = [listedItem(0), listedItem(1), listedItem(2)];
    const other = new pg.Client({ connectionString: test.target });
    await other.connect();
    try {
      await other.query('begin');
      await other.query(`insert into users (tenant_id, id, display_name, updated_at) values ($1, 'u1', 'Signed in first', 1)`, [tenantId]);
      const merging = transaction(test.store, async (repos) => USERS.rows(repos).mergePage!(tenantId, items, full, false));
      // The merge waits on the other writer's uncommitted row, then finds it stored once that commits.
      await delay(300);
      await other.query('commit');
      const page = await merging;
      assert.deepEqual(page?.rest, [items[1]]);
      assert.deepEqual(page?.changes.map((c) => [c.id, c.change]), [['u0', 'created'], ['u2', 'created']]);
    } finally {
      await other.end();
    }
    const stored = await test.store.db.selectFrom('users').select(['id', 'display_name']).where('tenant_id', '=', tenantId).orderBy('id').execute();
    assert.deepEqual(stored.map((row) => ({ ...row })), [{ id: 'u0', display_name: 'User 0' }, { id: 'u1', display_name: 'Signed in first' }, { id: 'u2', display_name: 'User 2' }]);
  });

  it('declines what only the fold handles: removals, an item listed twice, non-text values, delta rounds, SQLite', async () => {
    const tenantId = await seeded();
    const decline = async (items: DeltaItem[], context: FoldContext = full) =>
      transaction(test.store, async (repos) => USERS.rows(repos).mergePage!(tenantId, items, context, false));
    assert.equal(await decline([listedItem(0), { id: 'u1', '@removed': { reason: 'changed' } }]), null);
    assert.equal(await decline([listedItem(0), listedItem(0, { displayName: 'Twice' })]), null);
    assert.equal(await decline([listedItem(0, { displayName: 42 })]), null);
    assert.equal(await decline([listedItem(0, { jobTitle: { nested: true } })]), null);
    assert.equal(await decline([{ ...listedItem(0), id: 7 as unknown as string }]), null);
    assert.equal(await decline([listedItem(0)], { ...full, kind: 'delta' }), null);
    const sqlite = await openTestStore('sqlite');
    try {
      assert.equal(repositoriesOf(sqlite.store).userMerge, null);
    } finally {
      await sqlite.drop();
    }
  });
});
