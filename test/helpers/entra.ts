import type { CertificateCredential } from '../../src/identity/credentials.ts';
import { EntraApp } from '../../src/identity/entra-app.ts';
import { OutboundHttp } from '../../src/identity/http.ts';
import { loadAuthorityMetadata, type AuthorityMetadata } from '../../src/identity/metadata.ts';
import type { TestEmulator } from './emulator.ts';

/** Roster's identity layer pointed at a test emulator, as demo mode points it. */
export interface EmulatorConnection {
  http: OutboundHttp;
  metadata: AuthorityMetadata;
  graphBaseUrl: URL;
  /** The demo app registration; its secret unless other credentials are given. */
  app(credentials?: { secret?: string | null; certificate?: CertificateCredential | null }): EntraApp;
  close(): Promise<void>;
}

export async function connectToEmulator(emulator: TestEmulator): Promise<EmulatorConnection> {
  const http = new OutboundHttp({ trustedCaPem: emulator.caCertPem });
  const metadata = await loadAuthorityMetadata(http, new URL(emulator.urls.authority));
  const graphBaseUrl = new URL(emulator.urls.graph);
  return {
    http,
    metadata,
    graphBaseUrl,
    app: (credentials = { secret: emulator.demoApp.clientSecret }) =>
      new EntraApp({
        credentials: { clientId: emulator.demoApp.clientId, clientSecret: credentials.secret ?? null, certificate: credentials.certificate ?? null },
        metadata,
        http,
        graphBaseUrl,
      }),
    close: () => http.close(),
  };
}
