import { ConfigError, type RosterConfig } from '../config/config.ts';
import { sha1Thumbprint } from '../identity/certificate.ts';
import { loadCertificateCredential } from '../identity/credentials.ts';
import { signInWithDeviceCode } from '../identity/device-code.ts';
import { graphDefaultScope } from '../identity/entra-app.ts';
import { OutboundHttp } from '../identity/http.ts';
import { loadAuthorityMetadata } from '../identity/metadata.ts';
import { checkRegistration, EXPIRY_WARNING_DAYS, RegistrationClient } from '../identity/registration.ts';
import { openStore, pendingMigrations } from '../store/database.ts';
import { identityProviderFromConfig } from './bootstrap.ts';
import { readSettings, type Command } from './run.ts';

type Check = { ok: boolean; detail: string; fix?: string };

function report(what: string, check: Check): void {
  process.stdout.write(`${check.ok ? 'ok  ' : 'FAIL'}  ${what}: ${check.detail}\n${check.fix ? `        fix: ${check.fix}\n` : ''}`);
}

/** The certificate Roster signs in with, read locally: no Graph needed to see it expire. */
async function checkCertificateFile(config: RosterConfig): Promise<Check | null> {
  const path = config.entra?.clientCertificatePath;
  if (!path) return null;
  try {
    const cert = await loadCertificateCredential(path);
    const days = Math.floor((cert.notAfter.getTime() - Date.now()) / 86_400_000);
    if (days < EXPIRY_WARNING_DAYS) {
      return { ok: false, detail: `${path} ${days < 0 ? 'has expired' : `expires in ${days} day(s)`} (${cert.notAfter.toISOString().slice(0, 10)})`, fix: 'roster setup --rotate-credential, then roster setup --drop-old once Roster uses the new one' };
    }
    return { ok: true, detail: `${path}, valid until ${cert.notAfter.toISOString().slice(0, 10)}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message, fix: 'point ENTRA_CLIENT_CERTIFICATE at a PEM file holding the certificate and its private key, or run roster setup' };
  }
}

/**
 * Reads the app registration through Graph and compares it with what Roster
 * needs. Graph lets no app read its own registration without
 * Application.Read.All, which Roster's app should not hold, so an
 * administrator signs in with the device code flow (read-only scope).
 */
async function checkRegistrationThroughGraph(config: RosterConfig, tenant: string): Promise<[string, Check][]> {
  const entra = config.entra!;
  const http = new OutboundHttp();
  try {
    const metadata = await loadAuthorityMetadata(http, entra.authorityHost);
    const admin = await signInWithDeviceCode({
      http,
      metadata,
      tenant,
      scopes: [graphDefaultScope(entra.graphBaseUrl).replace('/.default', '/Application.Read.All')],
      onCode: (message) => process.stdout.write(`${message}\n`),
    });
    const app = await new RegistrationClient(http, entra.graphBaseUrl, admin.accessToken).findApplication(entra.clientId);
    if (!app) {
      return [['app registration', { ok: false, detail: `ENTRA_CLIENT_ID ${entra.clientId} is not an app registration of tenant ${admin.tenantId}`, fix: 'sign in to the tenant that owns it (--tenant), or run roster setup to create one' }]];
    }
    const certificate = entra.clientCertificatePath ? await loadCertificateCredential(entra.clientCertificatePath).catch(() => null) : null;
    const problems = checkRegistration(app, { publicUrl: config.publicUrl, certificateSha1: certificate ? sha1Thumbprint(certificate.certificatePem) : null, nowMs: Date.now() });
    if (problems.length === 0) return [['app registration', { ok: true, detail: `${app.displayName ?? ''} (${app.appId}): redirect URIs, permissions, claims and credentials as Roster needs them` }]];
    return problems.map((p) => [`app registration ${p.item}`, { ok: false, detail: p.problem, fix: p.fix }]);
  } catch (err) {
    return [['app registration', { ok: false, detail: (err as Error).message }]];
  } finally {
    await http.close();
  }
}

async function checkDatabase(config: RosterConfig): Promise<Check> {
  try {
    const store = await openStore(config.database);
    try {
      const pending = await pendingMigrations(store);
      return { ok: pending.length === 0, detail: `${store.engine} at ${store.location}${pending.length ? `; ${pending.length} migration(s) pending: run roster migrate` : ', migrations applied'}` };
    } finally {
      await store.close();
    }
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

async function checkIdentityProvider(config: RosterConfig): Promise<Check> {
  if (!config.entra) return { ok: true, detail: 'the emulator starts with roster serve or roster demo' };
  const http = new OutboundHttp();
  try {
    await identityProviderFromConfig(config);
    const metadata = await loadAuthorityMetadata(http, config.entra.authorityHost);
    return { ok: true, detail: `discovery answered; issuer ${metadata.issuerTemplate}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  } finally {
    await http.close();
  }
}

/** `roster doctor`: every check runs and reports, so one run lists everything to fix. */
export const doctor: Command<{ registration?: boolean; tenant?: string }> = {
  name: 'doctor',
  usage: `Usage: roster doctor [--registration [--tenant ID]]
  Checks the configuration, the database, that the identity provider answers
  and when the certificate expires.
  --registration  also reads the app registration through Microsoft Graph and
                  checks its redirect URIs, permissions, claims and credential
                  expiry (within ${EXPIRY_WARNING_DAYS} days); an administrator of your tenant signs
                  in with the device code flow (read-only: Application.Read.All)
  --tenant ID     the tenant to sign in to for --registration (default: the account's)
`,
  options: { registration: { type: 'boolean' }, tenant: { type: 'string' } },
  async run(options) {
    let config: RosterConfig;
    try {
      config = readSettings().config;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const problem of err.problems) report('configuration', { ok: false, detail: problem });
      return 1;
    }
    report('configuration', { ok: true, detail: config.entra ? `Entra app ${config.entra.clientId} at ${config.entra.authorityHost.origin}` : 'demo mode (no Entra settings): Roster uses its own emulator' });
    const checks: [string, Check][] = [
      ['database', await checkDatabase(config)],
      ['identity provider', await checkIdentityProvider(config)],
    ];
    const certificate = await checkCertificateFile(config);
    if (certificate) checks.push(['certificate', certificate]);
    if (options.registration) {
      if (options.tenant !== undefined && !/^[\w.-]+$/.test(options.tenant)) checks.push(['app registration', { ok: false, detail: `--tenant ${options.tenant} is neither a tenant id nor a domain` }]);
      else if (!config.entra) checks.push(['app registration', { ok: false, detail: 'demo mode has no app registration to check', fix: 'run roster setup first' }]);
      else checks.push(...(await checkRegistrationThroughGraph(config, options.tenant ?? 'organizations')));
    }
    for (const [what, check] of checks) report(what, check);
    return checks.every(([, check]) => check.ok) ? 0 : 1;
  },
};
