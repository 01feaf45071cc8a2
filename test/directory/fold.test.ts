import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppNotInTenantError } from '../../src/identity/errors.ts';
import { SyncRunFailure } from '../../src/directory/errors.ts';
import { classifyFailure } from '../../src/directory/failures.ts';
import { GraphRequestError } from '../../src/directory/graph-reader.ts';
import { decideRemovals } from '../../src/directory/mass-deletion.ts';
import type { DeltaItem, FoldContext } from '../../src/directory/object-kind.ts';
import { foldUsers } from '../../src/directory/user-kind.ts';
import type { StoredUser } from '../../src/store/synced-users.ts';

const NOW = 1_700_000_000_000;
const FULL: FoldContext = { runId: 'run-2', kind: 'full', now: NOW };
const DELTA: FoldContext = { runId: 'run-2', kind: 'delta', now: NOW };

function stored(id: string, changes: Partial<StoredUser> = {}): StoredUser {
  return {
    id,
    seen_run_id: 'run-1',
    display_name: `Name ${id}`,
    given_name: null,
    surname: null,
    mail: null,
    user_principal_name: `${id}@contoso.com`,
    job_title: 'Engineer',
    department: 'R&D',
    office_location: null,
    account_enabled: 1,
    user_type: 'Member',
    created_date_time: null,
    employee_id: null,
    company_name: null,
    mobile_phone: null,
    business_phones: '[]',
    deleted_at: null,
    ...changes,
  };
}

function byId(...rows: StoredUser[]): Map<string, StoredUser> {
  return new Map(rows.map((row) => [row.id, row]));
}

describe('the users fold (a page against the stored rows, no database)', () => {
  it('a new user is created with the columns Graph sent, seen by the full listing', () => {
    const [change] = foldUsers([{ id: 'a', displayName: 'Ann', accountEnabled: false, businessPhones: ['+1 555'] }], new Map(), FULL);
    assert.equal(change!.change, 'created');
    assert.deepEqual(change!.write, { id: 'a', updated_at: NOW, display_name: 'Ann', account_enabled: 0, business_phones: '["+1 555"]', deleted_at: null, synced_at: NOW, seen_run_id: 'run-2' });
    assert.equal(change!.listed, true);
    assert.equal(change!.ends, false, 'nobody had a session to end');
  });

  it('a minimal update writes only what it mentions and never blanks the rest', () => {
    const before = stored('a');
    const [change] = foldUsers([{ id: 'a', department: 'Legal' }], byId(before), DELTA);
    assert.equal(change!.change, 'updated');
    assert.deepEqual(change!.write, { id: 'a', updated_at: NOW, department: 'Legal', synced_at: NOW });
    assert.equal(before.department, 'R&D', 'the stored row is not changed by folding');
  });

  it('an item equal to the stored row is unchanged: only its bookkeeping moves', () => {
    const [change] = foldUsers([{ id: 'a', displayName: 'Name a', jobTitle: 'Engineer' }], byId(stored('a')), FULL);
    assert.equal(change!.change, 'unchanged');
    assert.equal(change!.write, null);
    assert.deepEqual(change!.mark, { synced_at: NOW, seen_run_id: 'run-2' });
  });

  it('a soft delete is kept as deleted and ends the sessions; replayed, it changes and ends nothing', () => {
    const removed: DeltaItem = { id: 'a', '@removed': { reason: 'changed' } };
    const [first] = foldUsers([removed], byId(stored('a')), DELTA);
    assert.equal(first!.change, 'soft-deleted');
    assert.deepEqual(first!.write, { id: 'a', updated_at: NOW, deleted_at: NOW });
    assert.equal(first!.ends, true);
    const [again] = foldUsers([removed], byId(stored('a', { deleted_at: NOW - 1 })), DELTA);
    assert.deepEqual([again!.change, again!.write, again!.mark, again!.ends], ['unchanged', null, null, false]);
  });

  it('a permanent delete waits for the end of the round: marked pending in a delta round, left unseen in a full listing', () => {
    const item: DeltaItem = { id: 'a', '@removed': { reason: 'deleted' } };
    const [delta] = foldUsers([item], byId(stored('a')), DELTA);
    assert.deepEqual([delta!.change, delta!.write, delta!.mark, delta!.pendingRemovals], ['removed', null, { seen_run_id: 'run-2' }, 1]);
    const [full] = foldUsers([item], byId(stored('a', { seen_run_id: 'run-2' })), FULL);
    assert.deepEqual([full!.change, full!.mark, full!.pendingRemovals], ['removed', { seen_run_id: null }, 0]);
  });

  it('a removal of a user Roster never stored is no change at all', () => {
    assert.deepEqual(foldUsers([{ id: 'ghost', '@removed': { reason: 'deleted' } }], new Map(), DELTA), []);
  });

  it('a user disabled by the page is updated and loses their sessions', () => {
    const [change] = foldUsers([{ id: 'a', accountEnabled: false }], byId(stored('a')), DELTA);
    assert.deepEqual([change!.change, change!.ends], ['updated', true]);
  });

  it('items about one user merge in page order: deleted, then listed again, stays and is not pending', () => {
    const [change] = foldUsers([{ id: 'a', '@removed': { reason: 'deleted' } }, { id: 'a', jobTitle: 'Lead' }], byId(stored('a')), DELTA);
    assert.deepEqual([change!.change, change!.pendingRemovals, change!.listed], ['updated', 0, true]);
    assert.equal(change!.write?.job_title, 'Lead');
  });

  it('a user a delta round marked for removal and then reported again is unmarked', () => {
    const [change] = foldUsers([{ id: 'a', displayName: 'Name a' }], byId(stored('a', { seen_run_id: 'run-2' })), DELTA);
    assert.deepEqual([change!.change, change!.mark, change!.pendingRemovals], ['unchanged', { synced_at: NOW, seen_run_id: null }, -1]);
  });
});

