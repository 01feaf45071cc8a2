import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeOutcome, logOutcome, settleRun } from '../../src/directory/outcome.ts';
import { SyncStoppedError } from '../../src/directory/errors.ts';
import { HeldDeletionError, STOPPED_REASON, TenantBusyError, type SyncOutcome } from '../../src/directory/sync.ts';

const tenant = { id: '11111111-2222-4333-8444-555555555555', displayName: 'Contoso' };

function outcome(status: SyncOutcome['status'], error: string | null = null): SyncOutcome {
  return { id: 'run-1', tenantId: tenant.id, kind: 'full', status, pages: 3, listed: 2500, created: 2000, updated: 400, deleted: 100, error, started_at: 1, finished_at: 2 } as SyncOutcome;
}

describe('describeOutcome: one wording for every way a sync run ends', () => {
  it('a finished run: info when it succeeded or is held, a warning when it failed, with its counts and error', () => {
    const ok = describeOutcome(tenant, { outcome: outcome('succeeded') });
    assert.equal(ok.level, 'info');
    assert.equal(ok.message, 'sync run finished');
    assert.deepEqual({ ...ok.fields }, { tenant: tenant.id, run: 'run-1', kind: 'full', status: 'succeeded', pages: 3, created: 2000, updated: 400, deleted: 100, error: null });
    assert.equal(ok.line, 'Contoso: full sync succeeded: 3 pages, 2000 created, 400 updated, 100 removed');
    assert.equal(describeOutcome(tenant, { outcome: outcome('held', 'would remove 900 of 1,000 users') }).level, 'info');
    const failed = describeOutcome(tenant, { outcome: outcome('failed', 'Graph refused') });
    assert.equal(failed.level, 'warn');
    assert.match(failed.line, /^Contoso: full sync failed: .* \(Graph refused\)$/);
  });

  it('a run stopped at shutdown reads as stopped and resumable, not as a failure', () => {
    const stopped = describeOutcome(tenant, { outcome: outcome('failed', STOPPED_REASON) });
    assert.equal(stopped.level, 'info');
    assert.equal(stopped.fields.status, 'stopped');
    assert.equal(stopped.message, 'sync run stopped; the next run resumes it');
    assert.equal(stopped.line, 'Contoso: full sync stopped after 3 pages, 2000 created, 400 updated, 100 removed; the next run resumes it');
    const notStarted = describeOutcome(tenant, { error: new SyncStoppedError('stopped before it started') });
    assert.deepEqual([notStarted.level, notStarted.message], ['info', 'sync skipped: Roster is stopping']);
  });

  it('a run that never started: skipped while another process syncs the tenant or a held deletion waits; a crash is an error, a database out of reach a warning', () => {
    const busy = describeOutcome(tenant, { error: new TenantBusyError('busy') });
    assert.deepEqual([busy.level, busy.message], ['info', 'sync skipped: another process is syncing this tenant']);
    assert.match(busy.line, /Contoso: skipped, another process is syncing it/);
    const held = describeOutcome(tenant, { error: new HeldDeletionError('held') });
    assert.deepEqual([held.level, held.message], ['info', 'sync skipped: a held deletion waits for a decision']);
    const crash = describeOutcome({ id: tenant.id }, { error: new Error('database gone') });
    assert.deepEqual([crash.level, crash.message, crash.line], ['error', 'sync run crashed', `${tenant.id}: sync crashed: database gone`]);
    const readOnly = describeOutcome(tenant, { error: Object.assign(new Error('attempt to write a readonly database'), { errcode: 8 }) });
    assert.deepEqual([readOnly.level, readOnly.message, readOnly.line], ['warn', 'sync not run: the database is unavailable', 'Contoso: sync not run, the database file is read-only']);
  });

  it('settleRun keeps a rejection as a value, and logOutcome logs at the described level', async () => {
    const result = await settleRun(Promise.reject(new TenantBusyError('busy')));
    assert.ok('error' in result && result.error instanceof TenantBusyError);
    const calls: [string, Record<string, unknown>, string][] = [];
    const logger = {
      info: (fields: Record<string, unknown>, message: string) => calls.push(['info', fields, message]),
      warn: (fields: Record<string, unknown>, message: string) => calls.push(['warn', fields, message]),
      error: (fields: Record<string, unknown>, message: string) => calls.push(['error', fields, message]),
    };
    logOutcome(logger as never, tenant, { outcome: outcome('failed', 'x') });
    assert.deepEqual(calls.map(([level, fields, message]) => [level, fields.status, message]), [['warn', 'failed', 'sync run finished']]);
  });
});
