import type { FormFields } from '../form.ts';
import type { AppRegistration } from '../model.ts';
import { AppRedirectError } from './answers.ts';
import type { AppReturn, ResponseMode } from './transaction.ts';

/**
 * The checks of an authorize request once its redirect URI is the app's:
 * each failure is sent to the app, as Entra does.
 */

const RESPONSE_MODES: readonly string[] = ['query', 'fragment', 'form_post'];

/** Where answers go; an unknown `response_mode` is itself answered in the query. */
export function checkResponseMode(redirectUri: string, q: FormFields): AppReturn {
  const requested = q.response_mode ?? 'query';
  const responseMode: ResponseMode = requested === 'form_post' || requested === 'fragment' ? requested : 'query';
  const target = { redirectUri, responseMode, state: q.state };
  if (!RESPONSE_MODES.includes(requested)) {
    throw new AppRedirectError(target, 'invalid_request', 70007, `The app returned an unsupported value of 'response_mode': '${requested}'.`);
  }
  return target;
}

/** Only the code flow: the implicit grant is not enabled for Roster's registrations. */
export function checkResponseType(target: AppReturn, responseType: string | undefined): void {
  if (!responseType) throw missingParameter(target, 'response_type');
  if (responseType === 'code') return;
  const parts = responseType.split(' ');
  if (parts.includes('token')) throw new AppRedirectError(target, 'unsupported_response_type', 700051, "response_type 'token' is not enabled for the application.");
  if (parts.includes('id_token')) throw new AppRedirectError(target, 'unsupported_response_type', 700054, "response_type 'id_token' is not enabled for the application.");
  throw new AppRedirectError(target, 'unsupported_response_type', 70005, `The app returned an unsupported response type '${responseType}'.`);
}

export function checkScope(target: AppReturn, scope: string | undefined): string {
  if (!scope) throw missingParameter(target, 'scope');
  return scope;
}

export function checkPkce(target: AppReturn, q: FormFields): void {
  if (q.code_challenge_method !== undefined && !['S256', 'plain'].includes(q.code_challenge_method)) {
    throw new AppRedirectError(target, 'invalid_request', 50149, 'Invalid Code_Challenge_method parameter.');
  }
  if (q.code_challenge !== undefined && (q.code_challenge.length < 43 || q.code_challenge.length > 128)) {
    throw new AppRedirectError(target, 'invalid_request', 501491, 'Invalid size of Code_Challenge parameter.');
  }
}

export function checkAppEnabled(target: AppReturn, app: AppRegistration): void {
  if (app.disabled) throw new AppRedirectError(target, 'unauthorized_client', 7000112, `Application '${app.appId}'(${app.displayName}) is disabled.`);
}

function missingParameter(target: AppReturn, name: string): AppRedirectError {
  return new AppRedirectError(target, 'invalid_request', 900144, `The request body must contain the following parameter: '${name}'.`);
}
