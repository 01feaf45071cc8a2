import { RosterError } from '../errors.ts';
import type { SyncHealthValue } from '../store/sync-state.ts';

/** Errors of the directory sync; each refuses or ends a run for a reason a caller can act on. */
export class DirectorySyncError extends RosterError {
  constructor(message: string, code: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, { status: options.status ?? 409, code, cause: options.cause });
  }
}

/** Another process is syncing the tenant (or took it over from this one). */
export class TenantBusyError extends DirectorySyncError {
  constructor(message: string) { super(message, 'tenant_busy'); }
}

/** The tenant's last run is held for a decision on its deletions; no run starts until it is confirmed or discarded. */
export class HeldDeletionError extends DirectorySyncError {
  constructor(message: string) { super(message, 'deletion_held'); }
}

/** A decision was asked for a tenant with no run held. */
export class NoHeldDeletionError extends DirectorySyncError {
  constructor(message: string) { super(message, 'no_held_deletion'); }
}

/** Only active tenants are synced. */
export class TenantNotActiveError extends DirectorySyncError {
  constructor(message: string) { super(message, 'tenant_not_active'); }
}

/** The caller asked the run to stop (Roster is shutting down) before it started. */
export class SyncStoppedError extends DirectorySyncError {
  constructor(message: string) { super(message, 'sync_stopped', { status: 503 }); }
}

/** Why a run failed, and what that says about the tenant's sync health; recorded on the run and the tenant. */
export class SyncRunFailure extends DirectorySyncError {
  readonly health: SyncHealthValue;
  constructor(health: SyncHealthValue, message: string, options: { code: string; cause?: unknown }) {
    super(message, options.code, { status: 502, cause: options.cause });
    this.health = health;
  }
}
