import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SyncDebouncer } from '../../src/jobs/debounce.ts';

/** A fake round runner: counts rounds, each taking `ms`, one per tenant at a time (as the scheduler does). */
function rounds(ms: number) {
  const running = new Map<string, Promise<void>>();
  let started = 0;
  const run = (tenantId: string) => {
    const existing = running.get(tenantId);
    if (existing) return existing;
    started += 1;
    const round = new Promise<void>((resolve) => setTimeout(resolve, ms)).finally(() => running.delete(tenantId));
    running.set(tenantId, round);
    return round;
  };
  return { run, isRunning: (id: string) => running.has(id), started: () => started };
}

describe('debounced delta rounds', () => {
  test('rule 3: 1,000 wishes in a burst make one round', async () => {
    const fake = rounds(50);
    const debouncer = new SyncDebouncer({ delayMs: 30, ...fake });
    for (let i = 0; i < 1000; i++) debouncer.request('t1');
    await debouncer.settle();
    assert.equal(fake.started(), 1);
  });

  test('rule 3: wishes made while a round runs make exactly one more round, however many', async () => {
    const fake = rounds(200);
    const debouncer = new SyncDebouncer({ delayMs: 20, ...fake });
    debouncer.request('t1');
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(fake.started(), 1);
    for (let i = 0; i < 1000; i++) debouncer.request('t1');
    await debouncer.settle();
    assert.equal(fake.started(), 2);
  });

  test('rule 3: a round already under way (a scheduled one) is waited out, then one round starts after the wish', async () => {
    const fake = rounds(100);
    void fake.run('t1');
    const debouncer = new SyncDebouncer({ delayMs: 10, ...fake });
    debouncer.request('t1');
    await debouncer.settle();
    assert.equal(fake.started(), 2, 'the scheduled round, then the one the wish asked for');
  });

  test('tenants are debounced apart, and a stopped debouncer starts nothing', async () => {
    const fake = rounds(10);
    const debouncer = new SyncDebouncer({ delayMs: 10, ...fake });
    debouncer.request('a');
    debouncer.request('b');
    await debouncer.settle();
    assert.equal(fake.started(), 2);
    debouncer.stop();
    debouncer.request('a');
    await new Promise((resolve) => setTimeout(resolve, 40));
    assert.equal(fake.started(), 2);
  });
});
