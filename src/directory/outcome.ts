import type { Logger } from 'pino';
import { databaseUnavailable } from '../store/database.ts';
import { SyncStoppedError, TenantNotActiveError } from './errors.ts';
import { HeldDeletionError, STOPPED_REASON, TenantBusyError, type SyncOutcome } from './sync.ts';

/** How a sync run ended: its recorded outcome, or the error that kept it from running or finishing. */
export type RunResult = { outcome: SyncOutcome } | { error: unknown };

export interface OutcomeDescription {
  level: 'info' | 'warn' | 'error';
  /** Structured log fields (pino). */
  fields: Record<string, unknown>;
  /** The log message: stable text that logs and tests can search for. */
  message: string;
  /** One line for a person at a terminal. */
  line: string;
}

/** Waits for a run and keeps its ending as a value, so every caller reports it through `describeOutcome`. */
export async function settleRun(run: Promise<SyncOutcome>): Promise<RunResult> {
  try {
    return { outcome: await run };
  } catch (error) {
    return { error };
  }
}

/**
 * One wording for every way a run ends (succeeded, failed, held, stopped at
 * shutdown, skipped because another process syncs the tenant, refused while a
 * deletion is held or the tenant is no longer active, crashed), shared by the scheduler, the queue and `roster sync`.
 */
export function describeOutcome(tenant: { id: string; displayName?: string }, result: RunResult): OutcomeDescription {
  const name = tenant.displayName ?? tenant.id;
  if ('outcome' in result) {
    const o = result.outcome;
    // A run stopped at shutdown is recorded as failed so that the next run resumes it; it is not a failure to report.
    const stopped = o.status === 'failed' && o.error === STOPPED_REASON;
    const status = stopped ? 'stopped' : o.status;
    const counts = `${o.pages} pages, ${o.created} created, ${o.updated} updated, ${o.deleted} removed`;
    const g = o.groups;
    // The groups' part is reported beside the users' and never changes its level: a missing group permission leaves users syncing (rule 25).
    const groups = g ? { groups: { run: g.id, kind: g.kind, status: g.status, pages: g.pages, created: g.created, updated: g.updated, deleted: g.deleted, error: g.error } } : {};
    const groupsLine = g ? `; groups ${g.kind} sync ${g.status}: ${g.pages} pages, ${g.created} created, ${g.updated} updated, ${g.deleted} removed${g.error ? ` (${g.error})` : ''}` : '';
    return {
      level: o.status === 'failed' && !stopped ? 'warn' : 'info',
      fields: { tenant: tenant.id, run: o.id, kind: o.kind, status, pages: o.pages, created: o.created, updated: o.updated, deleted: o.deleted, error: o.error, ...groups },
      message: stopped ? 'sync run stopped; the next run resumes it' : 'sync run finished',
      line: stopped ? `${name}: ${o.kind} sync stopped after ${counts}; the next run resumes it` : `${name}: ${o.kind} sync ${status}: ${counts}${o.error ? ` (${o.error})` : ''}${groupsLine}`,
    };
  }
  const { error } = result;
  if (error instanceof TenantBusyError) {
    return { level: 'info', fields: { tenant: tenant.id }, message: 'sync skipped: another process is syncing this tenant', line: `${name}: skipped, another process is syncing it right now` };
  }
  if (error instanceof HeldDeletionError) {
    return {
      level: 'info',
      fields: { tenant: tenant.id },
      message: 'sync skipped: a held deletion waits for a decision',
      line: `${name}: skipped, its last sync would remove many users and waits for a decision on the sync page or the operator console`,
    };
  }
  if (error instanceof SyncStoppedError) {
    return { level: 'info', fields: { tenant: tenant.id }, message: 'sync skipped: Roster is stopping', line: `${name}: not started, Roster is stopping` };
  }
  if (error instanceof TenantNotActiveError) {
    return { level: 'info', fields: { tenant: tenant.id }, message: 'sync skipped: the tenant is no longer active', line: `${name}: skipped, it is no longer an active tenant` };
  }
  // The database went away before the run could be recorded (a lost connection, a read-only or full file): no crash, the schedule tries again.
  const unavailable = databaseUnavailable(error);
  if (unavailable) {
    return { level: 'warn', fields: { tenant: tenant.id, err: unavailable }, message: 'sync not run: the database is unavailable', line: `${name}: sync not run, ${unavailable.message}` };
  }
  return { level: 'error', fields: { tenant: tenant.id, err: error }, message: 'sync run crashed', line: `${name}: sync crashed: ${error instanceof Error ? error.message : String(error)}` };
}

/** Writes a run's ending to a structured log, at the level `describeOutcome` gives it. */
export function logOutcome(logger: Pick<Logger, 'info' | 'warn' | 'error'>, tenant: { id: string; displayName?: string }, result: RunResult): OutcomeDescription {
  const description = describeOutcome(tenant, result);
  logger[description.level](description.fields, description.message);
  return description;
}
