// The credential steps of `roster setup`: a certificate or a secret, created, rotated, or the old ones dropped.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writePrivateFile } from '../config/dotenv.ts';
import { generateAppCertificate, keyCredentialFor, keyProof, sha1Thumbprint } from '../identity/certificate.ts';
import { loadCertificateCredential, type AppCredentials, type CertificateCredential } from '../identity/credentials.ts';
import { EntraApp } from '../identity/entra-app.ts';
import type { OutboundHttp } from '../identity/http.ts';
import type { AuthorityMetadata } from '../identity/metadata.ts';
import type { GraphApplication, RegistrationClient } from '../identity/registration.ts';

export interface SetupOptions {
  secret?: boolean;
  'rotate-credential'?: boolean;
  'drop-old'?: boolean;
  force?: boolean;
  tenant?: string;
  name?: string;
}

/** Thrown for input and settings to fix: exit 2. Anything Entra or Graph refuses: exit 1. */
export class SetupInputError extends Error {}

export type Status = 'created' | 'updated' | 'unchanged' | 'written' | 'replaced' | 'skipped' | 'rotated' | 'removed';
export interface Step {
  status: Status;
  item: string;
  detail: string;
}

/** The settings `roster setup` reads: a subset of Roster's, before the app registration exists. */
export interface SetupSettings {
  publicUrl: URL;
  authorityHost: URL;
  graphBaseUrl: URL;
  clientId: string | null;
  clientSecret: string | null;
  /** As written in the settings (relative to the working folder) and resolved. */
  certificate: { setting: string; path: string };
  /** Settings that are not Microsoft's defaults, written to `.env` so `roster serve` finds the same hosts. */
  hosts: Record<string, string>;
}

export function previousPathOf(path: string): string {
  return path.endsWith('.pem') ? `${path.slice(0, -4)}.previous.pem` : `${path}.previous`;
}