describe('the mass-deletion policy', () => {
  it('holds a round that would remove more than the share, with the counts in words', () => {
    assert.deepEqual(decideRemovals({ kind: 'full', removing: 1000, total: 2500, share: 0.3 }), {
      hold: true,
      reason: 'the full listing would remove 1,000 of 2,500 users (more than 30%); held for confirmation',
    });
  });

  it('applies removals up to the share, and a round that removes nobody', () => {
    assert.equal(decideRemovals({ kind: 'delta', removing: 750, total: 2500, share: 0.3 }).hold, false);
    assert.equal(decideRemovals({ kind: 'delta', removing: 0, total: 0, share: 0 }).hold, false);
    assert.equal(decideRemovals({ kind: 'delta', removing: 1, total: 10, share: 0 }).hold, true);
  });

  it('refuses a share outside 0..1', () => {
    assert.throws(() => decideRemovals({ kind: 'full', removing: 1, total: 2, share: 30 }), RangeError);
  });
});

describe('the classification of a failed run', () => {
  const context = { now: NOW, signedUpAt: NOW - 3_600_000, consentGraceMs: 300_000, permission: 'User.Read.All', reading: 'list users' };

  it('an app no longer in the tenant disconnects it, unless consent may still be propagating', () => {
    const err = new AppNotInTenantError('AADSTS700016: not found', { code: 'app_not_in_tenant' });
    const late = classifyFailure(err, context);
    assert.ok(late instanceof SyncRunFailure);
    assert.deepEqual([late.health, late.code, late.status], ['disconnected', 'app_not_in_tenant', 502]);
    assert.equal(classifyFailure(err, { ...context, signedUpAt: NOW - 1000 }).health, 'failing');
  });

  it('a 403 names the permission to grant; anything else is a failure the next run retries', () => {
    const denied = classifyFailure(new GraphRequestError(403, 'Authorization_RequestDenied', 'denied'), context);
    assert.equal(denied.health, 'missing_permission');
    assert.match(denied.message, /Graph refused to list users .*User\.Read\.All/);
    const other = classifyFailure(new GraphRequestError(503, 'serviceNotAvailable', 'Graph answered 503'), context);
    assert.deepEqual([other.health, other.message], ['failing', 'Graph answered 503']);
  });
});
