import { RosterError } from '../errors.ts';

/** No tenant with this id (or none the caller may see: the same answer, so nothing leaks). */
export class TenantNotFoundError extends RosterError {
  constructor() {
    super('Roster has no tenant with this id.', { status: 404, code: 'tenant_not_found', expose: true });
  }
}

/** The tenant's state does not allow the action (suspending a suspended tenant, syncing one that left). */
export class TenantStateConflictError extends RosterError {
  constructor(message: string) {
    super(message, { status: 409, code: 'tenant_state_conflict', expose: true });
  }
}

/** Input that cannot be used (an operator's form, a command's option, an API query), naming the field. */
export class InvalidInputError extends RosterError {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message, { status: 400, code: 'invalid_request', expose: true });
    this.field = field;
  }
}

/** An API key that is not known, was revoked, or is not a Roster key at all; one answer for all (nothing to probe). */
export class ApiKeyRejectedError extends RosterError {
  constructor() {
    super('A valid API key is needed: send Authorization: Bearer <key> with a key that has not been revoked.', { status: 401, code: 'invalid_api_key', expose: true });
  }
}
