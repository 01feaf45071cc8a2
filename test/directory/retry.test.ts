import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffMs, retryAfterMs } from '../../src/directory/retry.ts';

describe('rule 11: when to retry', () => {
  it('Retry-After in seconds, fractions rounded up, or an HTTP date; never sooner than asked', () => {
    const now = Date.parse('2026-11-22T10:00:00Z');
    assert.equal(retryAfterMs('2', now), 2000);
    assert.equal(retryAfterMs('2.128', now), 2128);
    assert.equal(retryAfterMs('0.0001', now), 1);
    assert.equal(retryAfterMs('Sun, 22 Nov 2026 10:00:03 GMT', now), 3000);
    assert.equal(retryAfterMs('Sun, 22 Nov 2026 09:59:00 GMT', now), 0);
    assert.equal(retryAfterMs(null, now), undefined);
    assert.equal(retryAfterMs('soon', now), undefined);
  });

  it('without Retry-After: exponential backoff with jitter, capped', () => {
    const low = () => 0;
    const high = () => 0.999999;
    assert.equal(backoffMs(0, { random: low }), 250);
    assert.equal(backoffMs(0, { random: high }), 500);
    assert.equal(backoffMs(3, { random: low }), 2000);
    assert.equal(backoffMs(20, { random: high }), 60_000);
    const spread = new Set(Array.from({ length: 20 }, () => backoffMs(4)));
    assert.ok(spread.size > 5, 'jitter spreads retries');
  });
});
