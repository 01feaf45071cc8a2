import { Client, GraphError } from '@microsoft/microsoft-graph-client';
import type { OutboundHttp } from '../identity/http.ts';

export { GraphError };

/**
 * A Microsoft Graph client for one tenant. The library attaches the bearer
 * token only to Graph's own hosts or to `customHosts`, so a Graph stand-in
 * (the emulator, a sovereign cloud) is listed there; the shared dispatcher
 * carries the trusted CA.
 */
export function graphClientFor(options: { http: OutboundHttp; graphBaseUrl: URL; accessToken: () => Promise<string> }): Client {
  const { http, graphBaseUrl, accessToken } = options;
  return Client.init({
    authProvider: (done) => {
      accessToken().then(
        (token) => done(null, token),
        (err: unknown) => done(err as Error, null),
      );
    },
    baseUrl: graphBaseUrl.origin,
    defaultVersion: 'v1.0',
    customHosts: new Set([graphBaseUrl.hostname]),
    // The library calls the global fetch, which accepts undici's dispatcher.
    fetchOptions: { dispatcher: http.dispatcher } as RequestInit,
  });
}

export interface Organization {
  id: string;
  displayName: string;
  verifiedDomains: { name: string; isDefault?: boolean; isInitial?: boolean }[];
}

export async function readOrganization(client: Client): Promise<Organization | undefined> {
  const response = (await client.api('/organization').select(['id', 'displayName', 'verifiedDomains']).get()) as { value?: Organization[] };
  return response.value?.[0];
}
