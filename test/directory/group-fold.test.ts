import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { foldGroups, groupKindOf } from '../../src/directory/group-kind.ts';
import type { DeltaItem, FoldContext } from '../../src/directory/object-kind.ts';
import type { StoredGroup, StoredMembership } from '../../src/store/synced-groups.ts';

const NOW = 1_700_000_000_000;
const FULL: FoldContext = { runId: 'run-2', kind: 'full', now: NOW };
const DELTA: FoldContext = { runId: 'run-2', kind: 'delta', now: NOW };
const USER = '#microsoft.graph.user';
const GROUP = '#microsoft.graph.group';

function stored(id: string, members: Record<string, Partial<StoredMembership>> = {}, changes: Partial<StoredGroup> = {}): StoredGroup {
  return {
    id,
    seen_run_id: 'run-1',
    display_name: `Group ${id}`,
    description: null,
    group_types: '[]',
    security_enabled: 1,
    mail_enabled: 0,
    mail: null,
    membership_rule: null,
    kind: 'security',
    dynamic: 0,
    deleted_at: null,
    members: new Map(Object.entries(members).map(([member, m]) => [member, { member_type: 'user', seen_run_id: 'run-1', ...m }])),
    ...changes,
  };
}

const byId = (...rows: StoredGroup[]) => new Map(rows.map((row) => [row.id, row]));

