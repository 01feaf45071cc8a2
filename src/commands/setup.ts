import { isAbsolute, join, relative, resolve } from 'node:path';
import { environmentWithDotEnv } from '../config/config.ts';
import { updateDotEnv } from '../config/dotenv.ts';
import { signInWithDeviceCode } from '../identity/device-code.ts';
import { graphDefaultScope } from '../identity/entra-app.ts';
import { OutboundHttp } from '../identity/http.ts';
import { loadAuthorityMetadata } from '../identity/metadata.ts';
import {
  GRAPH_RESOURCE_APP_ID,
  GraphAdminError,
  grantedRoleIds,
  idTokenClaimNames,
  redirectUrisOf,
  RegistrationClient,
  REQUIRED_APP_ROLES,
  REQUIRED_GROUP_MEMBERSHIP_CLAIMS,
  REQUIRED_ID_TOKEN_CLAIMS,
  REQUIRED_SIGN_IN_AUDIENCE,
  requiredRedirectUris,
  CALLBACK_PATHS,
  WIDS_EMITTING_CLAIMS,
  type GraphApplication,
} from '../identity/registration.ts';
import type { Command } from './run.ts';
import { certificateCredential, secretCredential, SetupInputError, type SetupOptions, type SetupSettings, type Step } from './setup-credentials.ts';

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DEFAULT_CERTIFICATE_FILE = 'entra-app.pem';

function readSetupSettings(env: Record<string, string | undefined>, cwd: string): SetupSettings {
  const problems: string[] = [];
  const text = (name: string) => (env[name]?.trim() ? env[name]!.trim() : undefined);
  const url = (name: string, fallback: string | undefined, https: boolean): URL | undefined => {
    const raw = text(name) ?? fallback;
    if (raw === undefined) return undefined;
    if (!URL.canParse(raw)) {
      problems.push(`${name} must be an absolute URL such as https://example.com (got ${raw})`);
      return undefined;
    }
    const parsed = new URL(raw);
    if (https && parsed.protocol !== 'https:') problems.push(`${name} must use https`);
    return parsed;
  };
  const publicUrl = url('PUBLIC_URL', undefined, false);
  if (!publicUrl) problems.push('PUBLIC_URL is needed: the address people open Roster at, e.g. https://roster.example.com (redirect URIs are made from it)');
  else if (publicUrl.pathname !== '/' || publicUrl.search || publicUrl.hash) problems.push('PUBLIC_URL must be a bare origin such as https://roster.example.com (no path, query or fragment)');
  else if (publicUrl.protocol !== 'https:' && !(publicUrl.protocol === 'http:' && publicUrl.hostname === 'localhost')) {
    problems.push('PUBLIC_URL must use https (Entra accepts http redirect URIs only for localhost)');
  }
  const authorityHost = url('ENTRA_AUTHORITY_HOST', 'https://login.microsoftonline.com', true);
  const graphBaseUrl = url('GRAPH_BASE_URL', 'https://graph.microsoft.com', true);
  const clientId = text('ENTRA_CLIENT_ID') ?? null;
  if (clientId && !GUID.test(clientId)) problems.push('ENTRA_CLIENT_ID must be the application (client) id, a GUID');
  if (problems.length > 0) throw new SetupInputError(problems.join('\n  '));
  const dataDir = text('DATA_DIR') ?? 'data';
  const setting = text('ENTRA_CLIENT_CERTIFICATE') ?? join(dataDir, DEFAULT_CERTIFICATE_FILE);
  const hosts: Record<string, string> = {};
  for (const name of ['ENTRA_AUTHORITY_HOST', 'GRAPH_BASE_URL']) if (text(name)) hosts[name] = text(name)!;
  return {
    publicUrl: publicUrl!,
    authorityHost: authorityHost!,
    graphBaseUrl: graphBaseUrl!,
    clientId,
    clientSecret: text('ENTRA_CLIENT_SECRET') ?? null,
    certificate: { setting, path: resolve(cwd, setting) },
    hosts,
  };
}

