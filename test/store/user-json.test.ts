import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Value } from 'typebox/value';
import { UserSchema, userOut } from '../../src/api/schemas.ts';
import type { UsersTable } from '../../src/store/schema.ts';
import { UserRepository } from '../../src/store/users.ts';
import { ENGINES, openTestStore, type TestStore } from '../helpers/stores.ts';

const TENANT = '0f0e0d0c-0b0a-4909-8807-060504030201';
const OTHER = '1f0e0d0c-0b0a-4909-8807-060504030201';

/** Rows that reach every branch of the mapping: states, roles, nulls, phones, times, and text JSON must escape. */
function rows(): Partial<UsersTable>[] {
  const base = { roster_role: 'member' as const, account_enabled: 1, updated_at: 1_767_225_600_000 };
  return [
    { ...base, id: 'a0000000-0000-4000-8000-000000000001', display_name: 'Zoë Müller', given_name: 'Zoë', surname: 'Müller', mail: 'zoe@example.com', user_principal_name: 'zoe@example.com', job_title: 'Engineer', department: 'R&D', office_location: 'Building 1', user_type: 'Member', employee_id: '100001', company_name: 'Example', mobile_phone: '+1 555 0100', business_phones: '["+1 555 0101","+1 555 0102"]', updated_at: 1_767_225_600_005 },
    { ...base, id: 'a0000000-0000-4000-8000-000000000002', display_name: 'Quote " back\\slash \n new line \u0001 control \u2028 separator 😀 王芳 /', user_type: 'Guest', business_phones: '[]', updated_at: 0 },
    { ...base, id: 'a0000000-0000-4000-8000-000000000003', account_enabled: 0, business_phones: '', last_sign_in_at: 1_767_225_600_999, updated_at: 1_700_000_000_123 },
    { ...base, id: 'a0000000-0000-4000-8000-000000000004', deleted_at: 1_767_225_601_010, account_enabled: 0, user_type: 'Guest', mapped_role: 'admin', updated_at: 253_402_300_799_999 },
    { ...base, id: 'a0000000-0000-4000-8000-000000000005', roster_role: 'admin', mapped_role: 'member', user_type: null, display_name: '' },
  ];
}

for (const engine of ENGINES) {
  describe(`a page of users as the API's JSON array (${engine})`, () => {
    let db: TestStore;
    let users: UserRepository;
    const pageOf = (tenantId: string, filter: Parameters<UserRepository['apiPageById']>[1], at: { limit: number; after?: string }) =>
      users.apiPageById(tenantId, filter, at, (shown) => Buffer.from(JSON.stringify(shown.map((u) => userOut(tenantId, u)))));

    before(async () => {
      db = await openTestStore(engine);
      users = new UserRepository(db.store.db, engine);
      for (const id of [TENANT, OTHER]) {
        await db.store.db.insertInto('tenants').values({ id, display_name: id, domains: '[]', state: 'active', state_reason: null, signup_context: null, signed_up_by_oid: null, created_at: 0, updated_at: 0 }).execute();
      }
      // Inserted in reverse, so storage order is not id order.
      for (const row of rows().reverse()) await db.store.db.insertInto('users').values({ ...row, tenant_id: TENANT } as UsersTable).execute();
      await db.store.db.insertInto('users').values({ ...rows()[0]!, tenant_id: OTHER, id: 'b0000000-0000-4000-8000-000000000001' } as UsersTable).execute();
    });
    after(async () => {
      await db?.drop();
    });

    it('writes each user exactly as userOut does, valid against UserSchema', async () => {
      const page = await pageOf(TENANT, {}, { limit: 10 });
      const written = JSON.parse(page.json.toString('utf8')) as unknown[];
      assert.deepEqual(written.map((u) => (u as { id: string }).id), rows().map((row) => row.id), 'all five, in id order');
      for (const user of written) {
        const id = (user as { id: string }).id;
        assert.deepEqual(user, userOut(TENANT, (await users.detail(TENANT, id))!), id);
        assert.ok(Value.Check(UserSchema, user), `${id}: ${JSON.stringify([...Value.Errors(UserSchema, user)].slice(0, 2))}`);
      }
      assert.equal(page.last, 'a0000000-0000-4000-8000-000000000005');
      assert.equal(page.more, false);
    });

    it('pages in id order within the tenant, and says whether more follow', async () => {
      const ids = (page: { json: Buffer }) => (JSON.parse(page.json.toString('utf8')) as { id: string }[]).map((u) => u.id);
      const first = await pageOf(TENANT, {}, { limit: 2 });
      assert.deepEqual(ids(first), ['a0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-000000000002']);
      assert.equal(first.more, true);
      const second = await pageOf(TENANT, {}, { limit: 2, after: first.last! });
      assert.deepEqual(ids(second), ['a0000000-0000-4000-8000-000000000003', 'a0000000-0000-4000-8000-000000000004']);
      assert.equal(second.more, true);
      const full = await pageOf(TENANT, {}, { limit: 1, after: second.last! });
      assert.deepEqual([ids(full), full.more], [['a0000000-0000-4000-8000-000000000005'], false], 'a full last page says no more follow');
      const none = await pageOf(TENANT, {}, { limit: 2, after: full.last! });
      assert.deepEqual([none.json.toString(), none.last, none.more], ['[]', null, false]);
      const filtered = await pageOf(TENANT, { state: 'disabled' }, { limit: 1 });
      assert.deepEqual([ids(filtered), filtered.more], [['a0000000-0000-4000-8000-000000000003'], false], 'more counts only users the filter keeps');
    });
  });
}
