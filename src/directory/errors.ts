import { RosterError } from '../errors.ts';
import type { SyncHealthValue } from '../store/sync-state.ts';

/** Errors of the directory sync; each refuses or ends a run for a reason a caller can act on. */
export class DirectorySyncError extends RosterError {}

/** Another process is syncing the tenant (or took it over from this one). */
export class TenantBusyError extends DirectorySyncError {
  constructor(message: string) {
    super(message, { status: 409, code: 'tenant_busy' });
  }
}

/** The tenant's last run is held for a decision on its deletions; no run starts until it is confirmed or discarded. */
export class HeldDeletionError extends DirectorySyncError {
  constructor(message: string) {
    super(message, { status: 409, code: 'deletion_held' });
  }
}

/** A decision was asked for a tenant with no run held. */
export class NoHeldDeletionError extends DirectorySyncError {
  constructor(message: string) {
    super(message, { status: 409, code: 'no_held_deletion' });
  }
}

/** Only active tenants are synced. */
export class TenantNotActiveError extends DirectorySyncError {
  constructor(message: string) {
    super(message, { status: 409, code: 'tenant_not_active' });
  }
}

/** The caller asked the run to stop (Roster is shutting down) before it started. */
export class SyncStoppedError extends DirectorySyncError {
  constructor(message: string) {
    super(message, { status: 503, code: 'sync_stopped' });
  }
}

/** Why a run failed, and what that says about the tenant's sync health; recorded on the run and the tenant. */
export class SyncRunFailure extends DirectorySyncError {
  readonly health: SyncHealthValue;
  constructor(health: SyncHealthValue, message: string, options: { code: string; cause?: unknown }) {
    super(message, { status: 502, code: options.code, cause: options.cause });
    this.health = health;
  }
}