/** The registration's properties Roster needs, merged with what it already has (other redirect URIs, permissions and claims stay). */
function desiredProperties(app: GraphApplication | null, publicUrl: URL): Record<string, { value: unknown; same: boolean; item: string }> {
  const wantedUris = requiredRedirectUris(publicUrl);
  const current = app ? redirectUrisOf(app) : [];
  // Roster's callbacks at another origin belong to an earlier PUBLIC_URL: replaced, not kept.
  const others = current.filter((uri) => !CALLBACK_PATHS.includes(URL.canParse(uri) ? new URL(uri).pathname : uri));
  const uris = [...others, ...wantedUris];
  const sameUris = current.length === uris.length && uris.every((u) => current.includes(u));

  const granted = app ? grantedRoleIds(app) : new Set<string>();
  const missingRoles = REQUIRED_APP_ROLES.filter((r) => !granted.has(r.id));
  const resources = (app?.requiredResourceAccess ?? []).map((r) => ({ ...r, resourceAccess: [...r.resourceAccess] }));
  let graph = resources.find((r) => r.resourceAppId === GRAPH_RESOURCE_APP_ID);
  if (!graph) resources.push((graph = { resourceAppId: GRAPH_RESOURCE_APP_ID, resourceAccess: [] }));
  for (const role of missingRoles) graph.resourceAccess.push({ id: role.id, type: 'Role' });

  const claimsOk = WIDS_EMITTING_CLAIMS.includes(app?.groupMembershipClaims ?? 'None');
  const names = app ? idTokenClaimNames(app) : new Set<string>();
  const missingClaims = REQUIRED_ID_TOKEN_CLAIMS.filter((n) => !names.has(n));
  const optional = { accessToken: [], saml2Token: [], ...(app?.optionalClaims ?? {}) } as Record<string, unknown>;
  optional.idToken = [...((app?.optionalClaims?.idToken ?? []) as object[]), ...missingClaims.map((name) => ({ name, essential: false }))];

  return {
    signInAudience: { value: REQUIRED_SIGN_IN_AUDIENCE, same: app?.signInAudience === REQUIRED_SIGN_IN_AUDIENCE, item: 'sign-in audience' },
    web: { value: { redirectUris: uris }, same: sameUris, item: 'redirect URIs' },
    requiredResourceAccess: { value: resources, same: missingRoles.length === 0, item: 'permissions' },
    groupMembershipClaims: { value: claimsOk ? app!.groupMembershipClaims : REQUIRED_GROUP_MEMBERSHIP_CLAIMS, same: claimsOk, item: 'groupMembershipClaims (wids)' },
    optionalClaims: { value: optional, same: missingClaims.length === 0, item: 'optional claims (login_hint)' },
  };
}

/** The `.env` changes as report lines; the secret's value is never shown. */
async function updateDotEnvSteps(file: string, wanted: Record<string, string>, force: boolean, replace: ReadonlySet<string>): Promise<Step[]> {
  const changes = await updateDotEnv(file, wanted, { force, replace });
  return changes.map(({ key, status, value }) => {
    const shown = key === 'ENTRA_CLIENT_SECRET' ? '(secret)' : value;
    return { status, item: `.env ${key}`, detail: status === 'skipped' ? `keeps its own value (roster setup would write ${shown}); --force replaces it` : shown };
  });
}

function printSteps(steps: Step[]): void {
  const width = Math.max(...steps.map((s) => s.item.length));
  for (const step of steps) process.stdout.write(`  ${step.status.padEnd(9)}  ${step.item.padEnd(width)}  ${step.detail}\n`);
}

const USAGE = `Usage: roster setup [--secret] [--rotate-credential | --drop-old] [--force] [--tenant ID] [--name NAME]
  Signs your own administrator in with the device code flow (a code and a URL
  are printed), then through Microsoft Graph creates or updates Roster's
  multi-tenant app registration in your tenant: sign-in audience, redirect URIs
  from PUBLIC_URL, the application permissions User.Read.All and
  GroupMember.Read.All, the claims Roster reads (wids, login_hint), a
  certificate (or a secret) and the service principal. Writes ENTRA_* settings
  to .env and prints the admin consent link for your tenant. Running it again
  changes only what differs.

  Reads PUBLIC_URL, ENTRA_CLIENT_ID, ENTRA_CLIENT_CERTIFICATE (default
  DATA_DIR/${DEFAULT_CERTIFICATE_FILE}), ENTRA_CLIENT_SECRET, ENTRA_AUTHORITY_HOST
  and GRAPH_BASE_URL from the environment and .env.

  --secret             use a client secret instead of a certificate
  --rotate-credential  add a new certificate (or secret), keeping the old one valid
  --drop-old           once the new credential is in use, remove the others
  --force              replace settings .env already holds with other values
  --tenant ID          the tenant (id or domain) to sign in to (default: your account's)
  --name NAME          display name of a new registration (default Roster)

Exit codes: 0 done, 1 refused by Entra or Graph, 2 settings or options to fix.
`;

