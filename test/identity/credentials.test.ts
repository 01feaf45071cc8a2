import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { createRsaKeyWithCertificate } from '../../src/emulator/pki.ts';
import { loadCertificateCredential, type CertificateCredential } from '../../src/identity/credentials.ts';
import type { EntraApp } from '../../src/identity/entra-app.ts';
import { startTestEmulator, type TestEmulator } from '../helpers/emulator.ts';
import { connectToEmulator, type EmulatorConnection } from '../helpers/entra.ts';
import { addOrg, consent, registerClientCertificate, type Org } from '../helpers/fixtures.ts';
import { BadClientCredentialsError } from '../../src/identity/errors.ts';

describe('rule 29: app credentials, certificate and secret, rotation without downtime', () => {
  let emulator: TestEmulator;
  let connection: EmulatorConnection;
  let contoso: Org;
  let dir: string;
  let registered: CertificateCredential;
  let unregistered: CertificateCredential;

  async function pemFile(name: string, pem: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, pem, { mode: 0o600 });
    return path;
  }

  function app(credentials: { secret?: string; certificate?: CertificateCredential }): EntraApp {
    return connection.app(credentials);
  }

  before(async () => {
    emulator = await startTestEmulator();
    connection = await connectToEmulator(emulator);
    contoso = addOrg(emulator.ctx, 'Contoso', 'contoso.com');
    consent(emulator.ctx, contoso);
    dir = await mkdtemp(join(tmpdir(), 'roster-cred-'));
    const cert = await registerClientCertificate(emulator.ctx);
    registered = await loadCertificateCredential(await pemFile('app.pem', `${cert.certPem}${cert.keyPem}`));
    const other = await createRsaKeyWithCertificate('not registered');
    unregistered = await loadCertificateCredential(await pemFile('other.pem', `${other.keyPem}${other.certPem}`));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await connection.close();
    await emulator.close();
  });

  it('reads the certificate and key from one PEM file and computes the SHA-256 thumbprint', () => {
    const der = new X509Certificate(registered.certificatePem).raw;
    assert.equal(registered.thumbprintSha256, createHash('sha256').update(der).digest('hex'));
    assert.ok(registered.notAfter.getTime() > Date.now());
  });

  it('a PEM file without a key, or with a key of another certificate, is refused with the reason', async () => {
    await assert.rejects(loadCertificateCredential(await pemFile('cert-only.pem', registered.certificatePem)), /must hold both the certificate and its private key/);
    await assert.rejects(
      loadCertificateCredential(await pemFile('mixed.pem', `${registered.certificatePem}${unregistered.privateKeyPem}`)),
      /private key does not belong to the certificate/,
    );
  });

  it('a certificate alone obtains app tokens (private_key_jwt)', async () => {
    const token = await app({ certificate: registered }).appToken(contoso.tenant.id);
    assert.equal(decodeJwt(token.accessToken).appidacr, '2');
  });

  it('with both configured the certificate is used; a certificate not (yet or any more) registered falls back to the secret', async () => {
    const both = await app({ certificate: registered, secret: 'wrong-secret' }).appToken(contoso.tenant.id);
    assert.equal(decodeJwt(both.accessToken).appidacr, '2');
    const rotating = await app({ certificate: unregistered, secret: emulator.demoApp.clientSecret }).appToken(contoso.tenant.id);
    assert.equal(decodeJwt(rotating.accessToken).appidacr, '1');
  });

  it('when no credential works, the error is a typed bad-credentials error that says invalid_client', async () => {
    await assert.rejects(
      app({ certificate: unregistered, secret: 'wrong' }).appToken(contoso.tenant.id),
      (err: unknown) => err instanceof BadClientCredentialsError && err.code === 'bad_client_credentials' && err.message.startsWith('invalid_client'),
    );
  });
});
