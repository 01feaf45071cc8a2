import { AuthError } from '@azure/msal-node';
import { RosterError } from '../errors.ts';

/**
 * Errors of the identity layer. MSAL reports Entra's answers as `AuthError`s
 * whose AADSTS code sits inside a message string; this module is the only place
 * that reads those strings, so every caller branches on a class instead.
 */
export class IdentityError extends RosterError {
  /** Entra's AADSTS code (e.g. `AADSTS700016`), when the answer carried one. */
  readonly aadsts: string | undefined;
  constructor(message: string, options: { status?: number; code: string; aadsts?: string | undefined; cause?: unknown }) {
    super(message, { status: options.status ?? 502, code: options.code, expose: false, cause: options.cause });
    this.aadsts = options.aadsts;
  }
}

/**
 * Roster's application is not (or no longer) in the tenant: never consented,
 * removed, or its consent revoked (AADSTS700016, AADSTS7000229). Just after a
 * consent this can also mean the consent has not propagated yet; the caller
 * knows how recent the consent is and decides.
 */
export class AppNotInTenantError extends IdentityError {}

/** Consent was not granted for the requested permissions, or has not reached the token endpoint yet (AADSTS65001). */
export class ConsentMissingError extends IdentityError {}

/** The token endpoint refused Roster's own credentials (`invalid_client`: wrong or expired secret or certificate). */
export class BadClientCredentialsError extends IdentityError {}

/** The identity provider could not be reached or answered with a server error. */
export class IdentityUnavailableError extends IdentityError {}

const APP_NOT_IN_TENANT = new Set(['AADSTS700016', 'AADSTS7000229']);
const CONSENT_MISSING = new Set(['AADSTS65001']);

/** The AADSTS code inside a message or error description, if any. */
export function aadstsCodeOf(text: string | null | undefined): string | undefined {
  return /AADSTS\d+/.exec(text ?? '')?.[0];
}

/**
 * Turns what MSAL (or the network under it) threw into a typed identity error.
 * Errors that are already Roster's pass through unchanged.
 */
export function toIdentityError(err: unknown): Error {
  if (err instanceof RosterError) return err;
  if (!(err instanceof AuthError)) {
    return new IdentityUnavailableError(`the identity provider could not be reached: ${err instanceof Error ? err.message : String(err)}`, { code: 'identity_unavailable', cause: err });
  }
  const aadsts = aadstsCodeOf(err.errorMessage);
  const summary = `${err.errorCode}: ${err.errorMessage.split('\n')[0]}`;
  const options = { aadsts, cause: err };
  if (aadsts && APP_NOT_IN_TENANT.has(aadsts)) return new AppNotInTenantError(summary, { ...options, code: 'app_not_in_tenant' });
  if (aadsts && CONSENT_MISSING.has(aadsts)) return new ConsentMissingError(summary, { ...options, code: 'consent_missing' });
  if (err.errorCode === 'invalid_client') return new BadClientCredentialsError(summary, { ...options, code: 'bad_client_credentials' });
  if (err.errorCode === 'network_error' || err.errorCode === 'endpoints_resolution_error') {
    return new IdentityUnavailableError(summary, { ...options, code: 'identity_unavailable' });
  }
  return new IdentityError(summary, { ...options, code: 'identity_error' });
}
