import { RosterError } from '../errors.ts';

/** A page action needs directory sync, which this process does not run. */
export class SyncUnavailableError extends RosterError {
  constructor() {
    super('Directory sync is not running in this Roster process, so nothing was started or changed.', { status: 503, code: 'sync_unavailable', expose: true });
  }
}
