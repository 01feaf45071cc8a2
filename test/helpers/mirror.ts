import assert from 'node:assert/strict';
import { SYNCED_PROPERTIES } from '../../src/directory/sync.ts';
import type { Tenant, UserInput } from '../../src/emulator/model.ts';
import { after, before } from 'node:test';
import type { Engine, Store } from '../../src/store/database.ts';
import { TenantRepository } from '../../src/store/tenants.ts';
import { startTestEmulator, type TestEmulator } from './emulator.ts';
import { connectToEmulator, type EmulatorConnection } from './entra.ts';
import { openTestStore, type TestStore } from './stores.ts';
import { demoApp } from './fixtures.ts';

const COLUMNS: Record<string, string> = {
  displayName: 'display_name', givenName: 'given_name', surname: 'surname', mail: 'mail', userPrincipalName: 'user_principal_name',
  jobTitle: 'job_title', department: 'department', officeLocation: 'office_location', accountEnabled: 'account_enabled', userType: 'user_type',
  createdDateTime: 'created_date_time', employeeId: 'employee_id', companyName: 'company_name', mobilePhone: 'mobile_phone', businessPhones: 'business_phones',
};

/**
 * Roster's copy of a tenant equals the emulator's directory: the same active
 * users with every synced property, and (optionally) the same soft-deleted ones.
 */
export async function assertMirrors(store: Store, tenant: Tenant, options: { deletedToo?: boolean } = {}): Promise<void> {
  const rows = await store.db.selectFrom('users').selectAll().where('tenant_id', '=', tenant.id).where('deleted_at', 'is', null).execute();
  const local = new Map(rows.map((row) => [row.id, row as unknown as Record<string, unknown>]));
  assert.equal(local.size, tenant.users.length, 'same number of users');
  for (const user of tenant.users) {
    const row = local.get(user.props.id);
    assert.ok(row, `user ${user.props.id} is missing locally`);
    for (const property of SYNCED_PROPERTIES) {
      if (property === 'id') continue;
      const expected = property === 'accountEnabled' ? (user.props.accountEnabled ? 1 : 0) : property === 'businessPhones' ? JSON.stringify(user.props.businessPhones) : user.props[property];
      assert.deepEqual(row[COLUMNS[property]!], expected, `${user.props.id} ${property}`);
    }
  }
  if (options.deletedToo) {
    const deleted = await store.db.selectFrom('users').select('id').where('tenant_id', '=', tenant.id).where('deleted_at', 'is not', null).execute();
    assert.deepEqual(new Set(deleted.map((r) => r.id)), new Set(tenant.deletedUsers.keys()), "soft-deleted users are the directory's deleted items");
  }
}

/**
 * A new tenant in the emulator with `count` users made by `user` (given the
 * index and the tenant's domain), consented to the demo app, and signed up in
 * Roster an hour ago, so consent has propagated.
 */
export async function addSignedUpTenant(emulator: TestEmulator, store: Store, count: number, user: (i: number, domain: string) => UserInput): Promise<Tenant> {
  const name = `Org${Math.random().toString(36).slice(2, 8)}`;
  const domain = `${name.toLowerCase()}.com`;
  const tenant = emulator.ctx.directory.addTenant({ displayName: name, domains: [`${name.toLowerCase()}.onmicrosoft.com`, domain] });
  emulator.ctx.directory.addUsersUnchecked(tenant, Array.from({ length: count }, (_, i) => user(i, domain)));
  emulator.ctx.directory.grantAdminConsent(tenant, demoApp(emulator.ctx));
  await new TenantRepository(store.db).activate({ id: tenant.id, displayName: name, domains: tenant.domains, signedUpByOid: null, signupContext: null }, Date.now() - 3_600_000);
  return tenant;
}

export interface SyncTestbed {
  emulator: TestEmulator;
  connection: EmulatorConnection;
  db: TestStore;
}

/**
 * Registers the hooks of a sync suite: an emulator, Roster's identity layer
 * connected to it, and a fresh database on `engine`, all closed after the
 * suite. The fields are set once the suite's `before` hooks have run.
 */
export function useSyncTestbed(engine: Engine): SyncTestbed {
  const bed = {} as SyncTestbed;
  before(async () => {
    bed.emulator = await startTestEmulator();
    bed.connection = await connectToEmulator(bed.emulator);
    bed.db = await openTestStore(engine);
  });
  after(async () => {
    await bed.db.drop();
    await bed.connection.close();
    await bed.emulator.close();
  });
  return bed;
}
