import { createHash, webcrypto, X509Certificate } from 'node:crypto';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs this polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { importPKCS8, SignJWT } from 'jose';
import type { CertificateCredential } from './credentials.ts';

x509.cryptoProvider.set(webcrypto as never);

const RSA_2048 = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** Entra accepts longer, but a year keeps a leaked key's value short and rotation a habit. */
export const CERTIFICATE_VALID_DAYS = 365;

/** A new RSA key and self-signed certificate for the app registration, as one PEM (certificate, then key). */
export async function generateAppCertificate(commonName: string, nowMs = Date.now()): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(RSA_2048, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName.replace(/[,=+<>#;"\\]/g, ' ')}`,
    notBefore: new Date(nowMs - 5 * 60_000),
    notAfter: new Date(nowMs + CERTIFICATE_VALID_DAYS * DAY_MS),
    signingAlgorithm: RSA_2048,
    keys: keys as never,
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
  const certPem = cert.toString('pem');
  return `${certPem.endsWith('\n') ? certPem : `${certPem}\n`}${keyPem}`;
}

/** Hex SHA-1 thumbprint: what Graph shows as a certificate's `customKeyIdentifier`. */
export function sha1Thumbprint(certificatePem: string): string {
  return new X509Certificate(certificatePem).fingerprint.replaceAll(':', '').toUpperCase();
}

/** Graph's `keyCredential` for a certificate. */
export function keyCredentialFor(credential: CertificateCredential, displayName: string): Record<string, unknown> {
  return {
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
    key: new X509Certificate(credential.certificatePem).raw.toString('base64'),
    displayName,
  };
}

/**
 * The proof of possession Graph's `addKey` and `removeKey` ask for: a short
 * JWT signed with a certificate already on the registration.
 */
export async function keyProof(credential: CertificateCredential, applicationObjectId: string): Promise<string> {
  const der = new X509Certificate(credential.certificatePem).raw;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'RS256', typ: 'JWT', x5t: createHash('sha1').update(der).digest('base64url') })
    .setAudience('00000002-0000-0000-c000-000000000000')
    .setIssuer(applicationObjectId)
    .setNotBefore(now)
    .setExpirationTime(now + 300)
    .sign(await importPKCS8(credential.privateKeyPem, 'RS256'));
}
