import assert from 'node:assert/strict';
import { SYNCED_PROPERTIES } from '../../src/directory/sync.ts';
import type { Tenant } from '../../src/emulator/model.ts';
import type { Store } from '../../src/store/database.ts';

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
