import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newIds } from '../../src/store/events.ts';

describe('event and delivery ids', () => {
  it('are distinct, 22 base64url characters after the prefix, and begin with the time they were made', () => {
    const before = Date.now();
    const ids = [...newIds('evt', 5000), ...newIds('evt', 5000)];
    const after = Date.now();
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) {
      assert.match(id, /^evt_[A-Za-z0-9_-]{22}$/);
      const made = Buffer.from(id.slice('evt_'.length), 'base64url').readUIntBE(0, 6);
      assert.ok(made >= before && made <= after, `${id} was made at ${made}, not between ${before} and ${after}`);
    }
  });
});