/** Asks the token endpoint for an app token with exactly these credentials: proof that they are in use and accepted. */
export async function credentialsWork(http: OutboundHttp, metadata: AuthorityMetadata, graphBaseUrl: URL, credentials: AppCredentials, tenantId: string): Promise<string | null> {
  try {
    await new EntraApp({ credentials, metadata, http, graphBaseUrl }).appToken(tenantId, { forceRefresh: true });
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

export type Refuse = (err: unknown) => never;
export interface Identity {
  http: OutboundHttp;
  metadata: AuthorityMetadata;
}

export async function certificateCredential(options: SetupOptions, settings: SetupSettings, graph: RegistrationClient, app: GraphApplication, tenantId: string, id: Identity, refuse: Refuse): Promise<Step[]> {
  const file = settings.certificate.path;
  const local: CertificateCredential | null = existsSync(file) ? await loadCertificateCredential(file).catch((err: Error) => {
    throw new SetupInputError(err.message);
  }) : null;
  const onApp = app.keyCredentials ?? [];
  const localSha1 = local ? sha1Thumbprint(local.certificatePem) : null;
  const localOnApp = localSha1 ? onApp.find((k) => k.customKeyIdentifier?.toUpperCase() === localSha1) : undefined;
  const label = `Roster ${new Date().toISOString().slice(0, 10)}`;

  if (options['drop-old']) {
    if (!local || !localOnApp) throw new SetupInputError(`--drop-old keeps the certificate in ${settings.certificate.setting}, which ${local ? 'is not on the registration' : 'does not exist'}; nothing was removed`);
    const others = onApp.filter((k) => k !== localOnApp);
    if (others.length === 0) return [{ status: 'unchanged', item: 'certificate', detail: `${localSha1} is the only one` }];
    const failure = await credentialsWork(id.http, id.metadata, settings.graphBaseUrl, { clientId: app.appId, clientSecret: null, certificate: local }, tenantId);
    if (failure) throw new SetupInputError(`the certificate in ${settings.certificate.setting} does not get a token yet (${failure}); nothing was removed`);
    const steps: Step[] = [{ status: 'unchanged', item: 'certificate', detail: `${localSha1} (in use: it gets tokens)` }];
    for (const old of others) {
      await graph.removeKey(app.id, old.keyId, await keyProof(local, app.id)).catch(refuse);
      steps.push({ status: 'removed', item: 'old certificate', detail: old.customKeyIdentifier ?? old.keyId });
    }
    await rm(previousPathOf(file), { force: true });
    return steps;
  }

  if (options['rotate-credential']) {
    if (!local || !localOnApp) {
      throw new SetupInputError(`--rotate-credential signs the new certificate in with the current one, ${settings.certificate.setting}, which ${local ? 'is not on the registration' : 'does not exist'}`);
    }
    const pem = await generateAppCertificate(`Roster ${settings.publicUrl.host}`);
    const next = await credentialFromPem(pem, file);
    await graph.addKey(app.id, keyCredentialFor(next, label), await keyProof(local, app.id)).catch(refuse);
    // The old pair stays on disk until --drop-old, so it can be put back; the new one replaces the file in one rename.
    await writePrivateFile(previousPathOf(file), readFileSync(file, 'utf8'));
    await writePrivateFile(file, pem);
    return [{ status: 'rotated', item: 'certificate', detail: `new ${sha1Thumbprint(next.certificatePem)} in ${settings.certificate.setting}; old ${localSha1} stays valid until --drop-old` }];
  }

  if (local && localOnApp) return [{ status: 'unchanged', item: 'certificate', detail: `${localSha1} in ${settings.certificate.setting}, valid until ${local.notAfter.toISOString().slice(0, 10)}` }];
  if (onApp.length > 0) {
    throw new SetupInputError(
      `the registration has ${onApp.length} certificate(s) but ${settings.certificate.setting} ${local ? 'holds another one' : 'does not exist'}: point ENTRA_CLIENT_CERTIFICATE at the PEM file of one of them, or add this one in the portal (Certificates & secrets)`,
    );
  }
  const pem = local ? readFileSync(file, 'utf8') : await generateAppCertificate(`Roster ${settings.publicUrl.host}`);
  const credential = local ?? (await credentialFromPem(pem, file));
  await graph.updateApplication(app.id, { keyCredentials: [keyCredentialFor(credential, label)] }).catch(refuse);
  if (!local) await writePrivateFile(file, pem);
  return [{ status: 'created', item: 'certificate', detail: `${sha1Thumbprint(credential.certificatePem)} (private key in ${settings.certificate.setting}, owner-only)` }];
}

/** Parses a PEM pair the same way `roster serve` will, by writing it where it is read from only after it parses. */
export async function credentialFromPem(pem: string, file: string): Promise<CertificateCredential> {
  const probe = `${file}.${process.pid}.check`;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(probe, pem, { mode: 0o600 });
  try {
    return await loadCertificateCredential(probe);
  } finally {
    await rm(probe, { force: true });
  }
}

export async function secretCredential(
  options: SetupOptions,
  settings: SetupSettings,
  graph: RegistrationClient,
  app: GraphApplication,
  tenantId: string,
  id: Identity,
  envSettings: Record<string, string>,
  replace: Set<string>,
  refuse: Refuse,
): Promise<Step[]> {
  const onApp = app.passwordCredentials ?? [];
  const current = settings.clientSecret;
  const currentOnApp = current ? onApp.find((p) => p.hint && current.startsWith(p.hint)) : undefined;
  if (options['drop-old']) {
    if (!current || !currentOnApp) throw new SetupInputError('--drop-old keeps the secret in ENTRA_CLIENT_SECRET, which is not set or not on the registration; nothing was removed');
    const failure = await credentialsWork(id.http, id.metadata, settings.graphBaseUrl, { clientId: app.appId, clientSecret: current, certificate: null }, tenantId);
    if (failure) throw new SetupInputError(`the secret in ENTRA_CLIENT_SECRET does not get a token (${failure}); nothing was removed`);
    const steps: Step[] = [{ status: 'unchanged', item: 'secret', detail: `${currentOnApp.keyId} (in use: it gets tokens)` }];
    for (const old of onApp.filter((p) => p !== currentOnApp)) {
      await graph.removePassword(app.id, old.keyId).catch(refuse);
      steps.push({ status: 'removed', item: 'old secret', detail: old.keyId });
    }
    return steps;
  }
  if (!options['rotate-credential'] && currentOnApp) return [{ status: 'unchanged', item: 'secret', detail: `${currentOnApp.keyId}, valid until ${currentOnApp.endDateTime?.slice(0, 10) ?? '?'}` }];
  if (!options['rotate-credential'] && current && !options.force) {
    return [{ status: 'skipped', item: 'secret', detail: 'ENTRA_CLIENT_SECRET holds a secret this registration does not have; --force adds a new one and replaces it' }];
  }
  const secret = await graph.addPassword(app.id, `Roster ${new Date().toISOString().slice(0, 10)}`).catch(refuse);
  envSettings.ENTRA_CLIENT_SECRET = secret.secretText;
  // A rotation's whole point is the new value: restart Roster with it, then --drop-old.
  replace.add('ENTRA_CLIENT_SECRET');
  return [{ status: options['rotate-credential'] ? 'rotated' : 'created', item: 'secret', detail: `${secret.keyId}, valid until ${secret.endDateTime.slice(0, 10)} (value written to .env only)` }];
}
