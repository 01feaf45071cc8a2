import { LogLevel, PublicClientApplication } from '@azure/msal-node';
import { IdentityError, toIdentityError } from './errors.ts';
import type { OutboundHttp } from './http.ts';
import type { AuthorityMetadata } from './metadata.ts';

/** Microsoft Azure CLI's client id: a public client every Entra tenant knows, allowed to ask for Graph's delegated scopes. */
export const DEVICE_CODE_CLIENT_ID = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';

export interface DelegatedSignIn {
  accessToken: string;
  tenantId: string;
  username: string;
}

/**
 * Signs a person in with the device code flow: `onCode` shows the code and the
 * page to enter it on; the promise settles once they have signed in (or
 * refused, or the code expired). `tenant` is a tenant id or domain, or
 * `organizations` for whichever work account signs in.
 */
export async function signInWithDeviceCode(options: {
  http: OutboundHttp;
  metadata: AuthorityMetadata;
  tenant: string;
  scopes: string[];
  clientId?: string;
  onCode: (message: string, code: { userCode: string; verificationUri: string }) => void;
}): Promise<DelegatedSignIn> {
  const host = new URL(options.metadata.authorityHost);
  const tenantAuthority = options.tenant === 'organizations';
  const client = new PublicClientApplication({
    auth: {
      clientId: options.clientId ?? DEVICE_CODE_CLIENT_ID,
      authority: `${options.metadata.authorityHost}/${options.tenant}`,
      knownAuthorities: [host.host],
      // The organizations document describes every tenant's endpoints by template; MSAL reads it only for that authority.
      ...(tenantAuthority ? { authorityMetadata: options.metadata.raw } : {}),
    },
    system: { networkClient: options.http.msalNetworkModule(), loggerOptions: { piiLoggingEnabled: false, logLevel: LogLevel.Error, loggerCallback: () => {} } },
  });
  try {
    const result = await client.acquireTokenByDeviceCode({
      scopes: options.scopes,
      deviceCodeCallback: (response) => options.onCode(response.message, { userCode: response.userCode, verificationUri: response.verificationUri }),
    });
    if (!result?.accessToken || !result.account) throw new IdentityError('the device code sign-in returned no token', { code: 'identity_error' });
    return { accessToken: result.accessToken, tenantId: result.account.tenantId, username: result.account.username };
  } catch (err) {
    throw toIdentityError(err);
  }
}
