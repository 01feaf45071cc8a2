import { randomUUID } from 'node:crypto';
import type { EmulatorContext } from '../../src/emulator/context.ts';
import { Clock } from '../../src/emulator/clock.ts';
import { Directory, type AppRegistration, type Tenant, type UserRecord } from '../../src/emulator/model.ts';
import { createRsaKeyWithCertificate, describeCertificate } from '../../src/emulator/pki.ts';
import { DEMO_APP_ROLES } from '../../src/emulator/server.ts';

export interface Org {
  tenant: Tenant;
  admin: UserRecord;
  member: UserRecord;
}

/** A tenant with an admin (`admin@<domain>`, password `pw`) and a member (`user@<domain>`, password `pw`). */
export function addOrg(ctx: EmulatorContext, name: string, domain: string): Org {
  const tenant = ctx.directory.addTenant({ displayName: name, domains: [`${domain.split('.')[0]}.onmicrosoft.com`, domain] });
  const admin = ctx.directory.addUser(tenant, { userPrincipalName: `admin@${domain}`, displayName: `${name} Admin`, password: 'pw', admin: true });
  const member = ctx.directory.addUser(tenant, { userPrincipalName: `user@${domain}`, displayName: `${name} User`, givenName: 'Una', surname: 'User', password: 'pw' });
  return { tenant, admin, member };
}

export function demoApp(ctx: EmulatorContext): AppRegistration {
  return ctx.directory.requireApp(ctx.demoAppId);
}

export function consent(ctx: EmulatorContext, org: Org): void {
  ctx.directory.grantAdminConsent(org.tenant, demoApp(ctx));
}

export interface ClientCert {
  certPem: string;
  keyPem: string;
  x5t: string;
  x5tS256: string;
  /** Hex thumbprints, the form MSAL's `clientCertificate` config takes. */
  sha1Hex: string;
  sha256Hex: string;
}

/** Creates a certificate and registers it on the demo app (as the Azure portal's "Upload certificate"). */
export async function registerClientCertificate(ctx: EmulatorContext): Promise<ClientCert> {
  const { certPem, keyPem } = await createRsaKeyWithCertificate('Roster test client');
  const info = describeCertificate(certPem);
  demoApp(ctx).certificates.push({
    id: randomUUID(),
    x5t: info.x5t,
    x5tS256: info.x5tS256,
    publicKeyPem: info.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    expiresAtMs: info.notAfter.getTime(),
  });
  return {
    certPem,
    keyPem,
    x5t: info.x5t,
    x5tS256: info.x5tS256,
    sha1Hex: Buffer.from(info.x5t, 'base64url').toString('hex'),
    sha256Hex: Buffer.from(info.x5tS256, 'base64url').toString('hex'),
  };
}

/** Parses a redirect's query (or fragment) into a plain object. */
export function paramsOf(location: string | null): Record<string, string> {
  if (!location) throw new Error('expected a redirect');
  const url = new URL(location);
  const search = url.hash ? new URLSearchParams(url.hash.slice(1)) : url.searchParams;
  return Object.fromEntries(search.entries());
}

/** Id of the demo app in directories built without a server. */
export const DEMO_APP_ID = '11111111-2222-4333-8444-555555555555';

/** A bare emulator directory holding only the demo app registration (no server). */
export function directoryWithDemoApp(): Directory {
  const directory = new Directory(new Clock());
  directory.addApp({
    appId: DEMO_APP_ID,
    displayName: 'Roster (demo)',
    homeTenantId: null,
    signInAudience: 'AzureADMultipleOrgs',
    redirectUris: ['http://localhost:3000/auth/callback'],
    postLogoutRedirectUris: ['http://localhost:3000/'],
    secrets: [{ id: 's1', value: 'secret-value-one', expiresAtMs: 1_900_000_000_000 }],
    certificates: [],
    requiredAppRoles: [...DEMO_APP_ROLES],
    disabled: false,
    groupMembershipClaims: 'DirectoryRole',
  });
  return directory;
}
