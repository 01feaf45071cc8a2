import { messageOf } from '../errors.ts';
import { AppNotInTenantError } from '../identity/errors.ts';
import { databaseUnavailable } from '../store/database.ts';
import { SyncRunFailure } from './errors.ts';
import { GraphRequestError } from './graph-reader.ts';

export interface FailureContext {
  now: number;
  /** When the tenant signed up (or reconnected): consent may still be propagating just after. */
  signedUpAt: number;
  consentGraceMs: number;
  /** The Graph permission the object kind needs, named in the fix for a 403. */
  permission: string;
  /** What the kind reads, for messages ("list users"). */
  reading: string;
}

/**
 * What a failed run means for the tenant: consent revoked or the app removed
 * (disconnected, unless consent is still propagating), a missing Graph
 * permission, or a failure the next run may not meet again.
 */
export function classifyFailure(err: unknown, context: FailureContext): SyncRunFailure {
  if (err instanceof SyncRunFailure) return err;
  if (err instanceof AppNotInTenantError) {
    if (context.now - context.signedUpAt < context.consentGraceMs) {
      return new SyncRunFailure('failing', 'consent is still propagating; the next run retries', { code: 'consent_propagating', cause: err });
    }
    return new SyncRunFailure(
      'disconnected',
      'Roster is no longer connected to this organisation (the app was removed or its consent revoked): an administrator can reconnect through sign-up',
      { code: 'app_not_in_tenant', cause: err },
    );
  }
  if (err instanceof GraphRequestError && err.graphStatus === 403) {
    return new SyncRunFailure(
      'missing_permission',
      `Graph refused to ${context.reading} (403 Authorization_RequestDenied): grant Roster the Microsoft Graph application permission ${context.permission} and give admin consent again`,
      { code: 'missing_permission', cause: err },
    );
  }
  const unavailable = databaseUnavailable(err);
  if (unavailable) return new SyncRunFailure('failing', `${unavailable.message}; the next run starts over`, { code: 'database_unavailable', cause: err });
  return new SyncRunFailure('failing', messageOf(err), { code: 'sync_failed', cause: err });
}

/** The delta link has expired (410 Gone, or Graph's resync codes): the round must start over with a full listing. */
export function isExpiredDeltaLink(err: unknown): err is GraphRequestError {
  return err instanceof GraphRequestError && (err.graphStatus === 410 || /syncStateNotFound|resyncRequired/i.test(err.graphCode));
}