describe('the groups fold (a page of /groups/delta against the stored rows, no database)', () => {
  it('kinds follow Graph: Unified is Microsoft 365, mail without security a distribution list, otherwise security', () => {
    assert.equal(groupKindOf(['Unified'], false, true), 'microsoft365');
    assert.equal(groupKindOf([], false, true), 'distribution');
    assert.equal(groupKindOf([], true, true), 'security');
    assert.equal(groupKindOf(['DynamicMembership'], true, false), 'security');
  });

  it('a new group is created with its kind and its first members, marked seen by the full listing', () => {
    const [change] = foldGroups(
      [{ id: 'g', displayName: 'Sales', groupTypes: ['Unified', 'DynamicMembership'], securityEnabled: false, mailEnabled: true, 'members@delta': [{ '@odata.type': USER, id: 'u1' }, { '@odata.type': GROUP, id: 'h' }, { '@odata.type': '#microsoft.graph.device', id: 'd' }] }],
      new Map(),
      FULL,
    );
    assert.equal(change!.change, 'created');
    assert.equal(change!.write!.row!.kind, 'microsoft365');
    assert.equal(change!.write!.row!.dynamic, 1);
    assert.equal(change!.write!.row!.seen_run_id, 'run-2');
    assert.deepEqual(change!.write!.add, [
      { group_id: 'g', member_id: 'u1', member_type: 'user', seen_run_id: 'run-2' },
      { group_id: 'g', member_id: 'h', member_type: 'group', seen_run_id: 'run-2' },
    ], 'devices are not mirrored');
  });

  it('rule 27: a member Roster has not seen is kept by id (the fold never asks whether the user exists)', () => {
    const [change] = foldGroups([{ id: 'g', 'members@delta': [{ '@odata.type': USER, id: 'not-yet-synced' }] }], byId(stored('g')), DELTA);
    assert.deepEqual(change!.write!.add.map((m) => m.member_id), ['not-yet-synced']);
    assert.equal(change!.change, 'updated');
  });

  it('rule 23: a slice of members adds only its members; a removed member removes only that membership', () => {
    const before = stored('g', { u1: {}, u2: {} });
    const [change] = foldGroups([{ id: 'g', 'members@delta': [{ '@odata.type': USER, id: 'u3' }, { '@odata.type': USER, id: 'u1', '@removed': { reason: 'deleted' } }] }], byId(before), DELTA);
    assert.deepEqual(change!.write!.add.map((m) => m.member_id), ['u3']);
    assert.deepEqual(change!.write!.remove, ['u1']);
    assert.equal(change!.write!.row, null, 'the group row is not rewritten for a membership change');
    assert.equal(change!.change, 'updated');
  });

  it('rule 23: removal and re-add of the same member in one page leaves it a member; the last entry wins', () => {
    const before = stored('g', { u1: {} });
    const items: DeltaItem[] = [
      { id: 'g', 'members@delta': [{ '@odata.type': USER, id: 'u1', '@removed': { reason: 'deleted' } }] },
      { id: 'g', 'members@delta': [{ '@odata.type': USER, id: 'u1' }] },
    ];
    const [change] = foldGroups(items, byId(before), DELTA);
    assert.equal(change!.write, null, 'it was a member before and still is: nothing to write');
    assert.equal(change!.change, 'unchanged');
  });

  it('rule 22: a replayed page changes nothing (a delta page applied twice)', () => {
    const page: DeltaItem[] = [{ id: 'g', displayName: 'Group g', 'members@delta': [{ '@odata.type': USER, id: 'u1' }, { '@odata.type': USER, id: 'u2', '@removed': { reason: 'deleted' } }] }];
    const [again] = foldGroups(page, byId(stored('g', { u1: {} })), DELTA);
    assert.equal(again!.change, 'unchanged');
    assert.equal(again!.write, null);
  });

  it('rule 23: a full listing re-marks every member it lists, without counting a change', () => {
    const [change] = foldGroups([{ id: 'g', displayName: 'Group g', 'members@delta': [{ '@odata.type': USER, id: 'u1' }] }], byId(stored('g', { u1: {}, u2: {} })), FULL);
    assert.equal(change!.change, 'unchanged');
    assert.deepEqual(change!.write!.add, [{ group_id: 'g', member_id: 'u1', member_type: 'user', seen_run_id: 'run-2' }]);
    assert.deepEqual(change!.write!.remove, [], 'u2, not listed on this page, waits for the end of the listing');
    const [replayed] = foldGroups([{ id: 'g', displayName: 'Group g', 'members@delta': [{ '@odata.type': USER, id: 'u1' }] }], byId(stored('g', { u1: { seen_run_id: 'run-2' } }, { seen_run_id: 'run-2' })), FULL);
    assert.equal(replayed!.write, null, 'already marked by this listing: nothing to write');
  });

  it('return=minimal: a partial update merges and never blanks; a flag change reclassifies the group', () => {
    const [change] = foldGroups([{ id: 'g', mailEnabled: true, securityEnabled: false }], byId(stored('g', {}, { description: 'kept' })), DELTA);
    assert.equal(change!.change, 'updated');
    assert.equal(change!.write!.row!.kind, 'distribution');
    assert.equal('description' in change!.write!.row!, false);
    assert.equal('display_name' in change!.write!.row!, false);
  });

  it('rule 26: a Microsoft 365 group removed with reason changed is soft-deleted and keeps its memberships; restored, it is active again', () => {
    const before = stored('g', { u1: {} }, { kind: 'microsoft365', group_types: '["Unified"]' });
    const [soft] = foldGroups([{ id: 'g', '@removed': { reason: 'changed' } }], byId(before), DELTA);
    assert.equal(soft!.change, 'soft-deleted');
    assert.deepEqual(soft!.write!.row, { id: 'g', updated_at: NOW, deleted_at: NOW });
    assert.deepEqual(soft!.write!.remove, []);
    const [restored] = foldGroups([{ id: 'g', displayName: 'Group g' }], byId({ ...before, deleted_at: NOW - 5 }), DELTA);
    assert.equal(restored!.change, 'updated');
    assert.equal(restored!.write!.row!.deleted_at, null);
  });

  it('a permanently deleted group waits for the end of the delta round, counted as pending', () => {
    const [change] = foldGroups([{ id: 'g', '@removed': { reason: 'deleted' } }], byId(stored('g', { u1: {} })), DELTA);
    assert.equal(change!.pendingRemovals, 1);
    assert.deepEqual(change!.mark, { seen_run_id: 'run-2' });
    const [unknown] = foldGroups([{ id: 'never-seen', '@removed': { reason: 'deleted' } }], new Map(), DELTA);
    assert.equal(unknown, undefined, 'a group Roster never had is not created to be removed');
  });

  it('attacker-shaped entries are ignored, not fatal: a member without an id, a non-array members@delta', () => {
    const changes = foldGroups([{ id: 'g', 'members@delta': [{ '@odata.type': USER }, null, { id: 42 }] as unknown[] }, { id: 'h', 'members@delta': 'everyone' }], new Map(), DELTA);
    assert.deepEqual(changes.map((c) => c.write!.add.length), [0, 0]);
  });
});
