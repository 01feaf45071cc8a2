import type { EmulatorContext } from '../context.ts';
import type { FormFields } from '../form.ts';
import { resolvePathTenant, type PathTenant } from '../identity.ts';
import type { AppRegistration } from '../model.ts';
import { SignInPageError } from './answers.ts';

/** The tenant, app and redirect URI of a browser request, once they are known to be good. */
export interface CheckedClient {
  path: PathTenant;
  app: AppRegistration;
  redirectUri: string;
}

/**
 * The checks that come before anything may be sent to the app: until the
 * redirect URI is known to be the app's, errors show on the emulator's page.
 */
export function checkClient(ctx: EmulatorContext, segment: string, q: FormFields): CheckedClient {
  const path = checkTenant(ctx, segment);
  const app = checkApp(ctx, path, segment, q.client_id);
  return { path, app, redirectUri: checkRedirectUri(app, q.redirect_uri) };
}

function checkTenant(ctx: EmulatorContext, segment: string): PathTenant {
  const path = resolvePathTenant(ctx, segment);
  if (path) return path;
  throw new SignInPageError(
    90002,
    `Tenant '${segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
  );
}

function checkApp(ctx: EmulatorContext, path: PathTenant, segment: string, clientId: string | undefined): AppRegistration {
  if (!clientId) throw new SignInPageError(900144, "The request body must contain the following parameter: 'client_id'.");
  const registration = ctx.directory.apps.get(clientId);
  if (registration) return registration;
  throw new SignInPageError(
    700016,
    `Application with identifier '${clientId}' was not found in the directory '${path.kind === 'tenant' ? path.tenant.displayName : segment}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
  );
}

function checkRedirectUri(app: AppRegistration, redirectUri: string | undefined): string {
  if (!redirectUri) throw new SignInPageError(900971, 'No reply address provided.');
  if (app.redirectUris.includes(redirectUri)) return redirectUri;
  throw new SignInPageError(
    50011,
    `The redirect URI '${redirectUri}' specified in the request does not match the redirect URIs configured for the application '${app.appId}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.`,
  );
}
