import { createHash, createPrivateKey, createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs this polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

// @peculiar/x509 builds certificates on WebCrypto; Node's implementation is complete.
x509.cryptoProvider.set(webcrypto as never);

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA_2048 = { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export interface PemKeyPair {
  certPem: string;
  keyPem: string;
}

async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
}

async function generate(algorithm: typeof EC_P256 | typeof RSA_2048): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

/** A local certificate authority for the emulator's HTTPS back channel. */
export async function createCertificateAuthority(commonName: string): Promise<PemKeyPair> {
  const keys = await generate(EC_P256);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 3650 * DAY_MS),
    signingAlgorithm: EC_P256,
    keys: keys as never,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
    ],
  });
  return { certPem: withNewline(cert.toString('pem')), keyPem: await exportKeyPem(keys.privateKey) };
}

/** A TLS server certificate for `localhost` and the loopback addresses, issued by `ca`. */
export async function issueServerCertificate(ca: PemKeyPair, hostNames: string[] = ['localhost']): Promise<PemKeyPair> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await webcrypto.subtle.importKey('pkcs8', pemBody(ca.keyPem), EC_P256, false, ['sign']);
  const keys = await generate(EC_P256);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${hostNames[0]}`,
    issuer: caCert.subject,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 825 * DAY_MS),
    signingAlgorithm: EC_P256,
    publicKey: keys.publicKey as never,
    signingKey: caKey as never,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...hostNames.map((value) => ({ type: 'dns' as const, value })),
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: '::1' },
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: withNewline(cert.toString('pem')), keyPem: await exportKeyPem(keys.privateKey) };
}

/**
 * An RSA key with a self-signed certificate, the shape of Entra's token signing
 * keys (JWKS entries carry `x5c`) and of an app registration's client certificate.
 */
export async function createRsaKeyWithCertificate(commonName: string, validDays = 3650): Promise<PemKeyPair> {
  const keys = await generate(RSA_2048);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${commonName}`,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + validDays * DAY_MS),
    signingAlgorithm: RSA_2048,
    keys: keys as never,
  });
  return { certPem: withNewline(cert.toString('pem')), keyPem: await exportKeyPem(keys.privateKey) };
}

export interface CertificateInfo {
  /** Base64 DER, as in a JWKS `x5c` entry. */
  derBase64: string;
  /** Base64url SHA-1 of the DER (`x5t`). */
  x5t: string;
  /** Base64url SHA-256 of the DER (`x5t#S256`). */
  x5tS256: string;
  publicKey: KeyObject;
  notAfter: Date;
}

export function describeCertificate(certPem: string): CertificateInfo {
  const cert = new x509.X509Certificate(certPem);
  const der = Buffer.from(cert.rawData);
  return {
    derBase64: der.toString('base64'),
    x5t: createHash('sha1').update(der).digest('base64url'),
    x5tS256: createHash('sha256').update(der).digest('base64url'),
    publicKey: createPublicKey(certPem),
    notAfter: cert.notAfter,
  };
}

export function privateKeyFromPem(keyPem: string): KeyObject {
  return createPrivateKey(keyPem);
}

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

function withNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}
