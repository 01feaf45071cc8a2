import { RosterError } from '../errors.ts';

/** The key is valid but lacks the scope the route needs. */
export class MissingScopeError extends RosterError {
  constructor(scope: string) {
    super(`This API key does not have the "${scope}" scope this request needs.`, { status: 403, code: 'missing_scope', expose: true });
  }
}

/** Nothing at this address, or nothing this key may see there: the same answer (security rule 31). */
export class ApiNotFoundError extends RosterError {
  constructor(what = 'There is nothing at this address that this API key may see.') {
    super(what, { status: 404, code: 'not_found', expose: true });
  }
}

/** The key used up its requests for the window; `Retry-After` says when to come back. */
export class RateLimitedError extends RosterError {
  constructor(seconds: number) {
    super(`This API key has made too many requests; try again in ${seconds} s.`, { status: 429, code: 'rate_limited', expose: true });
  }
}