export const setup: Command<SetupOptions> = {
  name: 'setup',
  usage: USAGE,
  options: {
    secret: { type: 'boolean' },
    'rotate-credential': { type: 'boolean' },
    'drop-old': { type: 'boolean' },
    force: { type: 'boolean' },
    tenant: { type: 'string' },
    name: { type: 'string' },
  },
  async run(options) {
    const cwd = process.cwd();
    let settings: SetupSettings;
    try {
      if (options['rotate-credential'] && options['drop-old']) throw new SetupInputError('--rotate-credential and --drop-old are two steps: rotate, restart or wait for Roster to use the new credential, then drop the old one');
      if (options.tenant !== undefined && !/^[\w.-]+$/.test(options.tenant)) throw new SetupInputError('--tenant must be a tenant id or a domain such as contoso.onmicrosoft.com');
      if (options.name !== undefined && (options.name.trim() === '' || options.name.length > 120)) throw new SetupInputError('--name must be 1 to 120 characters');
      settings = readSetupSettings(environmentWithDotEnv(process.env, cwd), cwd);
      if ((options['rotate-credential'] || options['drop-old']) && !settings.clientId) {
        throw new SetupInputError('--rotate-credential and --drop-old need ENTRA_CLIENT_ID: run roster setup without them first');
      }
    } catch (err) {
      if (!(err instanceof SetupInputError)) throw err;
      process.stderr.write(`roster setup: ${err.message}\n`);
      return 2;
    }
    const http = new OutboundHttp();
    try {
      return await runSetup(options, settings, http, cwd);
    } catch (err) {
      if (err instanceof SetupInputError) {
        process.stderr.write(`roster setup: ${err.message}\n`);
        return 2;
      }
      if (err instanceof GraphAdminError || (err instanceof Error && 'aadsts' in err)) {
        process.stderr.write(`roster setup: ${err.message}\n`);
        return 1;
      }
      throw err;
    } finally {
      await http.close();
    }
  },
};

async function runSetup(options: SetupOptions, settings: SetupSettings, http: OutboundHttp, cwd: string): Promise<number> {
  const metadata = await loadAuthorityMetadata(http, settings.authorityHost);
  const scope = graphDefaultScope(settings.graphBaseUrl).replace('/.default', '/Application.ReadWrite.All');
  const admin = await signInWithDeviceCode({
    http,
    metadata,
    tenant: options.tenant ?? 'organizations',
    scopes: [scope],
    onCode: (message) => process.stdout.write(`${message}\n`),
  });
  process.stdout.write(`Signed in as ${admin.username} (tenant ${admin.tenantId}).\n`);
  const graph = new RegistrationClient(http, settings.graphBaseUrl, admin.accessToken);
  const refuse = (err: unknown): never => {
    if (err instanceof GraphAdminError && err.graphStatus === 403) {
      throw new GraphAdminError(
        403,
        err.graphCode,
        `${admin.username} may not create or change app registrations in tenant ${admin.tenantId} (Graph answered 403 ${err.graphCode}). Sign in with a Global Administrator, Application Administrator or Cloud Application Administrator of your organisation. Nothing was changed.`,
      );
    }
    throw err;
  };
  const steps: Step[] = [];

  // 1. The registration itself.
  let app = settings.clientId ? await graph.findApplication(settings.clientId).catch(refuse) : null;
  if (settings.clientId && !app) {
    throw new SetupInputError(
      `ENTRA_CLIENT_ID ${settings.clientId} is not an app registration of tenant ${admin.tenantId}: sign in to the tenant that owns it (--tenant), or remove ENTRA_CLIENT_ID from the settings to create a new registration`,
    );
  }
  const desired = desiredProperties(app, settings.publicUrl);
  if (!app) {
    const body = { displayName: options.name?.trim() ?? 'Roster', ...Object.fromEntries(Object.entries(desired).map(([k, v]) => [k, v.value])) };
    app = await graph.createApplication(body).catch(refuse);
    steps.push({ status: 'created', item: 'app registration', detail: `${app.displayName ?? 'Roster'} (client id ${app.appId})` });
    for (const property of Object.values(desired)) steps.push({ status: 'created', item: property.item, detail: describe(property.item, property.value) });
  } else {
    steps.push({ status: 'unchanged', item: 'app registration', detail: `${app.displayName ?? ''} (client id ${app.appId})` });
    const changes = Object.fromEntries(Object.entries(desired).filter(([, v]) => !v.same).map(([k, v]) => [k, v.value]));
    if (Object.keys(changes).length > 0) await graph.updateApplication(app.id, changes).catch(refuse);
    for (const property of Object.values(desired)) steps.push({ status: property.same ? 'unchanged' : 'updated', item: property.item, detail: describe(property.item, property.value) });
    app = await graph.getApplication(app.id).catch(refuse);
  }

  // 2. Its credential.
  const envSettings: Record<string, string> = { PUBLIC_URL: settings.publicUrl.origin, ...settings.hosts, ENTRA_CLIENT_ID: app.appId };
  const replace = new Set<string>();
  if (options.secret) {
    const step = await secretCredential(options, settings, graph, app, admin.tenantId, { http, metadata }, envSettings, replace, refuse);
    steps.push(...step);
  } else {
    steps.push(...(await certificateCredential(options, settings, graph, app, admin.tenantId, { http, metadata }, refuse)));
    envSettings.ENTRA_CLIENT_CERTIFICATE = isAbsolute(settings.certificate.setting) ? settings.certificate.setting : relative(cwd, settings.certificate.path) || settings.certificate.setting;
  }

  // 3. The service principal in the vendor's own tenant.
  const sp = await graph.findServicePrincipal(app.appId).catch(refuse);
  if (sp) steps.push({ status: 'unchanged', item: 'service principal', detail: sp.id });
  else steps.push({ status: 'created', item: 'service principal', detail: (await graph.createServicePrincipal(app.appId).catch(refuse)).id });

  // 4. The settings.
  steps.push(...(await updateDotEnvSteps(join(cwd, '.env'), envSettings, options.force ?? false, replace)));

  process.stdout.write('\n');
  printSteps(steps);
  const changed = steps.some((s) => !['unchanged', 'skipped'].includes(s.status));
  process.stdout.write(changed ? '\nDone.\n' : '\nNothing changed: the app registration, its credential, the service principal and .env already match.\n');
  const skipped = steps.filter((s) => s.status === 'skipped');
  if (skipped.length > 0) process.stdout.write(`${skipped.length} setting(s) in .env were left as they are (see "skipped" above); run with --force to replace them.\n`);
  const consent = new URL(`/${encodeURIComponent(admin.tenantId)}/v2.0/adminconsent`, metadata.adminConsentEndpoint);
  consent.searchParams.set('client_id', app.appId);
  consent.searchParams.set('scope', graphDefaultScope(settings.graphBaseUrl));
  consent.searchParams.set('redirect_uri', new URL('/signup/callback', settings.publicUrl).href);
  process.stdout.write(`\nAdmin consent for your own tenant (${admin.tenantId}), so Roster may read its directory:\n  ${consent.href}\n`);
  process.stdout.write(`Or start Roster (roster serve) and sign your organisation up at ${new URL('/signup', settings.publicUrl).href}.\n`);
  return 0;
}

function describe(item: string, value: unknown): string {
  if (item === 'redirect URIs') return (value as { redirectUris: string[] }).redirectUris.join(', ');
  if (item === 'permissions') return REQUIRED_APP_ROLES.map((r) => r.name).join(', ');
  if (item.startsWith('optional claims')) return `ID token: ${REQUIRED_ID_TOKEN_CLAIMS.join(', ')}`;
  return String(value);
}
